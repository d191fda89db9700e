//! Serving counters, one set per worker so the hot path never shares a
//! cache line; the admin listener sums them into Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::http::Status;

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct WorkerMetrics {
    requests: [AtomicU64; Status::ALL.len()],
    bytes_sent: AtomicU64,
    active: AtomicI64,
    accepted: AtomicU64,
    refused_over_cap: AtomicU64,
    timeouts: AtomicU64,
    tls_errors: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    disk_bytes: Vec<AtomicU64>,
}

impl WorkerMetrics {
    pub fn new(disks: usize) -> Arc<Self> {
        Arc::new(WorkerMetrics {
            disk_bytes: (0..disks).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        })
    }

    /// A finished response: its status, body bytes from `disk`, and time.
    pub fn response(&self, status: Status, body_bytes: u64, disk: Option<usize>, took: Duration) {
        self.requests[status.index()].fetch_add(1, Relaxed);
        if let Some(d) = disk.and_then(|d| self.disk_bytes.get(d)) {
            d.fetch_add(body_bytes, Relaxed);
        }
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Bytes written to sockets (heads and bodies, after TLS framing).
    pub fn sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Relaxed);
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

    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Relaxed);
    }

    pub fn active(&self) -> i64 {
        self.active.load(Relaxed)
    }
}

/// Prometheus text exposition of all workers' counters.
pub fn render(workers: &[Arc<WorkerMetrics>], disks: &crate::store::Disks) -> String {
    let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
    let mut out = String::with_capacity(4096);
    out.push_str(
        "# HELP nearcast_requests_total Responses sent, by status code.\n# TYPE nearcast_requests_total counter\n",
    );
    for s in Status::ALL {
        let n = sum(&|w| w.requests[s.index()].load(Relaxed));
        let _ = writeln!(out, "nearcast_requests_total{{code=\"{}\"}} {n}", s.code());
    }
    let counters: [(&str, &str, u64); 5] = [
        (
            "nearcast_sent_bytes_total",
            "Bytes written to client sockets.",
            sum(&|w| w.bytes_sent.load(Relaxed)),
        ),
        (
            "nearcast_connections_accepted_total",
            "Connections accepted.",
            sum(&|w| w.accepted.load(Relaxed)),
        ),
        (
            "nearcast_connections_refused_total",
            "Connections closed at once because the connection cap was reached.",
            sum(&|w| w.refused_over_cap.load(Relaxed)),
        ),
        (
            "nearcast_timeouts_total",
            "Connections closed by a header, idle or send timeout.",
            sum(&|w| w.timeouts.load(Relaxed)),
        ),
        (
            "nearcast_tls_errors_total",
            "TLS connections closed on a protocol error.",
            sum(&|w| w.tls_errors.load(Relaxed)),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    let active: i64 = workers.iter().map(|w| w.active()).sum();
    let _ = writeln!(
        out,
        "# HELP nearcast_connections_active Open client connections.\n# TYPE nearcast_connections_active gauge\nnearcast_connections_active {active}"
    );
    out.push_str("# HELP nearcast_disk_sent_bytes_total Body bytes served from each disk.\n# TYPE nearcast_disk_sent_bytes_total counter\n");
    for (i, root) in disks.roots().iter().enumerate() {
        let n = sum(&|w| w.disk_bytes.get(i).map_or(0, |d| d.load(Relaxed)));
        let _ = writeln!(
            out,
            "nearcast_disk_sent_bytes_total{{disk=\"{i}\",path=\"{}\"}} {n}",
            root.display()
        );
    }
    out.push_str("# HELP nearcast_disk_failed 1 while a disk is out of service.\n# TYPE nearcast_disk_failed gauge\n");
    for (i, root) in disks.roots().iter().enumerate() {
        let _ = writeln!(
            out,
            "nearcast_disk_failed{{disk=\"{i}\",path=\"{}\"}} {}",
            root.display(),
            u8::from(disks.is_failed(i))
        );
    }
    out.push_str("# HELP nearcast_request_duration_seconds Time from a complete request head to the last byte sent.\n# TYPE nearcast_request_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += sum(&|w| w.latency[i].load(Relaxed));
        let _ = writeln!(
            out,
            "nearcast_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += sum(&|w| w.latency[LATENCY_BUCKETS.len()].load(Relaxed));
    let _ = writeln!(
        out,
        "nearcast_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let secs = sum(&|w| w.latency_sum_us.load(Relaxed)) as f64 / 1e6;
    let _ = writeln!(
        out,
        "nearcast_request_duration_seconds_sum {secs}\nnearcast_request_duration_seconds_count {cumulative}"
    );
    out
}
