//! The two root slots: which one booted (the kernel command line GRUB
//! wrote) and which block device holds each (found by GPT partition name
//! in sysfs, so disk naming — vda, nvme0n1, sda — does not matter).

use std::path::{Path, PathBuf};

use super::UpdateError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The GPT partition name (`image/src/disk.rs`).
    /// GRUB's variable holding the slot's verity parameters (grub.cfg
    /// puts them on the kernel command line).
    pub fn verity_var(self) -> &'static str {
        match self {
            Slot::A => "verity_a",
            Slot::B => "verity_b",
        }
    }

    pub fn partname(self) -> &'static str {
        match self {
            Slot::A => "nearcast-a",
            Slot::B => "nearcast-b",
        }
    }

    pub fn from_name(s: &str) -> Option<Slot> {
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }
}

/// The slot in `nearcast.slot=` of a kernel command line.
pub fn booted(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("nearcast.slot="))
        .and_then(Slot::from_name)
}

/// The device (`{dev}/{name}`) and size in bytes of the partition named
/// `partname`, from `{sys_block}/*/uevent` and `size`.
pub fn device(sys_block: &Path, dev: &Path, partname: &str) -> Result<(PathBuf, u64), UpdateError> {
    let entries = std::fs::read_dir(sys_block).map_err(|source| UpdateError::SysBlock {
        path: sys_block.display().to_string(),
        source,
    })?;
    for entry in entries.flatten() {
        let uevent = std::fs::read_to_string(entry.path().join("uevent")).unwrap_or_default();
        if uevent.lines().any(|l| l == format!("PARTNAME={partname}")) {
            let sectors: u64 = std::fs::read_to_string(entry.path().join("size"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| UpdateError::Slot(format!("no size for partition {partname}")))?;
            return Ok((dev.join(entry.file_name()), sectors * 512));
        }
    }
    Err(UpdateError::Slot(format!("no partition named {partname}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booted_slot_from_the_command_line() {
        assert_eq!(booted("console=ttyS0 panic=5 quiet nearcast.slot=B"), Some(Slot::B));
        assert_eq!(booted("nearcast.slot=A root=x"), Some(Slot::A));
        assert_eq!(booted("nearcast.slot=C"), None);
        assert_eq!(booted("quiet"), None);
        assert_eq!(Slot::A.other(), Slot::B);
    }

    #[test]
    fn partitions_found_by_name() {
        let root = nearcast_testkit::TempDir::new("slots");
        for (name, part, size) in [("vda2", "nearcast-a", "262144"), ("vda3", "nearcast-b", "262144")] {
            let d = root.join("sys").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("uevent"),
                format!("MAJOR=254\nDEVNAME={name}\nPARTNAME={part}\n"),
            )
            .unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        let (dev, size) = device(&root.join("sys"), Path::new("/dev"), "nearcast-b").unwrap();
        assert_eq!((dev, size), (PathBuf::from("/dev/vda3"), 128 << 20));
        assert!(device(&root.join("sys"), Path::new("/dev"), "nearcast-c").is_err());
    }
}
