//! Live objects (`/l/{event}/…`) pulled through from upstream: the site's
//! shield box for the event, then the origins. Everything the workers
//! share about them is here: one cache (so the box fetches an object
//! once, whichever worker its clients reached), the upstream lists the
//! agent may replace, the wake-up queues that tell a worker its waiting
//! clients have new bytes, and the counters. The pieces are pure: the
//! key (`key`), the object readers follow (`object`), the cache
//! (`cache`), the fetch state machine (`fetch`) and what it parses
//! (`response`), the route (`route`) and the token rewrite of playlists
//! (`rewrite`); the worker does the I/O (`server/upstream.rs`).

pub mod cache;
pub mod config;
pub mod fetch;
pub mod key;
pub mod object;
pub mod response;
pub mod rewrite;
pub mod route;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use cache::{LiveCache, Lookup};
pub use config::LiveConfig;
pub use key::{Kind, LiveKey};
pub use object::Object;
pub use route::{Peer, Upstreams};

/// The most workers a live object can wake (a bit each).
pub const MAX_WORKERS: usize = 64;

/// What every worker shares about live objects.
pub struct LiveShared {
    pub config: LiveConfig,
    cache: Mutex<LiveCache>,
    upstreams: RwLock<Arc<Upstreams>>,
    wakers: Vec<Waker>,
    pub counters: LiveCounters,
}

/// One worker's wake-up: an eventfd its ring reads, and the objects that
/// changed since it last looked.
struct Waker {
    fd: OwnedFd,
    changed: Mutex<Vec<u64>>,
}

/// Counters of the live side (all workers).
#[derive(Default)]
pub struct LiveCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Requests that joined a fetch already under way.
    pub collapsed: AtomicU64,
    pub stale: AtomicU64,
    /// Requests refused because an object had its most readers.
    pub too_many_readers: AtomicU64,
    /// Upstream requests by result, in [`UPSTREAM_RESULTS`] order.
    pub upstream: [AtomicU64; UPSTREAM_RESULTS.len()],
}

/// The results an upstream request is counted under.
pub const UPSTREAM_RESULTS: [&str; 7] = [
    "ok",
    "refused",
    "timeout",
    "error_status",
    "bad_response",
    "truncated",
    "too_large",
];

impl LiveCounters {
    pub fn upstream_result(&self, label: &str) {
        if let Some(i) = UPSTREAM_RESULTS.iter().position(|l| *l == label) {
            self.upstream[i].fetch_add(1, Relaxed);
        }
    }
}

impl LiveShared {
    pub fn new(config: LiveConfig, workers: usize) -> io::Result<Self> {
        let wakers = (0..workers)
            .map(|_| {
                // SAFETY: plain eventfd(2); the result is owned right away.
                let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(Waker {
                    // SAFETY: a fresh descriptor nobody else owns.
                    fd: unsafe { OwnedFd::from_raw_fd(fd) },
                    changed: Mutex::new(Vec::new()),
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(LiveShared {
            cache: Mutex::new(LiveCache::new(config.cache_mib << 20)),
            upstreams: RwLock::new(Arc::new(config.upstreams.clone())),
            config,
            wakers,
            counters: LiveCounters::default(),
        })
    }

    pub fn cache(&self) -> MutexGuard<'_, LiveCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The agent's new upstream lists and cache size; fetches under way
    /// finish on the old lists.
    /// Returns whether anything changed.
    pub fn reconfigure(&self, upstreams: Upstreams, cache_mib: Option<u64>) -> bool {
        let mut changed = false;
        {
            let mut now = self.upstreams.write().unwrap_or_else(|p| p.into_inner());
            if **now != upstreams {
                *now = Arc::new(upstreams);
                changed = true;
            }
        }
        if let Some(cap) = cache_mib.filter(|m| *m > 0).map(|m| m << 20) {
            let mut cache = self.cache();
            if cache.cap() != cap {
                cache.set_cap(cap);
                changed = true;
            }
        }
        changed
    }

    /// Worker `i`'s eventfd (its ring reads it).
    pub fn wake_fd(&self, i: usize) -> RawFd {
        self.wakers[i].fd.as_raw_fd()
    }

    /// Tells the workers in `mask` that object `id` changed. Worker `me`'s
    /// own bit is returned for it to handle directly.
    pub fn wake(&self, mask: u64, id: u64, me: usize) -> bool {
        for (i, w) in self.wakers.iter().enumerate() {
            if mask & (1 << i) == 0 || i == me {
                continue;
            }
            let mut changed = w.changed.lock().unwrap_or_else(|p| p.into_inner());
            let first = changed.is_empty();
            changed.push(id);
            drop(changed);
            if first {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a live u64 to our eventfd. A
                // full counter (EAGAIN) already means "wake up".
                unsafe { libc::write(w.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
        mask & (1 << me) != 0
    }

    /// The objects that changed for worker `i` since it last looked.
    pub fn changed(&self, i: usize, into: &mut Vec<u64>) {
        let mut changed = self.wakers[i].changed.lock().unwrap_or_else(|p| p.into_inner());
        into.append(&mut changed);
    }
}

impl LiveShared {
    /// The live side's series for `/metrics`.
    pub fn render(&self, page: &mut nearcast_common::prometheus::Exposition) {
        use nearcast_common::prometheus::Kind::{Counter, Gauge};
        let c = &self.counters;
        page.family(
            "nearcast_upstream_requests_total",
            Counter,
            "Upstream fetches of live objects (each attempt), by result.",
        );
        for (i, result) in UPSTREAM_RESULTS.iter().enumerate() {
            page.sample(
                "nearcast_upstream_requests_total",
                &[("result", result)],
                c.upstream[i].load(Relaxed),
            );
        }
        page.family(
            "nearcast_live_requests_total",
            Counter,
            "Requests for live objects, by how the cache answered: hit (stored or being filled) or miss (fetched).",
        );
        page.sample(
            "nearcast_live_requests_total",
            &[("cache", "hit")],
            c.hits.load(Relaxed),
        );
        page.sample(
            "nearcast_live_requests_total",
            &[("cache", "miss")],
            c.misses.load(Relaxed),
        );
        let (bytes, entries) = {
            let cache = self.cache();
            (cache.bytes(), cache.entries())
        };
        let singles: [(&str, _, &str, u64); 6] = [
            (
                "nearcast_live_collapsed_total",
                Counter,
                "Requests that joined an upstream fetch already under way.",
                c.collapsed.load(Relaxed),
            ),
            (
                "nearcast_live_stale_total",
                Counter,
                "Playlists answered from a stale copy because every upstream failed.",
                c.stale.load(Relaxed),
            ),
            (
                "nearcast_live_readers_refused_total",
                Counter,
                "Requests refused (503) because the object had its most readers.",
                c.too_many_readers.load(Relaxed),
            ),
            (
                "nearcast_live_cache_bytes",
                Gauge,
                "Bytes held by the live cache.",
                bytes,
            ),
            (
                "nearcast_live_cache_entries",
                Gauge,
                "Objects in the live cache.",
                entries as u64,
            ),
            (
                "nearcast_live_cache_capacity_bytes",
                Gauge,
                "The live cache's cap.",
                self.cache().cap(),
            ),
        ];
        for (name, kind, help, v) in singles {
            page.single(name, kind, help, v);
        }
    }
}
