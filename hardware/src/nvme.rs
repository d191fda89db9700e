//! The NVMe SMART / health information log page (log id 02h, 512 bytes),
//! fetched with the admin passthrough ioctl on the controller node
//! (`/dev/nvme0`), or read from a regular file at that path (the
//! simulated backend).

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub const LOG_LEN: usize = 512;

/// What the health log says (NVMe base spec, "SMART / Health Information").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthLog {
    /// Bit 0 spare below threshold, 1 temperature, 2 reliability degraded,
    /// 3 read-only, 4 volatile backup failed.
    pub critical_warning: u8,
    /// Composite temperature, °C.
    pub temperature_c: i32,
    pub available_spare_pct: u8,
    /// Estimated life used; may exceed 100.
    pub percentage_used: u8,
    pub media_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NvmeError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: health log is {len} bytes, not {LOG_LEN}")]
    Short { path: String, len: usize },
}

fn le_u128_sat(b: &[u8]) -> u64 {
    let mut v = [0u8; 16];
    v.copy_from_slice(&b[..16]);
    u64::try_from(u128::from_le_bytes(v)).unwrap_or(u64::MAX)
}

pub fn parse(log: &[u8; LOG_LEN]) -> HealthLog {
    let kelvin = u16::from_le_bytes([log[1], log[2]]);
    HealthLog {
        critical_warning: log[0],
        temperature_c: i32::from(kelvin) - 273,
        available_spare_pct: log[3],
        percentage_used: log[5],
        media_errors: le_u128_sat(&log[160..176]),
    }
}

/// `struct nvme_passthru_cmd` (linux/nvme_ioctl.h), 72 bytes.
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
nix::ioctl_readwrite!(nvme_admin_cmd, b'N', 0x41, PassthruCmd);

/// The health log of the controller at `node`: an admin Get Log Page
/// when it is a character device, the file's bytes otherwise.
pub fn health_log(node: &Path) -> Result<HealthLog, NvmeError> {
    let err = |source| NvmeError::Io {
        path: node.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(node).map_err(err)?;
    let mut log = [0u8; LOG_LEN];
    if meta.file_type().is_char_device() {
        let dev = std::fs::File::open(node).map_err(err)?;
        let numd = (LOG_LEN / 4 - 1) as u32;
        let mut cmd = PassthruCmd {
            opcode: 0x02, // Get Log Page
            nsid: 0xffff_ffff,
            addr: log.as_mut_ptr() as u64,
            data_len: LOG_LEN as u32,
            cdw10: (numd << 16) | 0x02, // log id 02h: SMART / health
            timeout_ms: 5_000,
            ..PassthruCmd::default()
        };
        // SAFETY: `cmd` is a valid nvme_passthru_cmd whose buffer (`log`)
        // outlives the call and is `data_len` bytes long.
        match unsafe { nvme_admin_cmd(dev.as_raw_fd(), &mut cmd) } {
            Ok(0) => {}
            Ok(status) => return Err(err(io::Error::other(format!("NVMe status {status:#x}")))),
            Err(errno) => return Err(err(io::Error::from(errno))),
        }
    } else {
        let bytes = std::fs::read(node).map_err(err)?;
        if bytes.len() != LOG_LEN {
            return Err(NvmeError::Short {
                path: node.display().to_string(),
                len: bytes.len(),
            });
        }
        log.copy_from_slice(&bytes);
    }
    Ok(parse(&log))
}

/// A health log with these values (for the simulated backend and tests).
pub fn encode(h: &HealthLog) -> [u8; LOG_LEN] {
    let mut log = [0u8; LOG_LEN];
    log[0] = h.critical_warning;
    let kelvin = (h.temperature_c + 273).clamp(0, i32::from(u16::MAX)) as u16;
    log[1..3].copy_from_slice(&kelvin.to_le_bytes());
    log[3] = h.available_spare_pct;
    log[5] = h.percentage_used;
    log[160..176].copy_from_slice(&u128::from(h.media_errors).to_le_bytes());
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_matches_the_kernel_header() {
        assert_eq!(std::mem::size_of::<PassthruCmd>(), 72);
        assert_eq!(
            nix::request_code_readwrite!(b'N', 0x41, std::mem::size_of::<PassthruCmd>()),
            0xC048_4E41
        );
    }

    #[test]
    fn a_character_device_that_is_not_nvme_is_an_error_not_a_crash() {
        // The real ioctl path: /dev/null refuses the admin command.
        let e = health_log(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("/dev/null") && e.to_lowercase().contains("ioctl"), "{e}");
        assert!(health_log(Path::new("/nonexistent/nvme0")).is_err());
    }

    #[test]
    fn parses_what_it_encodes() {
        let h = HealthLog {
            critical_warning: 0b1000,
            temperature_c: 41,
            available_spare_pct: 97,
            percentage_used: 12,
            media_errors: 3,
        };
        let log = encode(&h);
        // Fields at the offsets the spec gives.
        assert_eq!((log[1], log[2]), (0x3a, 0x01), "314 K little-endian");
        assert_eq!(log[160], 3);
        assert_eq!(parse(&log), h);
    }
}
