//! Kernel TLS: once rustls has finished the handshake, the session's keys
//! go to the kernel (`TCP_ULP "tls"`, then `TLS_TX` and `TLS_RX`), which
//! from then on encrypts what the socket sends — `sendfile` included — and
//! decrypts what it receives, so an HTTPS connection is served exactly as a
//! plain one: zero-copy bodies, no cipher on the worker.
//!
//! The move happens only between records (every byte received so far was
//! a whole record rustls has processed) and with nothing left to write, so
//! neither direction loses a byte; AES-GCM-128/256 in TLS 1.2 and 1.3 only.
//! Until the keys leave rustls the connection can stay on rustls
//! ([`Offload::Stay`]); after that a refusal from the kernel means closing
//! it ([`Offload::Broken`]).
//!
//! Nonces. TLS 1.3 and the kernel both use `iv XOR seq`. For TLS 1.2 GCM,
//! rustls sends `base XOR seq` as the explicit nonce but the kernel starts
//! from the IV it is given and adds one per record; handing it `base`
//! would reuse the nonce of rustls's own Finished record. It gets the
//! start of the next aligned block above every nonce rustls used instead
//! ([`tls12_handover_nonce`]).
//!
//! After the move, a record that is not application data (an alert, a
//! TLS 1.3 KeyUpdate) makes the kernel fail the receive with EIO, and the
//! worker closes the connection; we send our own close_notify as an alert
//! record (`TLS_SET_RECORD_TYPE`).

use std::io;
use std::os::fd::RawFd;

use rustls::{CipherSuite, ConnectionTrafficSecrets, ProtocolVersion, ServerConnection};

const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const RECORD_ALERT: u8 = 21;
const RECORD_HEADER: usize = 5;

/// Whether the kernel offers the `tls` upper-layer protocol.
pub fn available() -> bool {
    let Ok(sock) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return false;
    };
    // On a listening socket the tls ULP refuses with ENOTCONN when it
    // exists; ENOENT means the kernel does not have it.
    match set_ulp(std::os::fd::AsRawFd::as_raw_fd(&sock)) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
    }
}

fn set_ulp(sock: RawFd) -> io::Result<()> {
    setsockopt(sock, libc::IPPROTO_TCP, libc::TCP_ULP, b"tls")
}

fn setsockopt(sock: RawFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: a live socket; the option value is a slice of the length given.
    let r = unsafe { libc::setsockopt(sock, level, name, value.as_ptr().cast(), value.len() as libc::socklen_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What became of a session offered to the kernel.
pub enum Offload {
    /// The kernel has it: the socket now carries plaintext both ways.
    Done,
    /// Not for the kernel (a cipher it is not given, no ULP, not ready);
    /// rustls carries on.
    Stay(Box<ServerConnection>),
    /// The keys left rustls and the kernel refused them: close.
    Broken(io::Error),
}

/// Moves `tls` into the kernel for `sock`. The caller guarantees every
/// received byte was a whole record fed to rustls and every byte rustls
/// produced is on the socket.
pub fn offload(sock: RawFd, tls: Box<ServerConnection>) -> Offload {
    let suitable = !tls.is_handshaking()
        && !tls.wants_write()
        && tls.negotiated_cipher_suite().is_some_and(|s| kernel_suite(s.suite()))
        && matches!(
            tls.protocol_version(),
            Some(ProtocolVersion::TLSv1_2 | ProtocolVersion::TLSv1_3)
        );
    if !suitable {
        return Offload::Stay(tls);
    }
    if let Err(e) = set_ulp(sock) {
        tracing::debug!(error = %e, "no tls ULP on this socket; userspace TLS");
        return Offload::Stay(tls);
    }
    let Some(version) = tls.protocol_version() else {
        return Offload::Stay(tls);
    };
    let secrets = match (*tls).dangerous_extract_secrets() {
        Ok(secrets) => secrets,
        Err(e) => return Offload::Broken(io::Error::other(e)),
    };
    let (tx_seq, tx) = &secrets.tx;
    let (rx_seq, rx) = &secrets.rx;
    let (Some(tx), Some(rx)) = (
        crypto_info(version, *tx_seq, tx, Direction::Send),
        crypto_info(version, *rx_seq, rx, Direction::Receive),
    ) else {
        return Offload::Broken(io::Error::other("cipher not for the kernel"));
    };
    match setsockopt(sock, SOL_TLS, TLS_TX, &tx).and_then(|()| setsockopt(sock, SOL_TLS, TLS_RX, &rx)) {
        Ok(()) => Offload::Done,
        Err(e) => Offload::Broken(e),
    }
}

fn kernel_suite(s: CipherSuite) -> bool {
    matches!(
        s,
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Send,
    Receive,
}

/// `struct tls12_crypto_info_aes_gcm_{128,256}` as bytes: version, cipher
/// (native u16s), explicit IV (8), key (16 or 32), salt (4), record
/// sequence (8, big-endian).
fn crypto_info(
    version: ProtocolVersion,
    seq: u64,
    secrets: &ConnectionTrafficSecrets,
    dir: Direction,
) -> Option<Vec<u8>> {
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } | ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            (key.as_ref(), iv.as_ref())
        }
        _ => return None,
    };
    let cipher = match key.len() {
        16 => TLS_CIPHER_AES_GCM_128,
        32 => TLS_CIPHER_AES_GCM_256,
        _ => return None,
    };
    let (salt, base) = (iv.get(..4)?, <[u8; 8]>::try_from(iv.get(4..12)?).ok()?);
    let (version, explicit) = match version {
        ProtocolVersion::TLSv1_3 => (TLS_1_3_VERSION, base),
        ProtocolVersion::TLSv1_2 if dir == Direction::Send => (TLS_1_2_VERSION, tls12_handover_nonce(base, seq)),
        // Received records carry their explicit nonce: the IV is unused.
        ProtocolVersion::TLSv1_2 => (TLS_1_2_VERSION, base),
        _ => return None,
    };
    let mut out = Vec::with_capacity(56);
    out.extend_from_slice(&version.to_ne_bytes());
    out.extend_from_slice(&cipher.to_ne_bytes());
    out.extend_from_slice(&explicit);
    out.extend_from_slice(key);
    out.extend_from_slice(salt);
    out.extend_from_slice(&seq.to_be_bytes());
    Some(out)
}

/// The first explicit nonce the kernel may use for TLS 1.2 after rustls
/// sent `used` records with nonces `base XOR s` (s < used). Those all lie
/// in the aligned block of 2^b values around `base` (2^b >= used); the
/// kernel counts up from the start of the next block, so it meets them
/// again only after 2^64 - 2^b records.
pub fn tls12_handover_nonce(base: [u8; 8], used: u64) -> [u8; 8] {
    let bits = match used {
        0 => return base,
        1 => 0,
        n => 64 - (n - 1).leading_zeros(),
    };
    let base = u64::from_be_bytes(base);
    let next = match bits {
        64 => 0,
        b => ((base >> b).wrapping_add(1)).wrapping_shl(b),
    };
    next.to_be_bytes()
}

/// Sends close_notify on a kernel-TLS socket (an alert record).
pub fn send_close_notify(sock: RawFd) -> io::Result<()> {
    let alert = [1u8, 0]; // warning, close_notify
    let mut iov = libc::iovec {
        iov_base: alert.as_ptr() as *mut libc::c_void,
        iov_len: alert.len(),
    };
    // Room for one cmsghdr with one byte of data, aligned.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space.min(std::mem::size_of_val(&control)) as _;
    // SAFETY: the control buffer holds one aligned cmsghdr with its data;
    // the header pointer comes from CMSG_FIRSTHDR over that buffer.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the record type"));
        }
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = RECORD_ALERT;
        libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where TLS records begin in the bytes received: the session may move
/// to the kernel only at an edge, with no record half received.
#[derive(Debug, Default)]
pub struct RecordEdge {
    header: [u8; RECORD_HEADER],
    have: usize,
    /// Body bytes of the current record still to come.
    left: usize,
}

impl RecordEdge {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (RECORD_HEADER - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == RECORD_HEADER {
                self.left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.have = 0;
            }
        }
    }

    pub fn at_edge(&self) -> bool {
        self.have == 0 && self.left == 0
    }
}

#[cfg(test)]
mod tests;
