//! Device-mapper, spoken directly through `/dev/mapper/control` (what
//! `dmsetup create` does): create a device, load one read-only target,
//! resume it. The initramfs uses it to map a slot through `verity`; the
//! kernel's devtmpfs then shows the mapping as `/dev/dm-N`.
//!
//! The ioctl argument is `struct dm_ioctl` (linux/dm-ioctl.h, interface
//! 4.x) followed, for a table load, by `struct dm_target_spec` and the
//! target's argument string.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

const CONTROL: &str = "/dev/mapper/control";
const HEADER: usize = 312; // sizeof(struct dm_ioctl)
const SPEC: usize = 40; // sizeof(struct dm_target_spec)
const NAME_AT: usize = 48;
const NAME_LEN: usize = 128;
const VERSION: [u32; 3] = [4, 0, 0];
const READONLY: u32 = 1 << 0;

/// DM_*_CMD numbers.
const DEV_CREATE: u64 = 3;
const DEV_REMOVE: u64 = 4;
const DEV_SUSPEND: u64 = 6;
const TABLE_LOAD: u64 = 9;

#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("{CONTROL}: {0} (is dm-mod loaded?)")]
    Control(#[source] std::io::Error),
    #[error("device-mapper {what} of '{name}': {source}")]
    Ioctl {
        what: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("device-mapper name '{0}' is empty or longer than 127 bytes")]
    Name(String),
}

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
fn request(nr: u64) -> u64 {
    (3u64 << 30) | ((HEADER as u64) << 16) | (0xfd << 8) | nr
}

/// One ioctl buffer: the header, then `data`. Backed by u64s so the
/// kernel sees it 8-byte aligned, as libdevmapper passes it.
struct Buf(Vec<u64>);

impl Buf {
    fn new(name: &str, flags: u32, target_count: u32, data: &[u8]) -> Buf {
        let size = HEADER + data.len();
        let mut b = Buf(vec![0; size.div_ceil(8)]);
        let bytes = b.bytes_mut();
        for (i, v) in VERSION.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        bytes[12..16].copy_from_slice(&(size as u32).to_ne_bytes()); // data_size
        bytes[16..20].copy_from_slice(&(HEADER as u32).to_ne_bytes()); // data_start
        bytes[20..24].copy_from_slice(&target_count.to_ne_bytes());
        bytes[28..32].copy_from_slice(&flags.to_ne_bytes());
        bytes[NAME_AT..NAME_AT + name.len()].copy_from_slice(name.as_bytes());
        bytes[HEADER..size].copy_from_slice(data);
        b
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * 8;
        // SAFETY: a Vec<u64>'s storage is `len` initialised bytes, and u8
        // has no alignment or validity requirements.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }

    /// The `dev` field of the kernel's answer (huge_encode_dev).
    fn dev(&mut self) -> u64 {
        let b = self.bytes_mut();
        let mut d = [0; 8];
        d.copy_from_slice(&b[40..48]);
        u64::from_ne_bytes(d)
    }
}

struct Control(std::fs::File);

impl Control {
    fn open() -> Result<Control, DmError> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(CONTROL)
            .map_err(DmError::Control)?;
        Ok(Control(f))
    }

    fn call(&self, nr: u64, what: &'static str, name: &str, buf: &mut Buf) -> Result<(), DmError> {
        // SAFETY: `buf` is a dm_ioctl header of the size the request
        // encodes plus `data_size - HEADER` bytes the kernel may read and
        // write; it outlives the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request(nr) as _, buf.0.as_mut_ptr()) };
        if rc < 0 {
            return Err(DmError::Ioctl {
                what,
                name: name.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// The spec of one target covering `sectors` from 0, then its arguments,
/// NUL-terminated and padded to 8 bytes.
fn target(kind: &str, sectors: u64, args: &str) -> Vec<u8> {
    let mut t = vec![0u8; SPEC];
    t[8..16].copy_from_slice(&sectors.to_ne_bytes());
    t[24..24 + kind.len()].copy_from_slice(kind.as_bytes());
    t.extend_from_slice(args.as_bytes());
    t.push(0);
    t.resize(t.len().div_ceil(8) * 8, 0);
    let next = t.len() as u32;
    t[20..24].copy_from_slice(&next.to_ne_bytes());
    t
}

/// Maps `name` read-only to one `kind` target of `sectors` with `args`;
/// the path of the new device (`/dev/dm-N`). A device left half made is
/// removed again.
pub fn create(name: &str, kind: &str, sectors: u64, args: &str) -> Result<String, DmError> {
    if name.is_empty() || name.len() >= NAME_LEN || kind.len() >= 16 {
        return Err(DmError::Name(name.to_string()));
    }
    let dm = Control::open()?;
    let mut b = Buf::new(name, 0, 0, &[]);
    dm.call(DEV_CREATE, "create", name, &mut b)?;
    let dev = b.dev();
    let loaded = (|| {
        let mut t = Buf::new(name, READONLY, 1, &target(kind, sectors, args));
        dm.call(TABLE_LOAD, "table load", name, &mut t)?;
        let mut r = Buf::new(name, 0, 0, &[]);
        dm.call(DEV_SUSPEND, "resume", name, &mut r)
    })();
    if let Err(e) = loaded {
        let _ = dm.call(DEV_REMOVE, "remove", name, &mut Buf::new(name, 0, 0, &[]));
        return Err(e);
    }
    Ok(format!("/dev/dm-{}", libc::minor(dev)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_layout_are_linuxs() {
        // DM_DEV_CREATE and DM_TABLE_LOAD as strace prints them.
        assert_eq!(request(DEV_CREATE), 0xc138fd03);
        assert_eq!(request(TABLE_LOAD), 0xc138fd09);
        let t = target("verity", 16, "1 a b");
        assert_eq!(t.len(), 48);
        assert_eq!(&t[24..30], b"verity");
        assert_eq!(u32::from_ne_bytes(t[20..24].try_into().unwrap()), 48);
        let mut b = Buf::new("root", READONLY, 1, &t);
        let bytes = b.bytes_mut();
        assert_eq!(u32::from_ne_bytes(bytes[12..16].try_into().unwrap()), 360);
        assert_eq!(&bytes[NAME_AT..NAME_AT + 4], b"root");
    }

    #[test]
    fn bad_names_are_refused_before_any_call() {
        assert!(matches!(create("", "verity", 8, ""), Err(DmError::Name(_))));
        assert!(matches!(
            create(&"x".repeat(128), "verity", 8, ""),
            Err(DmError::Name(_))
        ));
    }
}
