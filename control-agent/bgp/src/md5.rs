//! TCP MD5 signatures (RFC 2385) on the session's socket, as most ISP
//! routers configure BGP neighbors: `TCP_MD5SIG` with the peer's address
//! and the shared key, set before connecting.

use std::io;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;

/// Longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY: usize = 80;

/// `struct tcp_md5sig` (linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY],
}

/// Signs every segment to and from `peer` on socket `fd` with `key`.
pub fn set(fd: RawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("MD5 key must be 1-{MAX_KEY} bytes"),
        ));
    }
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(&mut sig.addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.ip().octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a valid tcp_md5sig that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn the_kernel_takes_the_option_and_refuses_bad_keys() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216, "linux/tcp.h layout");
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer: SocketAddr = "127.0.0.2:179".parse().unwrap();
        set(s.as_raw_fd(), peer, b"secret").unwrap();
        assert!(set(s.as_raw_fd(), peer, b"").is_err());
        assert!(set(s.as_raw_fd(), peer, &[b'x'; 81]).is_err());
    }
}
