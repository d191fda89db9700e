//! One client connection: its buffers, where it is in the request cycle,
//! and how its bytes go out (plain: `send` + `sendfile`; TLS: through
//! rustls). Writes are tried right away on the non-blocking socket; only
//! when the socket is full does the worker ask io_uring to wake it. Under a
//! rate cap, bodies go out as the connection's bucket allows (`pace.rs`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::handler::{Body, Reply};
use crate::http::Status;
use crate::metrics::WorkerMetrics;
use crate::store::OpenFile;

use super::pace::{Bucket, Rate};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Reading,
    /// Sending a response.
    Writing,
    /// Response sent, our side shut; reading and dropping whatever the client
    /// still sends so the close does not reset the response it has not read.
    Lingering,
}

/// How far a write got.
pub enum Progress {
    Done,
    /// The socket is full: wait for POLLOUT.
    Blocked,
    /// The rate cap is reached: wait this long.
    Paced(Duration),
    Failed,
}

/// The response being sent, for the metrics when it is done.
struct Current {
    status: Status,
    started: Instant,
    body_len: u64,
    file: Option<Rc<OpenFile>>,
}

pub struct Conn {
    pub sock: TcpStream,
    pub peer: IpAddr,
    pub tls: Option<Box<rustls::ServerConnection>>,
    /// Received request bytes (plaintext); empty and unallocated when idle.
    pub inbuf: Vec<u8>,
    /// Bytes queued for the socket: a plain head, or TLS records.
    pub out: Vec<u8>,
    out_pos: usize,
    body: Option<Body>,
    current: Option<Current>,
    pub phase: Phase,
    pub keep_alive: bool,
    /// An io_uring operation on this socket has not completed yet.
    pub in_flight: bool,
    /// Close requested while an operation was in flight.
    pub closing: bool,
    pub deadline: Instant,
    /// When the request head now being received began (from accept for
    /// the first request); `None` while idle between requests.
    pub head_started: Option<Instant>,
    /// The rate cap and this connection's tokens, when there is a cap.
    pace: Option<(Rate, Bucket)>,
    /// The timeout a paced connection waits on; the kernel reads it when the
    /// wait is submitted, so it lives on the heap, not in the moving slot.
    pub pace_wait: Option<Box<io_uring::types::Timespec>>,
}

impl Conn {
    pub fn new(
        sock: TcpStream,
        peer: IpAddr,
        tls: Option<Box<rustls::ServerConnection>>,
        rate: Option<Rate>,
        now: Instant,
    ) -> Self {
        Conn {
            pace: rate.map(|r| (r, Bucket::new(&r, now))),
            pace_wait: None,
            sock,
            peer,
            tls,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            body: None,
            current: None,
            phase: Phase::Reading,
            keep_alive: true,
            in_flight: false,
            closing: false,
            deadline: now,
            head_started: Some(now),
        }
    }

    /// Takes the handler's reply for the request in `inbuf[..used]`; for TLS
    /// the head (in `head`) goes through the cipher.
    pub fn begin_reply(&mut self, reply: Reply, used: usize, head: &mut Vec<u8>, now: Instant) {
        self.inbuf.drain(..used.min(self.inbuf.len()));
        if let Some(tls) = self.tls.as_mut() {
            // Buffered by rustls; cannot fail short of a closed session.
            let _ = tls.writer().write_all(head);
            head.clear();
        }
        self.current = Some(Current {
            status: reply.status,
            started: now,
            body_len: reply.body.as_ref().map_or(0, |b| b.len),
            file: reply.body.as_ref().map(|b| b.file.clone()),
        });
        self.body = reply.body;
        self.keep_alive = reply.keep_alive;
        self.phase = Phase::Writing;
    }

    /// Records the finished response and gets ready for the next request.
    /// Returns the file whose bytes were served and how many, for the
    /// per-title tally.
    pub fn finish_reply(&mut self, metrics: &WorkerMetrics, now: Instant) -> Option<(Rc<OpenFile>, u64)> {
        self.body = None;
        self.head_started = (!self.inbuf.is_empty()).then_some(now);
        let c = self.current.take()?;
        let disk = c.file.as_ref().map(|f| f.disk);
        metrics.response(c.status, c.body_len, disk, now.duration_since(c.started));
        c.file.map(|f| (f, c.body_len))
    }

    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Moves whatever rustls wants to send (handshake, alerts, records)
    /// into `out`.
    pub fn queue_tls_output(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut self.out).is_err() {
                    break;
                }
            }
        }
    }

    /// Feeds received TLS bytes to rustls and moves the plaintext into
    /// `inbuf`. An error means the session is broken (alerts are queued).
    pub fn feed_tls(&mut self, mut data: &[u8]) -> Result<(), rustls::Error> {
        let Some(tls) = self.tls.as_mut() else {
            self.inbuf.extend_from_slice(data);
            return Ok(());
        };
        while !data.is_empty() {
            if tls.read_tls(&mut data).is_err() {
                return Err(rustls::Error::General("TLS input buffer full".into()));
            }
            let state = tls.process_new_packets();
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    self.queue_tls_output();
                    return Err(e);
                }
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = self.inbuf.len();
                self.inbuf.resize(start + n, 0);
                let got = tls.reader().read(&mut self.inbuf[start..]).unwrap_or(0);
                self.inbuf.truncate(start + got);
            }
        }
        Ok(())
    }

    /// Sends the queued output, then the body; `scratch` holds file bytes
    /// on their way into the TLS cipher.
    pub fn write_out(&mut self, scratch: &mut [u8], metrics: &WorkerMetrics, now: Instant) -> Progress {
        loop {
            if self.tls.is_some() {
                self.queue_tls_output();
            }
            if self.has_output() {
                match self.flush(metrics) {
                    Progress::Done => {}
                    other => return other,
                }
            }
            let Some(body) = self.body.as_mut() else {
                return Progress::Done;
            };
            if body.len == 0 {
                return Progress::Done;
            }
            let allowed = match self.pace.as_mut() {
                None => body.len,
                Some((rate, bucket)) => match bucket.allowance(rate, body.len, now) {
                    Ok(n) => n,
                    Err(wait) => return Progress::Paced(wait),
                },
            };
            match self.tls.as_mut() {
                None => {
                    let before = body.len;
                    let progress = sendfile(&self.sock, body, allowed, metrics);
                    if let Some((_, bucket)) = self.pace.as_mut() {
                        bucket.spend(before - body.len);
                    }
                    match progress {
                        // The allowance went out; the rest waits for tokens.
                        Progress::Done if body.len > 0 => continue,
                        other => return other,
                    }
                }
                Some(tls) => {
                    let want = scratch.len().min(allowed as usize);
                    match body.file.file.read_at(&mut scratch[..want], body.offset) {
                        // The file shrank under us: the response cannot be completed.
                        Ok(0) | Err(_) => return Progress::Failed,
                        Ok(n) => {
                            let _ = tls.writer().write_all(&scratch[..n]);
                            body.offset += n as u64;
                            body.len -= n as u64;
                            if let Some((_, bucket)) = self.pace.as_mut() {
                                bucket.spend(n as u64);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends `out[out_pos..]`; MSG_MORE when a plain body follows, so the
    /// head and the first body bytes share a packet.
    fn flush(&mut self, metrics: &WorkerMetrics) -> Progress {
        let more = self.tls.is_none() && self.body.as_ref().is_some_and(|b| b.len > 0);
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | if more { libc::MSG_MORE } else { 0 };
        while self.out_pos < self.out.len() {
            let rest = &self.out[self.out_pos..];
            // SAFETY: a live socket and a readable slice of the given length.
            let n = unsafe { libc::send(self.sock.as_raw_fd(), rest.as_ptr().cast(), rest.len(), flags) };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Progress::Blocked,
                    _ => return Progress::Failed,
                }
            }
            self.out_pos += n as usize;
            metrics.sent(n as u64);
        }
        self.out.clear();
        self.out_pos = 0;
        Progress::Done
    }

    /// Shuts our side for a lingering close; TLS sends close_notify first.
    pub fn start_linger(&mut self, metrics: &WorkerMetrics) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            self.queue_tls_output();
            let _ = self.flush(metrics);
        }
        let _ = self.sock.shutdown(Shutdown::Write);
        self.inbuf.clear();
        self.phase = Phase::Lingering;
    }
}

/// Zero-copy body, up to `limit` bytes of it: the kernel moves page-cache
/// pages to the socket.
fn sendfile(sock: &TcpStream, body: &mut Body, limit: u64, metrics: &WorkerMetrics) -> Progress {
    let stop = body.len.saturating_sub(limit);
    while body.len > stop {
        let mut off = body.offset as libc::off_t;
        let count = (body.len - stop).min(1 << 30) as usize;
        // SAFETY: both descriptors are live; `off` is a valid out-pointer.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), body.file.file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Progress::Blocked,
                _ => return Progress::Failed,
            }
        }
        if n == 0 {
            return Progress::Failed; // the file shrank under us
        }
        body.offset += n as u64;
        body.len -= n as u64;
        metrics.sent(n as u64);
    }
    Progress::Done
}
