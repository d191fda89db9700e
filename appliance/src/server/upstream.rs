//! A worker's upstream fetches: sockets on the worker's own ring. Each
//! fetch ([`Fetch`]) decides; this module does its I/O (a non-blocking
//! connect, the request, receives until the socket is dry) and tells the
//! worker what to submit next (a poll) and whom to wake. At most
//! `max_upstream_per_worker` fetches hold a socket; more wait their turn.
//! Like client connections, a fetch has at most one poll in flight and
//! its slot is reused only once nothing can complete for it.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_common::{Grant, IpPrefix, Keyring};

use super::listener::connect_nonblocking;
use super::send;
use crate::live::fetch::{After, Fetch, FetchError, Sink};
use crate::live::{LiveShared, Object};

/// How long a token the box signs for its upstream lasts.
const TOKEN_LIFE: u64 = 600;
const RECV_CHUNK: usize = 64 * 1024;

/// What a client's miss asks the worker to fetch.
pub struct FetchAsk {
    pub obj: Arc<Object>,
    /// The client's `Host`, passed upstream.
    pub host: Box<str>,
    pub from_peer: bool,
}

struct Upstream {
    sock: Option<TcpStream>,
    fetch: Fetch,
    host: Box<str>,
    in_flight: bool,
    /// The deadline passed while a poll was in flight: fail on its return.
    timed_out: bool,
    connected: bool,
}

/// What the worker submits for a fetch: a poll of its socket.
pub struct PollAsk {
    pub id: usize,
    pub fd: i32,
    pub out: bool,
}

pub struct Fetches {
    live: Arc<LiveShared>,
    keyring: Arc<Keyring>,
    me: usize,
    slots: Vec<Option<Upstream>>,
    free: Vec<usize>,
    queued: VecDeque<(Fetch, Box<str>)>,
    open: usize,
    buf: Box<[u8]>,
    /// Polls to submit, and polls to cancel (the deadline passed).
    pub polls: Vec<PollAsk>,
    pub cancels: Vec<usize>,
    /// Objects whose readers on this worker are to be driven.
    pub woken: Vec<u64>,
}

struct CacheSink<'a>(&'a LiveShared, &'a Object);

impl Sink for CacheSink<'_> {
    fn charge(&mut self, n: u64) -> bool {
        self.0.cache().charge(self.1, n)
    }
}

impl Fetches {
    pub fn new(live: Arc<LiveShared>, keyring: Arc<Keyring>, me: usize) -> Self {
        Fetches {
            live,
            keyring,
            me,
            slots: Vec::new(),
            free: Vec::new(),
            queued: VecDeque::new(),
            open: 0,
            buf: vec![0; RECV_CHUNK].into_boxed_slice(),
            polls: Vec::new(),
            cancels: Vec::new(),
            woken: Vec::new(),
        }
    }

    /// Starts (or queues) the fetch a client's miss asked for.
    pub fn start(&mut self, ask: FetchAsk, now: Instant) {
        let route = self.live.upstreams().for_event(ask.obj.key.event(), ask.from_peer);
        let fetch = Fetch::new(ask.obj, route, self.live.config.limits(), now);
        self.queued.push_back((fetch, ask.host));
        self.start_queued(now);
    }

    fn start_queued(&mut self, now: Instant) {
        while self.open < self.live.config.max_upstream_per_worker {
            let Some((fetch, host)) = self.queued.pop_front() else {
                return;
            };
            let up = Upstream {
                sock: None,
                fetch,
                host,
                in_flight: false,
                timed_out: false,
                connected: false,
            };
            let id = match self.free.pop() {
                Some(id) => {
                    self.slots[id] = Some(up);
                    id
                }
                None => {
                    self.slots.push(Some(up));
                    self.slots.len() - 1
                }
            };
            self.open += 1;
            self.connect(id, now);
        }
    }

    /// Connects slot `id` to its fetch's current upstream.
    fn connect(&mut self, id: usize, now: Instant) {
        let Some(up) = self.slots[id].as_mut() else {
            return;
        };
        let Some(addr) = up.fetch.target() else {
            // No upstream configured at all.
            return self.fail(id, FetchError::Connect, now);
        };
        match connect_nonblocking(addr) {
            Ok(sock) => {
                self.polls.push(PollAsk {
                    id,
                    fd: sock.as_raw_fd(),
                    out: true,
                });
                up.sock = Some(sock);
                up.connected = false;
                up.in_flight = true;
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "upstream connect failed");
                self.fail(id, FetchError::Connect, now);
            }
        }
    }

    /// A poll of slot `id` completed.
    pub fn on_poll(&mut self, id: usize, res: i32, now: Instant) {
        let Some(up) = self.slots.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        up.in_flight = false;
        if up.timed_out {
            up.timed_out = false;
            return self.fail(id, FetchError::Timeout, now);
        }
        if res < 0 {
            return self.fail(id, FetchError::Connect, now);
        }
        self.step(id, now);
    }

    /// Goes as far as the socket allows, then polls again or ends.
    fn step(&mut self, id: usize, now: Instant) {
        let Some(up) = self.slots[id].as_mut() else {
            return;
        };
        let Some(sock) = up.sock.as_ref() else {
            return;
        };
        let fd = sock.as_raw_fd();
        if !up.connected {
            if let Some(e) = send::connect_error(fd) {
                tracing::debug!(error = %e, "upstream connect failed");
                return self.fail(id, FetchError::Connect, now);
            }
            up.connected = true;
            let token = upstream_token(
                &self.keyring,
                up.fetch.obj.key.event(),
                sock.local_addr().ok().map(|a| a.ip()),
            );
            up.fetch.connected(&token, &up.host, now);
        }
        while !up.fetch.unsent().is_empty() {
            match send::send(fd, up.fetch.unsent(), false) {
                Ok(n) => up.fetch.sent(n, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    up.in_flight = true;
                    self.polls.push(PollAsk { id, fd, out: true });
                    return;
                }
                Err(_) => return self.fail(id, FetchError::Connect, now),
            }
        }
        self.receive(id, fd, now);
    }

    /// Reads until the socket is dry, the answer whole or the attempt failed.
    fn receive(&mut self, id: usize, fd: i32, now: Instant) {
        loop {
            let Some(up) = self.slots[id].as_mut() else {
                return;
            };
            let outcome = match send::recv(fd, &mut self.buf) {
                Ok(0) => up.fetch.on_eof(),
                Ok(n) => {
                    let obj = up.fetch.obj.clone();
                    up.fetch.on_data(&self.buf[..n], &mut CacheSink(&self.live, &obj), now)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    up.in_flight = true;
                    self.polls.push(PollAsk { id, fd, out: false });
                    return;
                }
                Err(_) if up.fetch.head().is_some() => Err(FetchError::Truncated),
                Err(_) => Err(FetchError::Connect),
            };
            // The cache learns how long the answer lives before any
            // reader is woken to send it.
            let (mask, obj) = (up.fetch.take_wake(), up.fetch.obj.id);
            match outcome {
                Ok(true) => {
                    self.finish(id, now);
                    return self.wake(mask, obj);
                }
                Ok(false) => self.wake(mask, obj),
                Err(e) => {
                    self.wake(mask, obj);
                    return self.fail(id, e, now);
                }
            }
        }
    }

    fn wake(&mut self, mask: u64, obj: u64) {
        if mask != 0 && self.live.wake(mask, obj, self.me) {
            self.woken.push(obj);
        }
    }

    fn counted(&self, e: FetchError) {
        self.live.counters.upstream_result(e.label());
    }

    /// The answer is whole: keep it as long as it may be reused.
    fn finish(&mut self, id: usize, now: Instant) {
        let Some(up) = self.slots[id].take() else {
            return;
        };
        let c = &self.live.config;
        let ttl = up.fetch.ttl(&c.ttls());
        self.live
            .cache()
            .finish(&up.fetch.obj, ttl, Duration::from_millis(c.stale_if_error_ms), now);
        self.live.counters.upstream_result("ok");
        self.release(id, now);
    }

    /// The attempt failed: the next upstream, or the object fails.
    fn fail(&mut self, id: usize, e: FetchError, now: Instant) {
        self.counted(e);
        let Some(up) = self.slots[id].as_mut() else {
            return;
        };
        tracing::debug!(key = up.fetch.obj.key.as_str(), upstream = ?up.fetch.target(), error = %e, "upstream fetch failed");
        up.sock = None;
        match up.fetch.failed(now) {
            After::Retry => self.connect(id, now),
            After::GaveUp(mask) => self.abandon(id, mask, now),
        }
    }

    /// The object has failed: the cache lets it go (keeping a stale copy
    /// it replaced), its readers are woken, the slot is free.
    fn abandon(&mut self, id: usize, mask: u64, now: Instant) {
        if let Some(up) = self.slots[id].take() {
            let obj = up.fetch.obj.clone();
            self.live.cache().failed(&obj, now);
            self.wake(mask, obj.id);
        }
        self.release(id, now);
    }

    fn release(&mut self, id: usize, now: Instant) {
        self.free.push(id);
        self.open -= 1;
        self.start_queued(now);
    }

    /// Fails the attempts past their deadline (a poll in flight is
    /// cancelled first; its completion fails the attempt).
    pub fn on_tick(&mut self, now: Instant) {
        for id in 0..self.slots.len() {
            let Some(up) = self.slots[id].as_mut() else {
                continue;
            };
            if up.fetch.deadline() > now || up.timed_out {
                continue;
            }
            if up.in_flight {
                up.timed_out = true;
                self.cancels.push(id);
            } else {
                self.fail(id, FetchError::Timeout, now);
            }
        }
    }
}

/// The token the box presents upstream for `event`: signed with its own
/// key ring for the whole event and bound to its own address, so it is
/// worth nothing to anyone else.
fn upstream_token(keyring: &Keyring, event: &str, local: Option<IpAddr>) -> String {
    let Some(key) = keyring.primary() else {
        return String::new();
    };
    let prefix = local.and_then(|ip| IpPrefix::new(ip, if ip.is_ipv4() { 32 } else { 128 }).ok());
    key.sign(
        &format!("/l/{event}/"),
        &Grant {
            expires: nearcast_common::unix_now() + TOKEN_LIFE,
            client_prefix: prefix,
        },
    )
}
