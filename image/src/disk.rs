//! The disk: a GPT with the EFI system partition (GRUB and its
//! environment), root slots A and B, the config partition and the data
//! partition. Partitions are built as files and copied in at the
//! sectors `LAYOUT` fixes, so nothing here needs root or loop devices;
//! `buildroot/board/nearcast/genimage.cfg` describes the same layout.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use crate::tools::run;
use crate::ImageError;

pub const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;

/// One partition: GPT name, first sector, size, type code (sgdisk's).
pub struct Part {
    pub name: &'static str,
    pub start_mib: u64,
    /// 0: to the end of the disk.
    pub size_mib: u64,
    pub type_code: &'static str,
    pub guid: &'static str,
}

/// The partitions in order; the number of each is its index + 1 (GRUB's
/// `gpt2`/`gpt3` for slots A/B).
pub const LAYOUT: [Part; 5] = [
    Part {
        name: "esp",
        start_mib: 1,
        size_mib: 32,
        type_code: "ef00",
        guid: "4e43a5e1-0000-4000-8000-000000000001",
    },
    Part {
        name: "nearcast-a",
        start_mib: 33,
        size_mib: 128,
        type_code: "8300",
        guid: "4e43a5e1-0000-4000-8000-00000000000a",
    },
    Part {
        name: "nearcast-b",
        start_mib: 161,
        size_mib: 128,
        type_code: "8300",
        guid: "4e43a5e1-0000-4000-8000-00000000000b",
    },
    Part {
        name: "nearcast-config",
        start_mib: 289,
        size_mib: 16,
        type_code: "8300",
        guid: "4e43a5e1-0000-4000-8000-00000000000c",
    },
    Part {
        name: "nearcast-data",
        start_mib: 305,
        size_mib: 0,
        type_code: "8300",
        guid: "4e43a5e1-0000-4000-8000-00000000000d",
    },
];
const DISK_GUID: &str = "4e43a5e1-0000-4000-8000-000000000000";
/// Smallest disk: the fixed partitions and 64 MiB of data.
pub const MIN_DISK_MIB: u64 = 305 + 64 + 1;

pub fn part(name: &str) -> &'static Part {
    LAYOUT.iter().find(|p| p.name == name).expect("a partition of LAYOUT")
}

/// The GRUB modules the EFI binary carries (no module directory on the
/// ESP: one file to replace).
pub const GRUB_MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "squash4",
    "ext2",
    "normal",
    "linux",
    "boot",
    "echo",
    "test",
    "loadenv",
    "regexp",
    "serial",
    "terminal",
    "gzio",
    "xzio",
    "reboot",
    "halt",
    "sleep",
    "configfile",
];
const GRUB_CFG: &str = include_str!("../files/grub.cfg");

/// Builds the ESP image: GRUB as the removable-media loader, its config
/// and an environment that boots slot A, whose verity parameters
/// (`BLOCKS:SALT:ROOT`) are `verity_a`.
pub fn esp(work: &Path, out: &Path, verity_a: &str) -> Result<(), ImageError> {
    let efi = work.join("BOOTX64.EFI");
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o"])
        .arg(&efi)
        .args(GRUB_MODULES))?;
    let cfg = work.join("grub.cfg");
    std::fs::write(&cfg, GRUB_CFG).map_err(|e| ImageError::io(&cfg, e))?;
    let env = work.join("grubenv");
    let _ = std::fs::remove_file(&env);
    run(Command::new("grub-editenv").arg(&env).arg("create"))?;
    run(Command::new("grub-editenv")
        .arg(&env)
        .args(["set", "boot_slot=A", "trial_slot=", "trial_left=0"])
        .arg(format!("verity_a={verity_a}"))
        .arg("verity_b="))?;
    let _ = std::fs::remove_file(out);
    let kib = part("esp").size_mib * 1024;
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "ESP", "-i", "4e43a5e1"])
        .arg(out)
        .arg(kib.to_string()))?;
    let img = out.to_string_lossy().to_string();
    run(Command::new("mmd").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new("mcopy")
        .args(["-i", &img])
        .arg(&efi)
        .arg(&cfg)
        .arg(&env)
        .arg("::/EFI/BOOT/"))
    .map(drop)
}

/// An ext4 image of the config partition holding `dir`'s files.
pub fn config_fs(dir: &Path, out: &Path) -> Result<(), ImageError> {
    let _ = std::fs::remove_file(out);
    let f = std::fs::File::create(out).map_err(|e| ImageError::io(out, e))?;
    f.set_len(part("nearcast-config").size_mib * MIB)
        .map_err(|e| ImageError::io(out, e))?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "nearcast-config", "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(out))
    .map(drop)
}

/// A new disk of `size_mib` with the partition table, all partitions
/// empty.
pub fn create(out: &Path, size_mib: u64) -> Result<(), ImageError> {
    if size_mib < MIN_DISK_MIB {
        return Err(ImageError::Layout(format!(
            "a disk of {size_mib} MiB is smaller than the {MIN_DISK_MIB} MiB the layout needs"
        )));
    }
    let _ = std::fs::remove_file(out);
    let f = std::fs::File::create(out).map_err(|e| ImageError::io(out, e))?;
    f.set_len(size_mib * MIB).map_err(|e| ImageError::io(out, e))?;
    let mut cmd = Command::new("sgdisk");
    cmd.arg(format!("--disk-guid={DISK_GUID}"));
    for (i, p) in LAYOUT.iter().enumerate() {
        let n = i + 1;
        let start = p.start_mib * MIB / SECTOR;
        let end = if p.size_mib == 0 {
            "0".to_string()
        } else {
            ((p.start_mib + p.size_mib) * MIB / SECTOR - 1).to_string()
        };
        cmd.arg(format!("--new={n}:{start}:{end}"))
            .arg(format!("--typecode={n}:{}", p.type_code))
            .arg(format!("--change-name={n}:{}", p.name))
            .arg(format!("--partition-guid={n}:{}", p.guid));
    }
    run(cmd.arg(out)).map(drop)
}

/// Writes `content` into partition `name` of `disk`; the rest of the
/// partition is left as it was.
pub fn write_part(disk: &Path, name: &str, content: &Path) -> Result<(), ImageError> {
    let p = part(name);
    let len = std::fs::metadata(content)
        .map_err(|e| ImageError::io(content, e))?
        .len();
    if p.size_mib != 0 && len > p.size_mib * MIB {
        return Err(ImageError::Layout(format!(
            "{} is {len} bytes, more than partition {name}'s {} MiB",
            content.display(),
            p.size_mib
        )));
    }
    let mut src = std::fs::File::open(content).map_err(|e| ImageError::io(content, e))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| ImageError::io(disk, e))?;
    dst.seek(SeekFrom::Start(p.start_mib * MIB))
        .map_err(|e| ImageError::io(disk, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| ImageError::io(disk, e))?;
    dst.flush().map_err(|e| ImageError::io(disk, e))?;
    dst.sync_all().map_err(|e| ImageError::io(disk, e))
}

/// `disk` compressed with zstd next to it; returns the compressed size.
pub fn compress(disk: &Path) -> Result<u64, ImageError> {
    let out = disk.with_extension("img.zst");
    run(Command::new("zstd")
        .args(["-q", "-f", "-T0", "-12"])
        .arg(disk)
        .arg("-o")
        .arg(&out))?;
    Ok(std::fs::metadata(&out).map_err(|e| ImageError::io(&out, e))?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_contiguous_and_in_order() {
        let mut next = 1;
        for p in &LAYOUT {
            assert_eq!(p.start_mib, next, "{}", p.name);
            next = p.start_mib + p.size_mib;
        }
        assert_eq!(LAYOUT[1].name, "nearcast-a");
        assert_eq!(LAYOUT[2].name, "nearcast-b");
        assert_eq!(MIN_DISK_MIB, LAYOUT[4].start_mib + 64 + 1);
    }
}
