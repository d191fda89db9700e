//! Opening and re-checking paths without waiting on the disk:
//! `openat2(RESOLVE_CACHED)` walks the path only through the kernel's
//! dentry and inode caches and fails with `EAGAIN` where it would have to
//! read a directory or an inode (or revalidate an entry, as FUSE and NFS
//! do). The worker then opens the path through io_uring instead
//! (`IORING_OP_OPENAT2`, done by the kernel's io-wq threads), and asks
//! again when that completes.
//!
//! Kernels without `RESOLVE_CACHED` (before 5.12) get a plain, blocking
//! `open`, logged once at start of use.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags every content open uses: read-only, never through a final
/// symlink, not inherited.
pub const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// What a cached-only lookup gave.
pub enum Cached<T> {
    Done(T),
    /// The walk would wait on the disk.
    WouldBlock,
}

static NO_RESOLVE_CACHED: AtomicBool = AtomicBool::new(false);

fn openat2(path: &Path, flags: i32) -> io::Result<Cached<File>> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    if !NO_RESOLVE_CACHED.load(Ordering::Relaxed) {
        // SAFETY: open_how is plain data; zero is "no flags".
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve = libc::RESOLVE_CACHED;
        // SAFETY: a NUL-terminated path and an open_how of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this descriptor.
            return Ok(Cached::Done(unsafe { File::from_raw_fd(fd as i32) }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(Cached::WouldBlock),
            Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG) => {
                tracing::warn!("this kernel has no openat2(RESOLVE_CACHED): opens may wait on the disk");
                NO_RESOLVE_CACHED.store(true, Ordering::Relaxed);
            }
            _ => return Err(e),
        }
    }
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(Cached::Done(unsafe { File::from_raw_fd(fd) }))
}

/// Opens `path` for serving if its lookup is cached.
pub fn open(path: &Path) -> io::Result<Cached<File>> {
    openat2(path, OPEN_FLAGS)
}

/// The metadata of what `path` names now (not following a final
/// symlink), if its lookup is cached.
pub fn stat(path: &Path) -> io::Result<Cached<std::fs::Metadata>> {
    Ok(
        match openat2(path, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)? {
            Cached::Done(f) => Cached::Done(f.metadata()?),
            Cached::WouldBlock => Cached::WouldBlock,
        },
    )
}

/// `path` as the C string an io_uring open takes.
pub fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}
