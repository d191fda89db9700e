//! One worker thread: one io_uring, its own listening sockets, its own
//! connections, file cache and read queues. Nothing is shared with other
//! workers on the request path except the counters it alone writes.
//!
//! io_uring carries accepts (multishot), receives (into provided buffers),
//! write-readiness polls, waits of rate-capped connections, reads of body
//! bytes that are not in the page cache, opens of files whose lookup is
//! not in the kernel's caches, polls of upstream fetches' sockets
//! (`upstream.rs`), reads of its eventfd (live objects changed for its
//! clients) and the timer tick. Connections decide (`conn.rs`); the
//! worker turns what each wants into a submission. A connection waiting
//! for a live object is parked: nothing in flight, listed under the
//! object until a change wakes it.
//! Each connection has at most one operation in flight (or one place in a
//! disk's read queue), so its slot is freed only when nothing can complete
//! for it any more, and completions never meet a reused slot.

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

mod live;

use super::bufring::BufRing;
use super::conn::{Conn, Cx, Want};
use super::op::Op;
use super::reads::ReadQueues;
use super::upstream::Fetches;
use super::Shared;
use crate::handler::Handler;
use crate::metrics::WorkerMetrics;
use crate::store::FileCache;

const TICK: Duration = Duration::from_millis(200);
/// How long after the drain a worker waits for reads a disk does not answer.
const STUCK_READS: Duration = Duration::from_secs(5);
const RECV_BUFS: u16 = 512;
const RECV_BUF_SIZE: usize = 16 * 1024;

struct Listener {
    sock: Option<TcpListener>,
    tls: bool,
    armed: bool,
}

/// A connection and what the worker has in flight for it.
struct Slot {
    conn: Conn,
    /// An operation on this connection has not completed yet.
    in_flight: bool,
    /// Close requested while an operation was in flight.
    closing: bool,
    /// Parked on this live object.
    parked: Option<u64>,
}

pub struct Worker {
    // Dropped first: the kernel must be done with the buffers below.
    ring: IoUring,
    bufs: BufRing,
    listeners: Vec<Listener>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    cx: Cx,
    tick: Box<types::Timespec>,
    drain_deadline: Option<Instant>,
    cqes: Vec<(u64, i32, u32)>,
    fetches: Fetches,
    /// Connections parked on each live object.
    parked: HashMap<u64, Vec<usize>>,
    /// The eventfd's counter lands here (the kernel writes it).
    wake_buf: Box<u64>,
    changed: Vec<u64>,
}

impl Worker {
    pub fn new(
        me: usize,
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
            Duration::from_millis(cfg.disk_io.admit_within_ms),
        );
        let handler = Handler::new(shared.keyring.clone(), cfg.auth.required, files).with_cmsd(&cfg.cmsd);
        let io = &cfg.disk_io;
        let reads = ReadQueues::new(
            shared.disks.roots().len(),
            io.queue_depth,
            io.buffers,
            io.buffer_kib * 1024,
        );
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
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            tick: Box::new(types::Timespec::new().sec(0).nsec(TICK.subsec_nanos())),
            drain_deadline: None,
            cqes: Vec::with_capacity(1024),
            fetches: Fetches::new(shared.live.clone(), shared.keyring.clone(), me),
            parked: HashMap::new(),
            wake_buf: Box::new(0),
            changed: Vec::new(),
            cx: Cx::new(handler, metrics, shared, reads, me),
        })
    }

    /// Serves until shutdown is requested and the drain is over.
    pub fn run(mut self) -> io::Result<()> {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.push(opcode::Timeout::new(&*self.tick).build().user_data(Op::Tick.data(0)));
        self.arm_wake();
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            self.cx.now = Instant::now();
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            for &(data, res, flags) in &cqes {
                match Op::of(data) {
                    (Some(Op::Accept), i) => self.on_accept(i, res, flags),
                    (Some(Op::Recv), id) => self.on_recv(id, res, flags),
                    (Some(Op::Poll | Op::Pace), id) => self.on_ready(id, res),
                    (Some(Op::Read), id) => self.completed(id, |c, cx| c.on_read(res, cx)),
                    (Some(Op::Open), id) => self.completed(id, |c, cx| c.on_open(res, cx)),
                    (Some(Op::Tick), _) => self.on_tick(),
                    (Some(Op::Wake), _) => self.on_wake(),
                    (Some(Op::Upstream), id) => self.fetches.on_poll(id, res, self.cx.now),
                    (Some(Op::Cancel) | None, _) => {}
                }
            }
            cqes.clear();
            self.cqes = cqes;
            self.live_work();
            self.dispatch_reads();
            if let Some(deadline) = self.drain_deadline {
                // Reads in flight write into our buffers: wait them out, and
                // if a disk never answers, leave the ring and the buffers to
                // the kernel rather than free memory it may still write.
                let reading = self.cx.reads.busy();
                if (self.live == 0 || self.cx.now >= deadline) && !reading {
                    return Ok(());
                }
                if self.cx.now >= deadline + STUCK_READS {
                    tracing::error!("disk reads still in flight after the drain; leaving them");
                    std::mem::forget(self);
                    return Ok(());
                }
            }
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: entries point only at memory the worker owns for as long
            // as the operation lives (the boxed timespecs, the buffer ring,
            // read buffers held by their connection until completion).
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
            .user_data(Op::Accept.data(i));
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
        let shared = &self.cx.shared;
        // The cap is global: one counter shared by all workers.
        if shared.open.fetch_add(1, Ordering::AcqRel) >= shared.config.max_connections {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            self.cx.metrics.refused();
            return;
        }
        let Some(conn) = self.new_conn(sock, self.listeners[li].tls) else {
            self.cx.shared.open.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let slot = Slot {
            conn,
            in_flight: false,
            closing: false,
            parked: None,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(slot);
                id
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.live += 1;
        self.cx.metrics.opened();
        self.drive(id);
    }

    fn new_conn(&self, sock: TcpStream, tls: bool) -> Option<Conn> {
        let peer = sock.peer_addr().ok()?;
        let _ = sock.set_nodelay(true);
        let shared = &self.cx.shared;
        let tls = match tls {
            true => Some(Box::new(rustls::ServerConnection::new(shared.tls.clone()?).ok()?)),
            false => None,
        };
        let peer = nearcast_common::prefix::canonical(peer.ip());
        Some(Conn::new(sock, peer, tls, shared.rate, self.cx.now))
    }

    fn on_recv(&mut self, id: usize, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let Some(slot) = self.slots[id].as_mut() else {
            return;
        };
        slot.in_flight = false;
        let data = match bid {
            Some(b) if res > 0 && !slot.closing => self.bufs.get(b, res as usize),
            _ => &[],
        };
        let ok = if slot.closing || (res <= 0 && res != -libc::ENOBUFS) {
            false
        } else {
            slot.conn.on_recv(data, &mut self.cx).is_ok()
        };
        if let Some(b) = bid {
            self.bufs.recycle(b);
        }
        if ok {
            self.drive(id);
        } else {
            self.close(id);
        }
    }

    /// The socket can take more (poll) or the rate cap allows more (pace).
    fn on_ready(&mut self, id: usize, res: i32) {
        let Some(slot) = self.slots[id].as_mut() else {
            return;
        };
        slot.in_flight = false;
        if slot.closing || (res < 0 && res != -libc::ETIME) {
            self.close(id);
            return;
        }
        self.drive(id);
    }

    /// A body read (`on_read`) or a file open (`on_open`) completed: the
    /// connection takes the result, then closes or goes on.
    fn completed(&mut self, id: usize, take: impl FnOnce(&mut Conn, &mut Cx)) {
        let Some(slot) = self.slots[id].as_mut() else {
            return;
        };
        slot.in_flight = false;
        take(&mut slot.conn, &mut self.cx);
        if slot.closing {
            self.close(id);
        } else {
            self.drive(id);
        }
    }

    /// Advances one connection as far as it can go without waiting, then
    /// leaves exactly one operation in flight for it (or closes it).
    fn drive(&mut self, id: usize) {
        let Some(slot) = self.slots[id].as_mut() else {
            return;
        };
        let want = slot.conn.advance(&mut self.cx);
        let fd = types::Fd(slot.conn.fd());
        let entry = match want {
            Want::Recv => opcode::Recv::new(fd, std::ptr::null_mut(), self.bufs.buf_size() as u32)
                .buf_group(self.bufs.group())
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(Op::Recv.data(id)),
            Want::PollOut => opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                .build()
                .user_data(Op::Poll.data(id)),
            // The timeout stays with the connection, which stays in its slot.
            Want::Pace(wait) => opcode::Timeout::new(slot.conn.pace_timespec(wait))
                .build()
                .user_data(Op::Pace.data(id)),
            Want::Open => match slot.conn.open_args() {
                Some((path, how)) => opcode::OpenAt2::new(types::Fd(libc::AT_FDCWD), path, how)
                    .build()
                    .user_data(Op::Open.data(id)),
                None => return self.close(id),
            },
            Want::Read(disk) => {
                // Queued, not in flight: `close` takes it out of the queue.
                self.cx.reads.push(disk, id);
                self.cx.metrics.queued(disk, 1);
                return;
            }
            Want::Park(obj) => {
                // Nothing in flight: `close` takes it off the list.
                slot.parked = Some(obj);
                self.parked.entry(obj).or_default().push(id);
                return;
            }
            Want::Close => return self.close(id),
        };
        slot.in_flight = true;
        self.push(entry);
    }

    /// Submits queued reads while disks are below their depth and buffers
    /// are free.
    fn dispatch_reads(&mut self) {
        while let Some((disk, id, buf)) = self.cx.reads.pop() {
            let started = match self.slots[id].as_mut() {
                Some(slot) => slot.conn.start_read(buf, self.cx.now),
                None => Err(buf),
            };
            let (ask, ptr) = match started {
                Ok(read) => read,
                Err(buf) => {
                    // Cannot happen: a closed connection leaves the queue.
                    self.cx.reads.give(buf);
                    self.cx.reads.done(disk);
                    self.cx.metrics.queued(disk, -1);
                    continue;
                }
            };
            let Some(slot) = self.slots[id].as_mut() else {
                continue;
            };
            slot.in_flight = true;
            let e = opcode::Read::new(types::Fd(ask.fd), ptr, ask.len as u32)
                .offset(ask.offset)
                .build()
                .user_data(Op::Read.data(id));
            self.push(e);
        }
    }

    /// Closes now, or once the operation in flight completes (the shutdown
    /// makes a receive or poll complete at once; a pace wait ends by itself
    /// within one chunk's time, a read when the disk answers).
    fn close(&mut self, id: usize) {
        let Some(slot) = self.slots[id].as_mut() else {
            return;
        };
        if slot.in_flight {
            if !slot.closing {
                slot.closing = true;
                slot.conn.shut();
            }
            return;
        }
        if let Some(disk) = slot.conn.queued_on() {
            self.cx.reads.cancel(disk, id);
            self.cx.metrics.queued(disk, -1);
        }
        if let Some(obj) = slot.parked.take() {
            if let Some(list) = self.parked.get_mut(&obj) {
                list.retain(|&c| c != id);
                if list.is_empty() {
                    self.parked.remove(&obj);
                }
            }
        }
        if let Some(slot) = self.slots[id].take() {
            slot.conn.release(&mut self.cx);
            self.free.push(id);
            self.live -= 1;
            self.cx.shared.open.fetch_sub(1, Ordering::AcqRel);
            self.cx.metrics.closed();
        }
    }

    fn on_tick(&mut self) {
        self.push(opcode::Timeout::new(&*self.tick).build().user_data(Op::Tick.data(0)));
        self.fetches.on_tick(self.cx.now);
        self.cx.merge_tallies();
        self.cx.metrics.buffers_in_use(self.cx.reads.buffers_in_use());
        if self.drain_deadline.is_none() && self.cx.shared.shutdown.load(Ordering::Acquire) {
            self.start_drain();
        }
        let now = self.cx.now;
        for id in 0..self.slots.len() {
            let Some(slot) = self.slots[id].as_ref() else {
                continue;
            };
            if !slot.closing && slot.conn.deadline() <= now {
                if !slot.conn.lingering() {
                    self.cx.metrics.timed_out();
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
        self.drain_deadline = Some(self.cx.now + self.cx.shared.config.timeouts.drain());
        self.cx.draining = true;
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                self.push(
                    opcode::AsyncCancel::new(Op::Accept.data(i))
                        .build()
                        .user_data(Op::Cancel.data(i)),
                );
            } else {
                self.listeners[i].sock = None;
            }
        }
        for id in 0..self.slots.len() {
            if self.slots[id].as_ref().is_some_and(|s| s.conn.idle()) {
                self.close(id);
            }
        }
    }
}
