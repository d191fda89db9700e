//! The fill's progress and counters, shared by the downloads, the
//! heartbeat (as a `FillReport`), the operator's `status` and `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use nearcast_common::control::{FillFailure, FillReport};
use nearcast_common::prometheus::{Exposition, Kind};
use serde::{Deserialize, Serialize};

/// Failures kept for the report, newest last.
const MAX_FAILURES: usize = 32;

/// Where a file's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Peer,
    Origin,
}

#[derive(Default)]
pub struct Progress {
    running: AtomicBool,
    runs_completed: AtomicU64,
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    run_downloaded: AtomicU64,
    /// Start and (once over) end of the current or last run.
    run_time: Mutex<(Option<Instant>, Option<Instant>)>,
    manifest_version: Mutex<String>,
    failures: Mutex<VecDeque<FillFailure>>,
    // Since start, for /metrics.
    from_peers: AtomicU64,
    from_origin: AtomicU64,
    files_placed: AtomicU64,
    checksum_failures: AtomicU64,
    source_failures: AtomicU64,
    titles_evicted: AtomicU64,
}

/// What `control-agent status` shows (`GET /status` on the agent).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub fill: FillReport,
    pub runs_completed: u64,
    /// Seconds left at the current rate, while a fill runs.
    pub eta_secs: Option<u64>,
    /// Complete titles held.
    pub titles: Vec<nearcast_common::Name>,
    /// Seconds until the fill window opens (0 = open).
    pub window_opens_in_secs: u64,
    /// Why the last fill-server answer this box refused was refused
    /// (altered, replayed, unsigned, for another box), if any was.
    #[serde(default)]
    pub answer_refused: Option<String>,
}

impl Progress {
    /// A run starts against `version`, with `total` files/bytes of which
    /// `held` are already in place.
    pub fn start_run(&self, version: &str, total: (u64, u64), held: (u64, u64)) {
        *self.manifest_version.lock().unwrap_or_else(|p| p.into_inner()) = version.to_string();
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.files_total.store(total.0, Relaxed);
        self.bytes_total.store(total.1, Relaxed);
        self.files_done.store(held.0, Relaxed);
        self.bytes_done.store(held.1, Relaxed);
        self.run_downloaded.store(0, Relaxed);
        *self.run_time.lock().unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), None);
        self.running.store(true, Relaxed);
    }

    pub fn end_run(&self) {
        self.run_time.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(Instant::now());
        self.running.store(false, Relaxed);
        self.runs_completed.fetch_add(1, Relaxed);
    }

    pub fn running(&self) -> bool {
        self.running.load(Relaxed)
    }

    pub fn downloaded(&self, n: u64) {
        self.bytes_done.fetch_add(n, Relaxed);
        self.run_downloaded.fetch_add(n, Relaxed);
    }

    /// Bytes of an attempt that turned out bad no longer count as done.
    pub fn discarded(&self, n: u64) {
        let _ = self
            .bytes_done
            .fetch_update(Relaxed, Relaxed, |d| Some(d.saturating_sub(n)));
    }

    pub fn file_placed(&self, size: u64, from: Option<SourceKind>) {
        self.files_done.fetch_add(1, Relaxed);
        self.files_placed.fetch_add(1, Relaxed);
        match from {
            Some(SourceKind::Peer) => self.from_peers.fetch_add(size, Relaxed),
            Some(SourceKind::Origin) => self.from_origin.fetch_add(size, Relaxed),
            None => 0,
        };
    }

    pub fn checksum_failure(&self) {
        self.checksum_failures.fetch_add(1, Relaxed);
    }

    pub fn source_failure(&self) {
        self.source_failures.fetch_add(1, Relaxed);
    }

    pub fn evicted(&self) {
        self.titles_evicted.fetch_add(1, Relaxed);
    }

    pub fn fail(&self, title: &str, path: &str, reason: String) {
        tracing::warn!(title, path, %reason, "fill failure");
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() == MAX_FAILURES {
            f.pop_front();
        }
        f.push_back(FillFailure {
            title: title.to_string(),
            path: path.to_string(),
            reason,
        });
    }

    fn rate(&self) -> u64 {
        let (start, end) = *self.run_time.lock().unwrap_or_else(|p| p.into_inner());
        let secs = start.map_or(0.0, |s| {
            end.unwrap_or_else(Instant::now).duration_since(s).as_secs_f64()
        });
        if secs < 0.5 {
            return 0;
        }
        (self.run_downloaded.load(Relaxed) as f64 / secs) as u64
    }

    pub fn report(&self) -> FillReport {
        FillReport {
            manifest_version: self.manifest_version.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            running: self.running(),
            files_total: self.files_total.load(Relaxed),
            files_done: self.files_done.load(Relaxed),
            bytes_total: self.bytes_total.load(Relaxed),
            bytes_done: self.bytes_done.load(Relaxed),
            rate_bytes_per_sec: self.rate(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }

    pub fn status(&self, id: &str, titles: Vec<nearcast_common::Name>, window_opens_in_secs: u64) -> Status {
        let fill = self.report();
        let left = fill.bytes_total.saturating_sub(fill.bytes_done);
        let eta_secs = (fill.running && fill.rate_bytes_per_sec > 0).then(|| left / fill.rate_bytes_per_sec);
        Status {
            id: id.to_string(),
            fill,
            runs_completed: self.runs_completed.load(Relaxed),
            eta_secs,
            titles,
            window_opens_in_secs,
            answer_refused: None,
        }
    }

    /// The agent's fill metrics, into the `/metrics` page.
    pub fn render(&self, page: &mut Exposition, titles: usize) {
        use Kind::{Counter, Gauge};
        let r = self.report();
        page.single(
            "nearcast_agent_fill_running",
            Gauge,
            "1 while a fill runs.",
            u8::from(r.running),
        );
        let state = |name: &str, help: &str, total: u64, done: u64, page: &mut Exposition| {
            page.family(name, Gauge, help)
                .sample(name, &[("state", "total")], total)
                .sample(name, &[("state", "done")], done);
        };
        state(
            "nearcast_agent_fill_files",
            "Files of the current manifest.",
            r.files_total,
            r.files_done,
            page,
        );
        state(
            "nearcast_agent_fill_bytes",
            "Bytes of the current manifest.",
            r.bytes_total,
            r.bytes_done,
            page,
        );
        page.single(
            "nearcast_agent_fill_rate_bytes_per_second",
            Gauge,
            "Download rate of the current run.",
            r.rate_bytes_per_sec,
        );
        let placed = "nearcast_agent_filled_bytes_total";
        page.family(placed, Counter, "Bytes of files placed, by source.")
            .sample(placed, &[("source", "peer")], self.from_peers.load(Relaxed))
            .sample(placed, &[("source", "origin")], self.from_origin.load(Relaxed));
        let counters = [
            (
                "nearcast_agent_files_placed_total",
                "Verified files placed.",
                &self.files_placed,
            ),
            (
                "nearcast_agent_checksum_failures_total",
                "Downloads refused for a SHA-256 mismatch.",
                &self.checksum_failures,
            ),
            (
                "nearcast_agent_source_failures_total",
                "Downloads a source could not complete.",
                &self.source_failures,
            ),
            (
                "nearcast_agent_titles_evicted_total",
                "Titles evicted.",
                &self.titles_evicted,
            ),
            (
                "nearcast_agent_fill_runs_total",
                "Fill runs finished.",
                &self.runs_completed,
            ),
        ];
        for (name, help, n) in counters {
            page.single(name, Counter, help, n.load(Relaxed));
        }
        page.single("nearcast_agent_titles", Gauge, "Complete titles held.", titles);
    }
}
