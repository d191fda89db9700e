//! One client connection as a state machine: its buffers, where it is in
//! the request cycle, and how its bytes go out. It never waits: `advance`
//! goes as far as the connection can without blocking and returns the one
//! thing it waits for next (a [`Want`]); the worker turns that into an
//! io_uring submission and hands the completion back (`on_recv`,
//! `on_ready`, `on_read`). Like hyper's `proto::h1::Conn`, the state is
//! private to this module.
//!
//! Body bytes take one of two ways, decided per chunk: bytes in the page
//! cache go out at once (`sendfile` on plain sockets, a non-blocking read
//! into the cipher for rustls); bytes that are not are read through the
//! disk's queue into a pool buffer (`Want::Read`) and sent from there. A
//! read is sized to what the socket and the rate cap take next, so the
//! buffer is free again as soon as the read completes, and a client that
//! stops reading holds no buffer. The response head is held until the
//! first body bytes are in hand, so a read that fails before any body byte
//! went out becomes a clean 500 instead of a cut-off response.

use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::handler::{Body, Decision};
use crate::http::{parse_request, Parsed, Status};
use crate::metrics::WorkerMetrics;
use crate::store::OpenFile;

mod body;
mod cx;
mod live;
mod open;
mod playback;
mod reply;
mod tls;

pub use cx::Cx;
pub use live::LiveRequest;

use super::pace::{Bucket, Rate};
use super::reads::ReadBuf;

/// How long a closing connection keeps draining what the client sends.
const LINGER: Duration = Duration::from_secs(2);
/// File bytes encrypted per TLS write (one TLS record).
const TLS_CHUNK: usize = 16 * 1024;
/// The smallest read worth a trip to the disk queue.
const MIN_READ: u64 = 16 * 1024;

/// What a connection waits for next; the worker submits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Bytes from the client (into a provided buffer).
    Recv,
    /// Room in the socket.
    PollOut,
    /// Body bytes from disk `.0`: queue for it, then submit
    /// [`Conn::start_read`]'s read.
    Read(usize),
    /// Tokens of the rate cap.
    Pace(Duration),
    /// The file of the request, opened through io_uring
    /// ([`Conn::open_args`]), before the request is decided again.
    Open,
    /// A change of live object `.0` (its head or more of its body): the
    /// worker parks the connection, with nothing in flight, until then.
    Park(u64),
    Close,
}

/// One read for the worker to submit into the buffer it gave.
#[derive(Clone, Copy, Debug)]
pub struct ReadAsk {
    pub fd: RawFd,
    pub offset: u64,
    pub len: usize,
}

/// A read asked for or in flight.
struct Reading {
    disk: usize,
    ask: ReadAsk,
    /// Bytes at the start of the buffer before the body's next byte (an
    /// `O_DIRECT` read starts at an aligned offset).
    skip: usize,
    /// Body bytes wanted from it.
    want: usize,
    /// Set when submitted; the buffer the kernel writes into.
    buf: Option<(ReadBuf, Instant)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Reading,
    /// Sending a response.
    Writing,
    /// Response sent, our side shut; reading and dropping whatever the client
    /// still sends so the close does not reset the response it has not read.
    Lingering,
}

/// What became of the request in `inbuf`.
enum Next {
    /// Answered: its reply is under way.
    Replied,
    /// Not complete yet.
    Incomplete,
    /// Its file is to be opened first.
    Open,
}

/// How far a write got.
enum Step {
    Done,
    /// The socket is full.
    Blocked,
    /// The rate cap is reached: wait this long.
    Paced(Duration),
    /// The next body bytes are on disk `.0`.
    Read(usize),
    /// Waiting for live object `.0` to change.
    Park(u64),
    /// Progress made: go round again.
    Again,
    Failed,
}

/// The response being sent, for the metrics when it is done.
struct Current {
    status: Status,
    /// For a title's file, past the token check.
    content: bool,
    /// Asked for by a box's agent filling, not by a viewer.
    fill: bool,
    started: Instant,
    body_len: u64,
    file: Option<Rc<OpenFile>>,
}

/// Body bytes read from disk and not yet all sent.
struct Chunk {
    buf: ReadBuf,
    pos: usize,
    end: usize,
}

pub struct Conn {
    sock: TcpStream,
    peer: IpAddr,
    tls: Option<Box<rustls::ServerConnection>>,
    handover: tls::Handover,
    /// Received request bytes (plaintext); empty and unallocated when idle.
    inbuf: Vec<u8>,
    /// Bytes queued for the socket: a plain head, or TLS records.
    out: Vec<u8>,
    out_pos: usize,
    /// The head waits for the body's first bytes (plain: it sits in `out`;
    /// TLS: in `held`, not yet given to the cipher).
    head_held: bool,
    held: Vec<u8>,
    body: Option<Body>,
    /// The body cannot be completed after part of it went out: close.
    cut: bool,
    chunk: Option<Chunk>,
    reading: Option<Reading>,
    opening: Option<open::Opening>,
    /// Opens done for the request now being decided, and the disks they
    /// found its file absent on.
    open_rounds: usize,
    absent_on: u64,
    current: Option<Current>,
    /// A live answer under way.
    live: Option<live::Following>,
    phase: Phase,
    keep_alive: bool,
    deadline: Instant,
    /// When the request head now being received began (from accept for
    /// the first request); `None` while idle between requests.
    head_started: Option<Instant>,
    /// The rate cap and this connection's tokens, when there is a cap.
    pace: Option<(Rate, Bucket)>,
    /// The timeout a paced connection waits on; the kernel reads it when the
    /// wait is submitted, so it lives on the heap, not in the moving slot.
    pace_wait: Option<Box<io_uring::types::Timespec>>,
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
            handover: tls::Handover::default(),
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            head_held: false,
            held: Vec::new(),
            body: None,
            cut: false,
            chunk: None,
            reading: None,
            opening: None,
            open_rounds: 0,
            absent_on: 0,
            current: None,
            live: None,
            phase: Phase::Reading,
            keep_alive: true,
            deadline: now,
            head_started: Some(now),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn lingering(&self) -> bool {
        self.phase == Phase::Lingering
    }

    /// Between requests with nothing received: safe to close at once.
    pub fn idle(&self) -> bool {
        self.phase == Phase::Reading && self.inbuf.is_empty()
    }

    /// Wakes whatever is in flight on the socket (a receive or a poll).
    pub fn shut(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// The timeout of a `Want::Pace`, at an address that stays put.
    pub fn pace_timespec(&mut self, wait: Duration) -> *const io_uring::types::Timespec {
        let ts = io_uring::types::Timespec::new()
            .sec(wait.as_secs())
            .nsec(wait.subsec_nanos());
        match self.pace_wait.as_mut() {
            Some(b) => {
                **b = ts;
                &**b
            }
            None => &**self.pace_wait.insert(Box::new(ts)),
        }
    }

    /// Gives back every buffer; the connection is going away.
    pub fn release(mut self, cx: &mut Cx) {
        if let Some(c) = self.chunk.take() {
            cx.reads.give(c.buf);
        }
        if let Some((buf, _)) = self.reading.take().and_then(|r| r.buf) {
            cx.reads.give(buf);
        }
        for b in [self.inbuf, self.out, self.held] {
            cx.give_buf(b);
        }
    }

    /// Bytes from the client. An error means the TLS session is broken;
    /// its alert is sent best effort and the connection should close.
    pub fn on_recv(&mut self, data: &[u8], cx: &mut Cx) -> Result<(), rustls::Error> {
        if self.phase != Phase::Reading || data.is_empty() {
            return Ok(());
        }
        if self.inbuf.capacity() == 0 {
            self.inbuf = cx.take_buf();
        }
        self.head_started.get_or_insert(cx.now);
        let fed = self.feed_tls(data);
        if let Err(e) = &fed {
            tracing::debug!(peer = %self.peer, error = %e, "TLS error");
            cx.metrics.tls_error();
            // Let the client see the alert before the close.
            let _ = self.flush(&cx.metrics);
        }
        fed
    }

    /// Advances as far as possible without waiting; returns what to wait
    /// for next. Call it only with nothing in flight.
    pub fn advance(&mut self, cx: &mut Cx) -> Want {
        let timeouts = &cx.shared.config.timeouts;
        let (header, keepalive, send) = (timeouts.header(), timeouts.keepalive(), timeouts.send());
        loop {
            match self.phase {
                Phase::Reading => {
                    if self.tls.is_some() || self.has_output() {
                        // Handshake records, or nothing for plain connections.
                        match self.write_out(cx) {
                            Step::Done if !self.settle_tls(cx) => return Want::Close,
                            Step::Done => {}
                            Step::Failed => return Want::Close,
                            // Handshake bytes are not paced; treat as full.
                            _ => {
                                self.deadline = cx.now + send;
                                return Want::PollOut;
                            }
                        }
                    }
                    match self.parse_next(cx) {
                        Next::Replied => continue,
                        Next::Open => {
                            self.deadline = cx.now + send;
                            return Want::Open;
                        }
                        Next::Incomplete => {}
                    }
                    if self.inbuf.is_empty() {
                        if cx.draining {
                            return Want::Close;
                        }
                        // Idle: hold no buffers.
                        let inbuf = std::mem::take(&mut self.inbuf);
                        cx.give_buf(inbuf);
                        if !self.has_output() {
                            let out = std::mem::take(&mut self.out);
                            cx.give_buf(out);
                        }
                    }
                    self.deadline = match self.head_started {
                        Some(t) => t + header,
                        None => cx.now + keepalive,
                    };
                    return Want::Recv;
                }
                Phase::Writing => {
                    let step = self.write_out(cx);
                    self.deadline = cx.now + send;
                    match step {
                        Step::Done => self.finish_reply(cx),
                        Step::Blocked => return Want::PollOut,
                        Step::Paced(wait) => return Want::Pace(wait),
                        Step::Read(disk) => return Want::Read(disk),
                        Step::Park(obj) => return Want::Park(obj),
                        Step::Again => {}
                        Step::Failed => return Want::Close,
                    }
                }
                Phase::Lingering => return Want::Recv,
            }
        }
    }

    /// Parses and decides the next request in `inbuf`, if it is complete.
    fn parse_next(&mut self, cx: &mut Cx) -> Next {
        if self.inbuf.is_empty() {
            return Next::Incomplete;
        }
        if self.out.capacity() == 0 {
            self.out = cx.take_buf();
        }
        let tls = self.tls.is_some();
        let link = playback::link(self.fd(), self.peer, cx);
        let out = if tls { &mut cx.head } else { &mut self.out };
        let mut live_req = None;
        let (decision, used, keep_alive, fill) = match parse_request(&self.inbuf, cx.shared.config.max_header_bytes) {
            Ok(Parsed::Complete(mut req, used)) => {
                if cx.draining {
                    req.keep_alive = false;
                }
                let decision = cx.handler.respond(&req, &link, cx.now, self.absent_on, out);
                playback::decided(&req, &decision, cx);
                if matches!(decision, Decision::Live(_)) {
                    live_req = Some(LiveRequest::of(&req));
                }
                (decision, used, req.keep_alive, req.fill)
            }
            Ok(Parsed::Partial) => return Next::Incomplete,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "bad request");
                (
                    Decision::Reply(cx.handler.refuse(e, out)),
                    self.inbuf.len(),
                    false,
                    false,
                )
            }
        };
        let reply = match decision {
            Decision::Reply(r) => r,
            Decision::Open(ask) if self.open_rounds < cx.shared.disks.roots().len() + open::SPARE_OPEN_ROUNDS => {
                self.open_rounds += 1;
                self.opening = Some(open::Opening::new(ask));
                return Next::Open;
            }
            Decision::Open(_) => {
                let out = if tls { &mut cx.head } else { &mut self.out };
                cx.handler.fail(Status::Unavailable, keep_alive, out)
            }
            Decision::Live(ask) => {
                if let Some(req) = live_req {
                    self.begin_live(ask, req, used, cx);
                }
                return Next::Replied;
            }
        };
        self.begin_reply(reply, used, cx);
        if let Some(c) = self.current.as_mut() {
            c.fill = fill;
        }
        Next::Replied
    }

    fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Shuts our side for a lingering close; TLS sends close_notify first.
    fn start_linger(&mut self, metrics: &WorkerMetrics) {
        if self.handover.kernel {
            let _ = super::ktls::send_close_notify(self.fd());
        }
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
