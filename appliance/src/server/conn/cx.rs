//! What every connection of one worker shares: the handler that decides,
//! the pools of buffers, the counters and the worker's clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use nearcast_common::Name;
use std::time::Instant;

use super::TLS_CHUNK;
use crate::handler::Handler;
use crate::metrics::WorkerMetrics;
use crate::server::reads::ReadQueues;
use crate::server::upstream::FetchAsk;
use crate::server::Shared;

const POOL_MAX: usize = 1024;
const POOL_BUF_INITIAL: usize = 4096;
const POOL_BUF_MAX: usize = 64 * 1024;

/// What every connection of a worker shares: the decision maker, the
/// buffer pools, the counters, and the worker's clock.
pub struct Cx {
    pub handler: Handler,
    pub metrics: Arc<WorkerMetrics>,
    pub shared: Arc<Shared>,
    pub reads: ReadQueues,
    /// Body bytes served per title since the last tick (merged into the
    /// shared table then, so responses take no lock).
    pub titles: HashMap<Box<str>, u64>,
    /// Player sessions' CMCD since the last tick (merged into the shared
    /// book then).
    pub sessions: crate::sessions::Sessions,
    /// Content answers that failed the viewer, per title, since the last
    /// tick.
    pub failed_titles: HashMap<Box<str>, u64>,
    pub now: Instant,
    pub draining: bool,
    /// This worker's index (its bit in a live object's waiting set).
    pub me: usize,
    /// Fetches clients' misses asked for, for the worker to start.
    pub fetch_asks: Vec<FetchAsk>,
    /// TLS sessions go to the kernel after the handshake (kTLS).
    pub ktls: bool,
    /// Cold reads of files this large or larger bypass the page cache.
    pub direct_min: Option<u64>,
    pool: Vec<Vec<u8>>,
    /// File bytes on their way into the TLS cipher.
    pub(super) scratch: Vec<u8>,
    /// A TLS response head on its way into the cipher.
    pub(super) head: Vec<u8>,
}

impl Cx {
    pub fn new(
        handler: Handler,
        metrics: Arc<WorkerMetrics>,
        shared: Arc<Shared>,
        reads: ReadQueues,
        me: usize,
    ) -> Self {
        Cx {
            me,
            fetch_asks: Vec::new(),
            ktls: shared.ktls,
            direct_min: match shared.config.disk_io.direct_min_kib {
                0 => None,
                kib => Some(kib * 1024),
            },
            handler,
            metrics,
            shared,
            reads,
            titles: HashMap::new(),
            sessions: Default::default(),
            failed_titles: HashMap::new(),
            now: Instant::now(),
            draining: false,
            pool: Vec::new(),
            scratch: vec![0; TLS_CHUNK],
            head: Vec::with_capacity(1024),
        }
    }

    /// Hands this tick's tallies (bytes and failures per title, CMCD
    /// sessions) to the shared tables, one lock each, none when empty.
    pub fn merge_tallies(&mut self) {
        merge(&mut self.titles, &self.shared.titles);
        merge(&mut self.failed_titles, &self.shared.failed_titles);
        if !self.sessions.is_empty() {
            let mut book = self.shared.sessions.lock().unwrap_or_else(|p| p.into_inner());
            for (sid, tally) in self.sessions.drain() {
                book.add(&sid, tally, self.now);
            }
        }
    }

    pub(super) fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(POOL_BUF_INITIAL))
    }

    pub(super) fn give_buf(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= POOL_BUF_MAX && self.pool.len() < POOL_MAX {
            buf.clear();
            self.pool.push(buf);
        }
    }
}

/// Adds `local`'s counts to `shared`, emptying it.
fn merge(local: &mut HashMap<Box<str>, u64>, shared: &Mutex<BTreeMap<Name, u64>>) {
    if local.is_empty() {
        return;
    }
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    for (title, n) in local.drain() {
        // Titles come from paths the request parser let through.
        if let Ok(title) = Name::new(title) {
            *shared.entry(title).or_default() += n;
        }
    }
}
