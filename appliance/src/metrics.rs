//! Serving counters, one set per worker so the hot path never shares a
//! cache line; the admin listener sums them into Prometheus text.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use nearcast_common::prometheus::{Exposition, Kind};

use crate::http::Status;
use crate::store::Disks;

pub mod playback;
pub use playback::PlaybackMetrics;

/// Upper bounds of the request latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Upper bounds of the disk read latency histogram, in seconds.
pub const READ_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed bounds (one more bucket for +Inf).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = self.bounds.iter().position(|&b| secs <= b).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Writes the sum of `parts` (same bounds) as `name{labels,le=…}`.
    fn render<'a>(
        page: &mut Exposition,
        name: &str,
        labels: &[(&str, &str)],
        parts: impl Iterator<Item = &'a Histogram> + Clone,
    ) {
        let Some(first) = parts.clone().next() else {
            return;
        };
        let counts: Vec<u64> = (0..=first.bounds.len())
            .map(|i| parts.clone().map(|h| h.counts[i].load(Relaxed)).sum())
            .collect();
        let secs = parts.map(|h| h.sum_us.load(Relaxed)).sum::<u64>() as f64 / 1e6;
        page.histogram(name, labels, first.bounds, &counts, secs);
    }
}

/// One disk as one worker sees it.
pub struct DiskMetrics {
    sent_bytes: AtomicU64,
    read_bytes: AtomicU64,
    /// Reads waiting in the queue or in flight.
    depth: AtomicI64,
    read_latency: Histogram,
}

impl DiskMetrics {
    fn new() -> Self {
        DiskMetrics {
            sent_bytes: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            depth: AtomicI64::new(0),
            read_latency: Histogram::new(&READ_BUCKETS),
        }
    }
}

pub struct WorkerMetrics {
    requests: [AtomicU64; Status::ALL.len()],
    bytes_sent: AtomicU64,
    active: AtomicI64,
    accepted: AtomicU64,
    refused_over_cap: AtomicU64,
    timeouts: AtomicU64,
    tls_errors: AtomicU64,
    /// TLS connections past the handshake: [userspace, kernel].
    tls_modes: [AtomicU64; 2],
    latency: Histogram,
    /// Body bytes that went out straight from the page cache.
    from_cache: AtomicU64,
    /// Body bytes that were read from disk into a buffer first.
    from_disk: AtomicU64,
    buffers_in_use: AtomicI64,
    /// Files opened through io_uring (their lookup was not cached).
    async_opens: AtomicU64,
    disks: Vec<DiskMetrics>,
    /// Content answers and what players said of their playback.
    pub playback: PlaybackMetrics,
}

impl WorkerMetrics {
    pub fn new(disks: usize) -> Arc<Self> {
        Arc::new(WorkerMetrics {
            requests: Default::default(),
            bytes_sent: AtomicU64::new(0),
            active: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            refused_over_cap: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            tls_errors: AtomicU64::new(0),
            tls_modes: Default::default(),
            latency: Histogram::new(&LATENCY_BUCKETS),
            from_cache: AtomicU64::new(0),
            from_disk: AtomicU64::new(0),
            buffers_in_use: AtomicI64::new(0),
            async_opens: AtomicU64::new(0),
            disks: (0..disks).map(|_| DiskMetrics::new()).collect(),
            playback: PlaybackMetrics::default(),
        })
    }

    /// A finished response: its status, body bytes from `disk`, and time.
    pub fn response(&self, status: Status, body_bytes: u64, disk: Option<usize>, took: Duration) {
        self.requests[status.index()].fetch_add(1, Relaxed);
        if let Some(d) = disk.and_then(|d| self.disks.get(d)) {
            d.sent_bytes.fetch_add(body_bytes, Relaxed);
        }
        self.latency.observe(took);
    }

    /// Bytes written to sockets (heads and bodies, after TLS framing).
    pub fn sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Relaxed);
    }

    pub fn from_cache(&self, n: u64) {
        self.from_cache.fetch_add(n, Relaxed);
    }

    pub fn from_disk(&self, n: u64) {
        self.from_disk.fetch_add(n, Relaxed);
    }

    /// A read joined `disk`'s queue (`1`) or left it unread (`-1`).
    pub fn queued(&self, disk: usize, delta: i64) {
        if let Some(d) = self.disks.get(disk) {
            d.depth.fetch_add(delta, Relaxed);
        }
    }

    /// A read on `disk` completed with `bytes` after `took` (it leaves the
    /// queue's depth).
    pub fn disk_read(&self, disk: usize, bytes: u64, took: Duration) {
        if let Some(d) = self.disks.get(disk) {
            d.depth.fetch_sub(1, Relaxed);
            d.read_bytes.fetch_add(bytes, Relaxed);
            d.read_latency.observe(took);
        }
    }

    pub fn opened_async(&self) {
        self.async_opens.fetch_add(1, Relaxed);
    }

    pub fn buffers_in_use(&self, n: usize) {
        self.buffers_in_use.store(n as i64, Relaxed);
    }

    pub fn opened(&self) {
        self.accepted.fetch_add(1, Relaxed);
        self.active.fetch_add(1, Relaxed);
    }

    pub fn closed(&self) {
        self.active.fetch_sub(1, Relaxed);
    }

    pub fn refused(&self) {
        self.refused_over_cap.fetch_add(1, Relaxed);
    }

    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    /// A TLS handshake finished; its session went to the kernel or not.
    pub fn tls_mode(&self, kernel: bool) {
        self.tls_modes[usize::from(kernel)].fetch_add(1, Relaxed);
    }

    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Relaxed);
    }

    pub fn active(&self) -> i64 {
        self.active.load(Relaxed)
    }
}

/// Sums one counter over the workers.
fn sum(workers: &[Arc<WorkerMetrics>], f: impl Fn(&WorkerMetrics) -> u64) -> u64 {
    workers.iter().map(|w| f(w)).sum()
}

/// Prometheus text exposition of all workers' counters, the live side,
/// and `sessions` (player sessions heard from lately).
pub fn render(
    workers: &[Arc<WorkerMetrics>],
    disks: &Disks,
    live: &crate::live::LiveShared,
    sessions: usize,
) -> String {
    let mut page = Exposition::new();
    page.family(
        "nearcast_requests_total",
        Kind::Counter,
        "Responses sent, by status code.",
    );
    for s in Status::ALL {
        let n = sum(workers, |w| w.requests[s.index()].load(Relaxed));
        page.sample("nearcast_requests_total", &[("code", &s.code().to_string())], n);
    }
    for (name, text, v) in counters(workers) {
        page.single(name, Kind::Counter, text, v);
    }
    page.single(
        "nearcast_connections_active",
        Kind::Gauge,
        "Open client connections.",
        workers.iter().map(|w| w.active()).sum::<i64>(),
    );
    page.single(
        "nearcast_read_buffers_in_use",
        Kind::Gauge,
        "Disk read buffers held by connections (all workers).",
        workers.iter().map(|w| w.buffers_in_use.load(Relaxed)).sum::<i64>(),
    );
    render_by_kind(&mut page, workers);
    render_disks(&mut page, workers, disks);
    playback::render(&mut page, workers, sessions);
    live.render(&mut page);
    page.family(
        "nearcast_request_duration_seconds",
        Kind::Histogram,
        "Time from a complete request head to the last byte sent.",
    );
    Histogram::render(
        &mut page,
        "nearcast_request_duration_seconds",
        &[],
        workers.iter().map(|w| &w.latency),
    );
    page.finish()
}

/// The plain counters: name, help, value.
fn counters(w: &[Arc<WorkerMetrics>]) -> [(&'static str, &'static str, u64); 6] {
    [
        (
            "nearcast_async_opens_total",
            "Files opened through io_uring because their lookup was not in the kernel's caches.",
            sum(w, |w| w.async_opens.load(Relaxed)),
        ),
        (
            "nearcast_sent_bytes_total",
            "Bytes written to client sockets.",
            sum(w, |w| w.bytes_sent.load(Relaxed)),
        ),
        (
            "nearcast_connections_accepted_total",
            "Connections accepted.",
            sum(w, |w| w.accepted.load(Relaxed)),
        ),
        (
            "nearcast_connections_refused_total",
            "Connections closed at once because the connection cap was reached.",
            sum(w, |w| w.refused_over_cap.load(Relaxed)),
        ),
        (
            "nearcast_timeouts_total",
            "Connections closed by a header, idle or send timeout.",
            sum(w, |w| w.timeouts.load(Relaxed)),
        ),
        (
            "nearcast_tls_errors_total",
            "TLS connections closed on a protocol error.",
            sum(w, |w| w.tls_errors.load(Relaxed)),
        ),
    ]
}

/// Counters split by one label: TLS mode, body source.
fn render_by_kind(page: &mut Exposition, workers: &[Arc<WorkerMetrics>]) {
    page.family(
        "nearcast_tls_connections_total",
        Kind::Counter,
        "TLS connections past the handshake, by where their records are encrypted.",
    );
    for (i, mode) in ["userspace", "kernel"].into_iter().enumerate() {
        let n = sum(workers, |w| w.tls_modes[i].load(Relaxed));
        page.sample("nearcast_tls_connections_total", &[("mode", mode)], n);
    }
    page.family(
        "nearcast_body_bytes_total",
        Kind::Counter,
        "Body bytes sent, by where they came from: straight from the page cache, or read from disk first.",
    );
    let cache = sum(workers, |w| w.from_cache.load(Relaxed));
    let disk = sum(workers, |w| w.from_disk.load(Relaxed));
    page.sample("nearcast_body_bytes_total", &[("source", "page_cache")], cache);
    page.sample("nearcast_body_bytes_total", &[("source", "disk")], disk);
}

/// One per-disk series: name, type, help, and the value for disk `i`.
type Series<'a> = (&'a str, Kind, &'a str, &'a dyn Fn(usize) -> u64);

fn render_disks(page: &mut Exposition, workers: &[Arc<WorkerMetrics>], disks: &Disks) {
    let per_disk =
        |i: usize, f: &dyn Fn(&DiskMetrics) -> u64| workers.iter().filter_map(|w| w.disks.get(i)).map(f).sum::<u64>();
    let labels: Vec<(String, String)> = disks
        .roots()
        .iter()
        .enumerate()
        .map(|(i, root)| (i.to_string(), root.display().to_string()))
        .collect();
    let series: [Series; 5] = [
        (
            "nearcast_disk_sent_bytes_total",
            Kind::Counter,
            "Body bytes served from each disk.",
            &|i| per_disk(i, &|d| d.sent_bytes.load(Relaxed)),
        ),
        (
            "nearcast_disk_read_bytes_total",
            Kind::Counter,
            "Bytes read from each disk into read buffers.",
            &|i| per_disk(i, &|d| d.read_bytes.load(Relaxed)),
        ),
        (
            "nearcast_disk_read_errors_total",
            Kind::Counter,
            "Reads that failed on each disk (EIO and the like).",
            &|i| disks.read_errors(i),
        ),
        (
            "nearcast_disk_read_queue_depth",
            Kind::Gauge,
            "Reads waiting or in flight on each disk.",
            &|i| {
                workers
                    .iter()
                    .filter_map(|w| w.disks.get(i))
                    .map(|d| d.depth.load(Relaxed))
                    .sum::<i64>()
                    .max(0) as u64
            },
        ),
        (
            "nearcast_disk_failed",
            Kind::Gauge,
            "1 while a disk is out of service.",
            &|i| u64::from(disks.is_failed(i)),
        ),
    ];
    for (name, kind, text, value) in series {
        page.family(name, kind, text);
        for (i, (disk, path)) in labels.iter().enumerate() {
            page.sample(name, &[("disk", disk), ("path", path)], value(i));
        }
    }
    page.family(
        "nearcast_disk_read_seconds",
        Kind::Histogram,
        "Time from submitting a disk read to its completion.",
    );
    for (i, (disk, path)) in labels.iter().enumerate() {
        let parts = workers
            .iter()
            .filter_map(move |w| w.disks.get(i))
            .map(|d| &d.read_latency);
        Histogram::render(
            page,
            "nearcast_disk_read_seconds",
            &[("disk", disk), ("path", path)],
            parts,
        );
    }
}
