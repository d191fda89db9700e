//! One worker thread: one io_uring, its own listening sockets, its own
//! connections and file cache. Nothing is shared with other workers on the
//! request path except the counters it alone writes.
//!
//! io_uring carries accepts (multishot), receives (into provided buffers),
//! write-readiness polls, waits of rate-capped connections and the timer
//! tick. Each connection has at most one
//! operation in flight, so its slot is freed only when nothing can complete
//! for it any more, and completions never meet a reused slot.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::BufRing;
use super::conn::{Conn, Phase, Progress};
use super::Shared;
use crate::handler::Handler;
use crate::http::{parse_request, Parsed};
use crate::metrics::WorkerMetrics;
use crate::store::FileCache;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_POLL: u64 = 3;
const OP_TICK: u64 = 4;
const OP_CANCEL: u64 = 5;
const OP_PACE: u64 = 6;

const TICK: Duration = Duration::from_millis(200);
/// How long a closing connection keeps draining what the client sends.
const LINGER: Duration = Duration::from_secs(2);
const RECV_BUFS: u16 = 512;
const RECV_BUF_SIZE: usize = 16 * 1024;
/// File bytes encrypted per TLS write (one TLS record).
const TLS_CHUNK: usize = 16 * 1024;
const POOL_MAX: usize = 1024;
const POOL_BUF_INITIAL: usize = 4096;
const POOL_BUF_MAX: usize = 64 * 1024;

fn ud(op: u64, idx: usize) -> u64 {
    (idx as u64) << 3 | op
}

struct Listener {
    sock: Option<TcpListener>,
    tls: bool,
    armed: bool,
}

pub struct Worker {
    // Dropped first: the kernel must be done with the buffers below.
    ring: IoUring,
    bufs: BufRing,
    listeners: Vec<Listener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    handler: Handler,
    pool: Vec<Vec<u8>>,
    metrics: Arc<WorkerMetrics>,
    shared: Arc<Shared>,
    tick: Box<types::Timespec>,
    now: Instant,
    drain_deadline: Option<Instant>,
    scratch: Vec<u8>,
    head: Vec<u8>,
    cqes: Vec<(u64, i32, u32)>,
    /// Body bytes served per title since the last tick (merged into the
    /// shared table then, so responses take no lock).
    titles: HashMap<Box<str>, u64>,
}

impl Worker {
    pub fn new(
        shared: Arc<Shared>,
        listeners: Vec<(TcpListener, bool)>,
        metrics: Arc<WorkerMetrics>,
    ) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_defer_taskrun()
            .setup_cqsize(16384)
            .build(4096)
            .or_else(|_| IoUring::builder().setup_cqsize(16384).build(4096))?;
        let bufs = BufRing::new(&ring, RECV_BUFS, RECV_BUF_SIZE, 0)?;
        let cfg = &shared.config;
        let files = FileCache::new(
            shared.disks.clone(),
            cfg.file_cache.entries,
            Duration::from_millis(cfg.file_cache.valid_ms),
        );
        let handler = Handler::new(shared.keyring.clone(), cfg.auth.required, files);
        Ok(Worker {
            ring,
            bufs,
            listeners: listeners
                .into_iter()
                .map(|(sock, tls)| Listener {
                    sock: Some(sock),
                    tls,
                    armed: false,
                })
                .collect(),
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            handler,
            pool: Vec::new(),
            metrics,
            tick: Box::new(types::Timespec::new().sec(0).nsec(TICK.subsec_nanos())),
            now: Instant::now(),
            drain_deadline: None,
            scratch: vec![0; TLS_CHUNK],
            head: Vec::with_capacity(1024),
            cqes: Vec::with_capacity(1024),
            titles: HashMap::new(),
            shared,
        })
    }

    /// Serves until shutdown is requested and the drain is over.
    pub fn run(mut self) -> io::Result<()> {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.push(opcode::Timeout::new(&*self.tick).build().user_data(ud(OP_TICK, 0)));
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            self.now = Instant::now();
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            for &(data, res, flags) in &cqes {
                let idx = (data >> 3) as usize;
                match data & 7 {
                    OP_ACCEPT => self.on_accept(idx, res, flags),
                    OP_RECV => self.on_recv(idx, res, flags),
                    OP_POLL | OP_PACE => self.on_ready(idx, res),
                    OP_TICK => self.on_tick(),
                    _ => {}
                }
            }
            cqes.clear();
            self.cqes = cqes;
            if let Some(deadline) = self.drain_deadline {
                if self.live == 0 || self.now >= deadline {
                    return Ok(());
                }
            }
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: entries point only at memory the worker owns for as long
            // as the operation lives (the boxed timespec, the buffer ring).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel first.
            let _ = self.ring.submit();
        }
    }

    fn arm_accept(&mut self, i: usize) {
        let Some(sock) = self.listeners[i].sock.as_ref() else {
            return;
        };
        let e = opcode::AcceptMulti::new(types::Fd(sock.as_raw_fd()))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, i));
        self.listeners[i].armed = true;
        self.push(e);
    }

    fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.listeners[li].armed = false;
        }
        if res < 0 {
            match -res {
                libc::ECANCELED => self.listeners[li].sock = None,
                libc::ECONNABORTED | libc::EINTR => {}
                e => {
                    tracing::warn!(error = %io::Error::from_raw_os_error(e), "accept failed; retrying on next tick")
                }
            }
            if matches!(-res, libc::ECONNABORTED | libc::EINTR) && !self.listeners[li].armed {
                self.arm_accept(li);
            }
            return;
        }
        // SAFETY: the kernel just gave us this descriptor.
        let sock = unsafe { TcpStream::from_raw_fd(res) };
        if !self.listeners[li].armed && self.drain_deadline.is_none() {
            self.arm_accept(li);
        }
        if self.drain_deadline.is_some() {
            return;
        }
        // The cap is global: one counter shared by all workers.
        if self.shared.open.fetch_add(1, Ordering::AcqRel) >= self.shared.config.max_connections {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
            self.metrics.refused();
            return;
        }
        let Ok(peer) = sock.peer_addr() else {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let _ = sock.set_nodelay(true);
        let tls = if self.listeners[li].tls {
            match self
                .shared
                .tls
                .as_ref()
                .map(|c| rustls::ServerConnection::new(c.clone()))
            {
                Some(Ok(c)) => Some(Box::new(c)),
                _ => {
                    self.shared.open.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
        } else {
            None
        };
        let peer = nearcast_common::prefix::canonical(peer.ip());
        let conn = Conn::new(sock, peer, tls, self.shared.rate, self.now);
        let id = match self.free.pop() {
            Some(id) => {
                self.conns[id] = Some(conn);
                id
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        self.live += 1;
        self.metrics.opened();
        self.drive(id);
    }

    fn on_recv(&mut self, id: usize, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        conn.in_flight = false;
        let data = match bid {
            Some(b) if res > 0 && !conn.closing => self.bufs.get(b, res as usize),
            _ => &[],
        };
        if conn.closing || (res <= 0 && res != -libc::ENOBUFS) {
            if let Some(b) = bid {
                self.bufs.recycle(b);
            }
            self.close(id);
            return;
        }
        let mut broken = false;
        if conn.phase == Phase::Reading && !data.is_empty() {
            if conn.inbuf.capacity() == 0 {
                conn.inbuf = take_buf(&mut self.pool);
            }
            conn.head_started.get_or_insert(self.now);
            if let Err(e) = conn.feed_tls(data) {
                tracing::debug!(peer = %conn.peer, error = %e, "TLS error");
                self.metrics.tls_error();
                broken = true;
            }
        }
        if let Some(b) = bid {
            self.bufs.recycle(b);
        }
        if broken {
            if let Some(conn) = self.conns[id].as_mut() {
                // Best effort: let the client see the alert before the close.
                let _ = conn.write_out(&mut self.scratch, &self.metrics, self.now);
            }
            self.close(id);
            return;
        }
        self.drive(id);
    }

    /// The socket can take more (poll) or the rate cap allows more (pace).
    fn on_ready(&mut self, id: usize, res: i32) {
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        conn.in_flight = false;
        if conn.closing || (res < 0 && res != -libc::ETIME) {
            self.close(id);
            return;
        }
        self.drive(id);
    }

    /// Advances one connection as far as it can go without waiting, then
    /// leaves exactly one operation in flight for it (or closes it).
    fn drive(&mut self, id: usize) {
        let timeouts = &self.shared.config.timeouts;
        let (header, keepalive, send) = (timeouts.header(), timeouts.keepalive(), timeouts.send());
        loop {
            let Some(conn) = self.conns[id].as_mut() else {
                return;
            };
            match conn.phase {
                Phase::Reading => {
                    if conn.tls.is_some() || conn.has_output() {
                        // Handshake records, or nothing for plain connections.
                        match conn.write_out(&mut self.scratch, &self.metrics, self.now) {
                            Progress::Done => {}
                            // Handshake bytes are not paced; treat as full.
                            Progress::Blocked | Progress::Paced(_) => {
                                conn.deadline = self.now + send;
                                return self.submit_poll(id);
                            }
                            Progress::Failed => return self.close(id),
                        }
                    }
                    if !conn.inbuf.is_empty() {
                        if conn.out.capacity() == 0 {
                            conn.out = take_buf(&mut self.pool);
                        }
                        let out = if conn.tls.is_some() {
                            &mut self.head
                        } else {
                            &mut conn.out
                        };
                        match parse_request(&conn.inbuf, self.shared.config.max_header_bytes) {
                            Ok(Parsed::Complete(mut req, used)) => {
                                if self.drain_deadline.is_some() {
                                    req.keep_alive = false;
                                }
                                let reply = self.handler.respond(&req, conn.peer, self.now, out);
                                conn.begin_reply(reply, used, &mut self.head, self.now);
                                continue;
                            }
                            Ok(Parsed::Partial) => {}
                            Err(e) => {
                                tracing::debug!(peer = %conn.peer, error = %e, "bad request");
                                let reply = self.handler.refuse(e, out);
                                let all = conn.inbuf.len();
                                conn.begin_reply(reply, all, &mut self.head, self.now);
                                continue;
                            }
                        }
                    } else {
                        if self.drain_deadline.is_some() {
                            return self.close(id);
                        }
                        // Idle: hold no buffers.
                        give_buf(&mut self.pool, std::mem::take(&mut conn.inbuf));
                        if !conn.has_output() {
                            give_buf(&mut self.pool, std::mem::take(&mut conn.out));
                        }
                    }
                    conn.deadline = match conn.head_started {
                        Some(t) => t + header,
                        None => self.now + keepalive,
                    };
                    return self.submit_recv(id);
                }
                Phase::Writing => match conn.write_out(&mut self.scratch, &self.metrics, self.now) {
                    Progress::Done => {
                        if let Some((file, bytes)) = conn.finish_reply(&self.metrics, self.now) {
                            match self.titles.get_mut(&*file.title) {
                                Some(n) => *n += bytes,
                                None => {
                                    self.titles.insert(file.title.clone(), bytes);
                                }
                            }
                        }
                        if conn.keep_alive && self.drain_deadline.is_none() {
                            conn.phase = Phase::Reading;
                        } else {
                            conn.start_linger(&self.metrics);
                            conn.deadline = self.now + LINGER;
                        }
                    }
                    Progress::Blocked => {
                        conn.deadline = self.now + send;
                        return self.submit_poll(id);
                    }
                    Progress::Paced(wait) => {
                        conn.deadline = self.now + send;
                        return self.submit_pace(id, wait);
                    }
                    Progress::Failed => return self.close(id),
                },
                Phase::Lingering => return self.submit_recv(id),
            }
        }
    }

    fn submit_recv(&mut self, id: usize) {
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        conn.in_flight = true;
        let e = opcode::Recv::new(
            types::Fd(conn.sock.as_raw_fd()),
            std::ptr::null_mut(),
            self.bufs.buf_size() as u32,
        )
        .buf_group(self.bufs.group())
        .build()
        .flags(squeue::Flags::BUFFER_SELECT)
        .user_data(ud(OP_RECV, id));
        self.push(e);
    }

    fn submit_poll(&mut self, id: usize) {
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        conn.in_flight = true;
        let e = opcode::PollAdd::new(types::Fd(conn.sock.as_raw_fd()), libc::POLLOUT as u32)
            .build()
            .user_data(ud(OP_POLL, id));
        self.push(e);
    }

    /// Waits out the rate cap; the connection stays in its slot with the
    /// timeout as its one operation in flight.
    fn submit_pace(&mut self, id: usize, wait: Duration) {
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        conn.in_flight = true;
        let ts = types::Timespec::new().sec(wait.as_secs()).nsec(wait.subsec_nanos());
        let ts: *const types::Timespec = match conn.pace_wait.as_mut() {
            Some(b) => {
                **b = ts;
                &**b
            }
            None => &**conn.pace_wait.insert(Box::new(ts)),
        };
        let e = opcode::Timeout::new(ts).build().user_data(ud(OP_PACE, id));
        self.push(e);
    }

    /// Closes now, or once the operation in flight completes (the shutdown
    /// makes a receive or poll complete at once; a pace wait ends by itself
    /// within one chunk's time).
    fn close(&mut self, id: usize) {
        let Some(conn) = self.conns[id].as_mut() else {
            return;
        };
        if conn.in_flight {
            if !conn.closing {
                conn.closing = true;
                let _ = conn.sock.shutdown(Shutdown::Both);
            }
            return;
        }
        if let Some(conn) = self.conns[id].take() {
            give_buf(&mut self.pool, conn.inbuf);
            give_buf(&mut self.pool, conn.out);
            self.free.push(id);
            self.live -= 1;
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
            self.metrics.closed();
        }
    }

    fn on_tick(&mut self) {
        self.push(opcode::Timeout::new(&*self.tick).build().user_data(ud(OP_TICK, 0)));
        if !self.titles.is_empty() {
            let mut shared = self.shared.titles.lock().unwrap_or_else(|p| p.into_inner());
            for (title, bytes) in self.titles.drain() {
                *shared.entry(title.into()).or_default() += bytes;
            }
        }
        if self.drain_deadline.is_none() && self.shared.shutdown.load(Ordering::Acquire) {
            self.start_drain();
        }
        for id in 0..self.conns.len() {
            let expired = self.conns[id]
                .as_ref()
                .is_some_and(|c| !c.closing && c.deadline <= self.now);
            if expired {
                if self.conns[id].as_ref().is_some_and(|c| c.phase != Phase::Lingering) {
                    self.metrics.timed_out();
                }
                self.close(id);
            }
        }
        if self.drain_deadline.is_none() {
            for i in 0..self.listeners.len() {
                if !self.listeners[i].armed {
                    self.arm_accept(i);
                }
            }
        }
    }

    /// Stops accepting, closes idle connections, lets the busy ones finish.
    fn start_drain(&mut self) {
        self.drain_deadline = Some(self.now + self.shared.config.timeouts.drain());
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                self.push(
                    opcode::AsyncCancel::new(ud(OP_ACCEPT, i))
                        .build()
                        .user_data(ud(OP_CANCEL, i)),
                );
            } else {
                self.listeners[i].sock = None;
            }
        }
        for id in 0..self.conns.len() {
            let idle = self.conns[id]
                .as_ref()
                .is_some_and(|c| c.phase == Phase::Reading && c.inbuf.is_empty());
            if idle {
                self.close(id);
            }
        }
    }
}

fn take_buf(pool: &mut Vec<Vec<u8>>) -> Vec<u8> {
    pool.pop().unwrap_or_else(|| Vec::with_capacity(POOL_BUF_INITIAL))
}

fn give_buf(pool: &mut Vec<Vec<u8>>, mut buf: Vec<u8>) {
    if buf.capacity() > 0 && buf.capacity() <= POOL_BUF_MAX && pool.len() < POOL_MAX {
        buf.clear();
        pool.push(buf);
    }
}
