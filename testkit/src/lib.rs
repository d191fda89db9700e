//! What Nearcast's tests (and the QEMU dev box) share: one HTTP/1.1
//! client ([`http`]), one Prometheus reader ([`metrics`]), scratch
//! directories that a green run leaves behind clean ([`temp`]), test
//! certificates ([`tls`]), and faults made with the real kernel, not
//! mocked: a disk that fails or crawls is a FUSE filesystem served by the
//! test process itself ([`faultfs`]), and a slow disk is the real disk
//! behind a cgroup v1 blkio throttle ([`cgroup`]). Both need root, as the
//! suite does (it also starts PostgreSQL and QEMU).

pub mod cgroup;
pub mod faultfs;
pub mod http;
pub mod metrics;
pub mod temp;
pub mod tls;

pub use temp::TempDir;

use std::path::Path;

/// Drops `path` (a file, or every file under a directory) from the page
/// cache, so the next read comes from the disk. Dirty pages cannot be
/// dropped: write the files durably first.
pub fn evict(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            evict(&e?.path())?;
        }
        return Ok(());
    }
    let f = std::fs::File::open(path)?;
    // SAFETY: a live descriptor.
    let r = unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, libc::POSIX_FADV_DONTNEED) };
    match r {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}
