//! Listening sockets: one per worker and address, bound with SO_REUSEPORT
//! so the kernel spreads new connections across workers with no shared
//! accept queue and no lock; and the non-blocking connect of upstream
//! fetches.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a live c_int of the given size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Binds `count` listening sockets to `addr` (port 0 picks one port for
/// all) and returns them with the bound address.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let mut fds = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let fd = socket_for(bound)?;
        set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        let (storage, len) = to_sockaddr(bound);
        // SAFETY: storage holds a sockaddr of `len` bytes.
        check(unsafe { libc::bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len) })?;
        // SAFETY: a bound stream socket.
        check(unsafe { libc::listen(fd.as_raw_fd(), 4096) })?;
        let listener = TcpListener::from(fd);
        bound = listener.local_addr()?;
        fds.push(listener);
    }
    Ok((fds, bound))
}

/// Starts a connect to `addr` without waiting: the socket is writable (or
/// has `SO_ERROR` set) once it is done.
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let fd = socket_with(addr, libc::SOCK_NONBLOCK)?;
    let (storage, len) = to_sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    let sock = TcpStream::from(fd);
    let _ = sock.set_nodelay(true);
    Ok(sock)
}

fn socket_for(addr: SocketAddr) -> io::Result<OwnedFd> {
    socket_with(addr, 0)
}

fn socket_with(addr: SocketAddr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the result is owned right away.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags, 0) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Grows the process's descriptor table to hold `n` descriptors (capped
/// by the soft limit) before any worker serves. The kernel grows it by
/// doubling when a new descriptor does not fit, and each growth waits for
/// an RCU grace period (milliseconds) in whichever thread opened the
/// descriptor: an accept or a file open on a worker, otherwise.
pub fn reserve_descriptors(n: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let top = (n as u64).min(lim.rlim_cur).saturating_sub(1);
    let Ok(top) = libc::c_int::try_from(top) else {
        return;
    };
    // SAFETY: dup2 of stderr onto a free number, closed at once; the
    // table keeps its size.
    unsafe {
        if libc::fcntl(top, libc::F_GETFD) == -1 && libc::dup2(2, top) == top {
            libc::close(top);
        }
    }
}
