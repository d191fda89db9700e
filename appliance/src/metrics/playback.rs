//! What the box's players say of their playback (CMCD) and how often the
//! box fails them, as Prometheus series: sessions active, rebuffer events,
//! the bitrates they pick, and content answers by outcome.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use nearcast_common::prometheus::{Exposition, Kind};

use super::{sum, WorkerMetrics};
use crate::http::Status;
use crate::sessions::Seen;

/// Upper bounds of the bitrate histogram, kbit/s.
pub const BITRATE_BUCKETS: [f64; 8] = [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0];

/// One worker's playback counters.
pub struct PlaybackMetrics {
    content: AtomicU64,
    failed: AtomicU64,
    media: AtomicU64,
    starved: AtomicU64,
    bitrate: [AtomicU64; BITRATE_BUCKETS.len() + 1],
    bitrate_sum: AtomicU64,
}

impl Default for PlaybackMetrics {
    fn default() -> Self {
        PlaybackMetrics {
            content: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            media: AtomicU64::new(0),
            starved: AtomicU64::new(0),
            bitrate: Default::default(),
            bitrate_sum: AtomicU64::new(0),
        }
    }
}

/// An answer that failed its viewer: the title's file was not here though
/// the token was good (steering sent the player to the wrong box), or the
/// box itself failed.
pub fn failed_viewer(status: Status) -> bool {
    status == Status::NotFound || status.code() >= 500
}

impl PlaybackMetrics {
    /// A content answer (past the token check) finished with `status`.
    pub fn answered(&self, status: Status) {
        self.content.fetch_add(1, Relaxed);
        if failed_viewer(status) {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    /// A request's CMCD, tallied.
    pub fn seen(&self, seen: Seen) {
        if !seen.media {
            return;
        }
        self.media.fetch_add(1, Relaxed);
        self.starved.fetch_add(u64::from(seen.starved), Relaxed);
        if let Some(br) = seen.bitrate_kbps {
            let b = BITRATE_BUCKETS
                .iter()
                .position(|&x| f64::from(br) <= x)
                .unwrap_or(BITRATE_BUCKETS.len());
            self.bitrate[b].fetch_add(1, Relaxed);
            self.bitrate_sum.fetch_add(u64::from(br), Relaxed);
        }
    }

    /// Content answers and failed ones since start: what `/status` says.
    pub fn totals(workers: &[Arc<WorkerMetrics>]) -> (u64, u64) {
        (
            sum(workers, |w| w.playback.content.load(Relaxed)),
            sum(workers, |w| w.playback.failed.load(Relaxed)),
        )
    }
}

/// The playback series; `sessions` is how many the book heard from lately.
pub fn render(page: &mut Exposition, workers: &[Arc<WorkerMetrics>], sessions: usize) {
    let (content, failed) = PlaybackMetrics::totals(workers);
    page.single(
        "nearcast_content_answers_total",
        Kind::Counter,
        "Answers for titles' files past the token check.",
        content,
    );
    page.single(
        "nearcast_content_failed_total",
        Kind::Counter,
        "Of them, not found or a server error: the box failed the viewer.",
        failed,
    );
    page.single(
        "nearcast_cmcd_sessions_active",
        Kind::Gauge,
        "Player sessions (CMCD sid) heard from in the last 30 s.",
        sessions as u64,
    );
    page.single(
        "nearcast_cmcd_media_requests_total",
        Kind::Counter,
        "Media object requests that carried CMCD.",
        sum(workers, |w| w.playback.media.load(Relaxed)),
    );
    page.single(
        "nearcast_cmcd_rebuffers_total",
        Kind::Counter,
        "Media requests whose player said its buffer ran dry since the previous one (bs).",
        sum(workers, |w| w.playback.starved.load(Relaxed)),
    );
    page.family(
        "nearcast_cmcd_bitrate_kbps",
        Kind::Histogram,
        "Encoded bitrate of the media objects players asked for (br).",
    );
    let counts: Vec<u64> = (0..=BITRATE_BUCKETS.len())
        .map(|i| sum(workers, |w| w.playback.bitrate[i].load(Relaxed)))
        .collect();
    let total = sum(workers, |w| w.playback.bitrate_sum.load(Relaxed)) as f64;
    page.histogram("nearcast_cmcd_bitrate_kbps", &[], &BITRATE_BUCKETS, &counts, total);
}
