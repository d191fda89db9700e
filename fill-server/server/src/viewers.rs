//! What the boxes say of their viewers (CMCD from every player, through
//! the heartbeats' playback sums in `store::playback`), summed for
//! operators per ISP, per box (with its standing in steering) and per
//! title, and per hour for the dashboard's plots. The player page's own
//! beacons (`qoe`) are the other source of the QoE summary.
//!
//! The rebuffer share is the share of segment requests that followed a
//! stall (CMCD `bs`): CMCD says that a stall happened, not how long it
//! lasted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::steer::View;
use crate::store::PlaybackRow;

/// Sums over some rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub sessions: u64,
    pub media_requests: u64,
    /// Segment requests that followed a stall.
    pub rebuffers: u64,
    pub rebuffer_share: f64,
    pub avg_bitrate_kbps: Option<u64>,
    pub avg_startup_ms: Option<u64>,
    /// The players' own measure of their throughput (CMCD `mtp`).
    pub avg_throughput_kbps: Option<u64>,
    /// Content answers of the boxes (per box and ISP only), and those that
    /// failed the viewer (per title too).
    pub answers: u64,
    pub failed: u64,
    /// Body bytes the boxes served (per box, ISP and hour only).
    pub bytes: u64,
    #[serde(skip)]
    sums: [u64; 6],
}

impl Figures {
    /// Adds a row. A box's failures are in its own row (empty title) and,
    /// again, per title: the box, ISP and hour sums take the former only.
    fn add(&mut self, r: &PlaybackRow) {
        self.add_row(r, r.title.is_empty());
    }

    fn add_row(&mut self, r: &PlaybackRow, failures: bool) {
        self.sessions += r.sessions;
        self.media_requests += r.media;
        self.rebuffers += r.starved;
        self.answers += r.answers;
        if failures {
            self.failed += r.failed;
        }
        self.bytes += r.bytes;
        let add = [
            r.bitrate_sum,
            r.bitrate_samples,
            r.startup_sum_ms,
            r.startups,
            r.throughput_sum,
            r.throughput_samples,
        ];
        self.sums.iter_mut().zip(add).for_each(|(s, a)| *s += a);
        let avg = |i: usize| (self.sums[i + 1] > 0).then(|| self.sums[i] / self.sums[i + 1]);
        self.avg_bitrate_kbps = avg(0);
        self.avg_startup_ms = avg(2);
        self.avg_throughput_kbps = avg(4);
        self.rebuffer_share = match self.media_requests {
            0 => 0.0,
            m => self.rebuffers as f64 / m as f64,
        };
    }
}

/// One box: its figures and how steering ranks it now.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BoxFigures {
    pub isp: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// The rolling playback score (`steer::quality`), 0..1.
    pub score: f64,
    /// Ranked after healthy boxes for its viewers' rebuffering.
    pub demoted: bool,
    /// Out of steering for failing its viewers' requests.
    pub failing: bool,
}

/// The boxes' CMCD reports, summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ViewersSummary {
    pub by_isp: BTreeMap<String, Figures>,
    pub by_box: BTreeMap<String, BoxFigures>,
    pub by_title: BTreeMap<String, Figures>,
    /// Unix hour → the fleet's figures in it.
    pub by_hour: BTreeMap<i64, Figures>,
}

/// Sums `rows`; each box's standing comes from `view` at `now`.
pub fn summarize(rows: &[PlaybackRow], view: &View, now: u64) -> ViewersSummary {
    let mut s = ViewersSummary::default();
    for r in rows {
        s.by_isp.entry(r.isp.clone()).or_default().add(r);
        s.by_hour.entry(r.hour).or_default().add(r);
        let b = s.by_box.entry(r.appliance.clone()).or_default();
        b.isp.clone_from(&r.isp);
        b.figures.add(r);
        if !r.title.is_empty() {
            s.by_title.entry(r.title.clone()).or_default().add_row(r, true);
        }
    }
    for (id, b) in s.by_box.iter_mut() {
        let q = view.get(id).map(|a| a.quality.clone()).unwrap_or_default();
        b.score = q.score;
        b.demoted = q.demoted;
        b.failing = q.failing(now);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour: i64, appliance: &str, title: &str) -> PlaybackRow {
        PlaybackRow {
            hour,
            appliance: appliance.into(),
            isp: "isp-a".into(),
            title: title.into(),
            ..PlaybackRow::default()
        }
    }

    #[test]
    fn sums_by_isp_box_title_and_hour() {
        let rows = [
            PlaybackRow {
                answers: 100,
                failed: 4,
                ..row(10, "b1", "")
            },
            PlaybackRow {
                sessions: 2,
                media: 50,
                starved: 5,
                bitrate_sum: 100_000,
                bitrate_samples: 50,
                startup_sum_ms: 1_000,
                startups: 2,
                throughput_sum: 9_000,
                throughput_samples: 3,
                ..row(10, "b1", "movie")
            },
            PlaybackRow {
                sessions: 1,
                media: 50,
                bitrate_sum: 50_000,
                bitrate_samples: 50,
                ..row(11, "b2", "movie")
            },
            PlaybackRow {
                failed: 3,
                ..row(10, "b1", "show")
            },
        ];
        let s = summarize(&rows, &View::default(), 0);
        let isp = &s.by_isp["isp-a"];
        assert_eq!((isp.sessions, isp.media_requests, isp.rebuffers), (3, 100, 5));
        assert!((isp.rebuffer_share - 0.05).abs() < 1e-9);
        assert_eq!((isp.avg_bitrate_kbps, isp.avg_startup_ms), (Some(1_500), Some(500)));
        assert_eq!(isp.avg_throughput_kbps, Some(3_000));
        assert_eq!((isp.answers, isp.failed), (100, 4));
        assert_eq!(
            s.by_box["b1"].figures.failed, 4,
            "the box's own count, not its titles' again"
        );
        assert_eq!(s.by_title["show"].failed, 3);
        assert_eq!(s.by_box["b2"].figures.avg_bitrate_kbps, Some(1_000));
        assert_eq!(s.by_title["movie"].sessions, 3);
        assert!(!s.by_title.contains_key(""), "the box rows are not a title");
        assert_eq!((s.by_hour[&10].sessions, s.by_hour[&11].sessions), (2, 1));
        assert_eq!(
            s.by_box["b1"].score, 1.0,
            "a box steering does not know is taken as healthy"
        );
    }
}
