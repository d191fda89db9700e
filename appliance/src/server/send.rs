//! The syscalls of the send path, each one non-blocking on the socket and
//! never waiting on the disk: `send`, `sendfile` of bytes known to be in
//! the page cache, a read that refuses to wait for the disk, and how much
//! the socket can take now. `EINTR` is retried here; `EAGAIN` comes back
//! as `ErrorKind::WouldBlock`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

fn check(n: isize) -> Result<usize, io::Error> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn retry(mut f: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        match check(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Sends from `buf`; `more` says further bytes follow at once (MSG_MORE:
/// the head and the first body bytes share a packet).
pub fn send(sock: RawFd, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: a live socket and a readable slice of the given length.
    retry(|| unsafe { libc::send(sock, buf.as_ptr().cast(), buf.len(), flags) })
}

/// Zero-copy: up to `len` bytes of `file` from `offset` to the socket.
/// Call it only for bytes in the page cache, or it waits on the disk.
pub fn sendfile(sock: RawFd, file: &File, offset: u64, len: u64) -> io::Result<usize> {
    let count = len.min(1 << 30) as usize;
    retry(|| {
        let mut off = offset as libc::off_t;
        // SAFETY: both descriptors are live; `off` is a valid out-pointer.
        unsafe { libc::sendfile(sock, file.as_raw_fd(), &mut off, count) }
    })
}

/// Reads what the page cache already holds (`RWF_NOWAIT`): `WouldBlock`
/// when the first bytes would have to come from the disk.
pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over a writable slice of its length.
    retry(|| unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset as libc::off_t, libc::RWF_NOWAIT) as isize })
}

/// What the socket's send buffer holds: `(free, size)` in the kernel's
/// own accounting (`SO_MEMINFO`), which is what `POLLOUT` is judged by.
/// `None` when the kernel will not say.
pub fn send_space(sock: RawFd) -> Option<(u64, u64)> {
    const SO_MEMINFO: libc::c_int = 55;
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: a live socket; the out-pointer covers `len` bytes.
    let r = unsafe { libc::getsockopt(sock, libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return None;
    }
    let size = u64::from(info[libc::SK_MEMINFO_SNDBUF as usize]);
    let queued = u64::from(info[libc::SK_MEMINFO_WMEM_QUEUED as usize]);
    Some((size.saturating_sub(queued), size))
}

/// Receives into `buf` without waiting; `Ok(0)` is the end of the stream.
pub fn recv(sock: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a live socket and a writable slice of the given length.
    retry(|| unsafe { libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// The error a non-blocking connect ended with (`SO_ERROR`), if any.
pub fn connect_error(sock: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live socket; the out-pointer covers `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match (r, err) {
        (0, 0) => None,
        (0, e) => Some(io::Error::from_raw_os_error(e)),
        _ => Some(io::Error::last_os_error()),
    }
}
