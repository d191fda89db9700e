//! How well a box serves its viewers, from what its heartbeats say
//! (`Heartbeat::playback`: its players' CMCD and its failed answers), as
//! steering ranks by it. Two signals, each with its own remedy:
//!
//! - **Lost a title**: at least `FAIL_MIN` answers of one beat for one
//!   title failed (not found with a good token, or a server error): the
//!   box is out of steering for that title at once, for `FAIL_HOLD_SECS`
//!   after the last such beat (its next inventory usually drops the
//!   title sooner), and keeps serving the others.
//! - **Failing**: from a beat that does not say which titles failed (an
//!   older agent), at least `FAIL_MIN` failed answers that are at least
//!   `FAIL_SHARE` of its answers: the whole box is out of steering at once,
//!   for `FAIL_HOLD_SECS` after the last failing beat; then it is tried
//!   again (a box that gets no traffic cannot show it recovered). A beat
//!   that names the titles takes the box out for those titles only: a
//!   failed disk loses its titles and the others serve on.
//! - **Demoted**: a rolling score of its viewers' playback falls below
//!   `DEMOTE_BELOW`; it ranks after every box that is not (its load plus
//!   one), for new sessions and in the content-steering manifest, until
//!   the score is back at `RESTORE_AT` or more. The band between the two
//!   keeps boxes from flapping.
//!
//! The score: the beats' CMCD media requests are gathered until there
//! are at least `MIN_MEDIA` (one beat of a busy box, several of a quiet
//! one); they give
//! `q = 1 - min(1, STALL_WEIGHT * stalled) - TIGHT_WEIGHT * tight`
//! (clamped to 0..1), where `stalled` is the share of media
//! requests that followed a buffer stall (`bs`) and `tight` the share made
//! by sessions whose measured throughput (`mtp`) was under `TIGHT_RATIO`
//! times the bitrate they played (`br`); the score moves half way to `q`.
//! Time without any media request moves it back toward 1, a tenth of the
//! way per `DRIFT_SECS`, so a box nobody is sent to any more is tried
//! again after about two minutes.

use nearcast_common::playback::Playback;
use nearcast_common::Name;
use serde::{Deserialize, Serialize};

pub const FAIL_MIN: u64 = 2;
pub const FAIL_SHARE: f64 = 0.2;
pub const FAIL_HOLD_SECS: u64 = 30;
pub const MIN_MEDIA: u64 = 8;
pub const STALL_WEIGHT: f64 = 5.0;
pub const TIGHT_WEIGHT: f64 = 0.3;
pub const TIGHT_RATIO: f64 = 1.2;
pub const DEMOTE_BELOW: f64 = 0.6;
pub const RESTORE_AT: f64 = 0.85;
pub const DRIFT_SECS: f64 = 10.0;
/// Titles a box is out of steering for at once, at most (the soonest to
/// come back make way).
pub const MAX_LOST: usize = 64;

/// What one heartbeat says of a box's viewers: all the score needs, and
/// what the change log carries to the other replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Content answers, and those that failed the viewer.
    pub answers: u64,
    pub failed: u64,
    /// CMCD media requests, those after a stall, and those of sessions
    /// whose throughput was tight for their bitrate.
    pub media: u64,
    pub stalled: u64,
    pub tight: u64,
    /// Titles with at least `FAIL_MIN` failed answers.
    #[serde(default)]
    pub lost: Vec<Name>,
    /// Titles with any failed answer (0: the beat does not say).
    #[serde(default)]
    pub failed_titles: usize,
}

impl Sample {
    pub fn of(p: &Playback) -> Sample {
        let mut s = Sample {
            answers: p.requests,
            failed: p.errors.min(p.requests),
            lost: p
                .failed_by_title
                .iter()
                .filter(|(_, &n)| n >= FAIL_MIN)
                .map(|(t, _)| t.clone())
                .take(MAX_LOST)
                .collect(),
            failed_titles: p.failed_by_title.values().filter(|&&n| n > 0).count(),
            ..Sample::default()
        };
        for x in &p.sessions {
            s.media += x.media_requests;
            s.stalled += x.starved.min(x.media_requests);
            let tight = x
                .measured_kbps
                .is_some_and(|m| x.bitrate_kbps > 0 && f64::from(m) < TIGHT_RATIO * f64::from(x.bitrate_kbps));
            if tight {
                s.tight += x.media_requests;
            }
        }
        s
    }

    /// This beat's playback quality, 0..1; `None` with too little to go by.
    fn quality(&self) -> Option<f64> {
        if self.media < MIN_MEDIA {
            return None;
        }
        let share = |n: u64| n as f64 / self.media as f64;
        let q = 1.0 - (STALL_WEIGHT * share(self.stalled)).min(1.0) - TIGHT_WEIGHT * share(self.tight);
        Some(q.clamp(0.0, 1.0))
    }

    fn failing(&self) -> bool {
        self.failed >= FAIL_MIN && self.failed as f64 >= FAIL_SHARE * self.answers as f64 && self.failed_titles == 0
    }
}

/// A box's standing with its viewers, kept across beats (in memory: a
/// restarted replica starts every box healthy).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quality {
    /// The rolling playback score, 0..1.
    pub score: f64,
    /// Ranked after the boxes that are not.
    pub demoted: bool,
    /// Unix seconds until which the box is out of steering (0: it is in).
    pub failing_until: u64,
    /// Titles it is out of steering for, and until when (unix seconds).
    pub lost: Vec<(Name, u64)>,
    /// Media requests gathered since the score last moved on evidence.
    #[serde(skip)]
    pending: Sample,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            score: 1.0,
            demoted: false,
            failing_until: 0,
            lost: Vec::new(),
            pending: Sample::default(),
        }
    }
}

impl Quality {
    /// The standing after a beat at `at`, `secs` after the previous one,
    /// that says `sample`.
    pub fn after(&self, sample: &Sample, at: u64, secs: u64) -> Quality {
        let mut pending = self.pending.clone();
        pending.media += sample.media;
        pending.stalled += sample.stalled;
        pending.tight += sample.tight;
        let score = match (pending.quality(), sample.media) {
            (Some(q), _) => {
                pending = Sample::default();
                self.score + 0.5 * (q - self.score)
            }
            (None, 0) => {
                let kept = 0.9f64.powf(secs.max(1) as f64 / DRIFT_SECS);
                1.0 - (1.0 - self.score) * kept
            }
            (None, _) => self.score,
        };
        let demoted = match self.demoted {
            true => score < RESTORE_AT,
            false => score < DEMOTE_BELOW,
        };
        let failing_until = match sample.failing() {
            true => at + FAIL_HOLD_SECS,
            false => self.failing_until,
        };
        Quality {
            score,
            demoted,
            failing_until,
            lost: self.lost_after(sample, at),
            pending,
        }
    }

    /// The titles lost after a beat at `at`: the beat's added (or held
    /// longer), the ones whose hold is over dropped.
    fn lost_after(&self, sample: &Sample, at: u64) -> Vec<(Name, u64)> {
        let mut lost: Vec<(Name, u64)> = self.lost.iter().filter(|(_, until)| *until > at).cloned().collect();
        for t in &sample.lost {
            match lost.iter_mut().find(|(x, _)| x == t) {
                Some(entry) => entry.1 = at + FAIL_HOLD_SECS,
                None => lost.push((t.clone(), at + FAIL_HOLD_SECS)),
            }
        }
        lost.sort_by_key(|l| std::cmp::Reverse(l.1));
        lost.truncate(MAX_LOST);
        lost
    }

    /// Out of steering for `title` at `now`.
    pub fn lost(&self, title: &str, now: u64) -> bool {
        self.lost.iter().any(|(t, until)| t.as_str() == title && now < *until)
    }

    /// Out of steering at `now`.
    pub fn failing(&self, now: u64) -> bool {
        now < self.failing_until
    }

    /// What the rank adds to the box's load.
    pub fn penalty(&self) -> f64 {
        if self.demoted {
            1.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(media: u64, stalled: u64) -> Sample {
        Sample {
            answers: media,
            media,
            stalled,
            ..Sample::default()
        }
    }

    #[test]
    fn rebuffering_demotes_and_recovery_restores_with_a_band() {
        let mut q = Quality::default();
        // 10 % of segment requests after a stall: q = 0.5.
        let bad = sample(40, 4);
        let mut beats = 0;
        while !q.demoted {
            q = q.after(&bad, 0, 10);
            beats += 1;
            assert!(beats < 10, "never demoted: {q:?}");
        }
        assert_eq!(beats, 3, "1 → 0.75 → 0.625 → 0.5625");
        assert_eq!(q.penalty(), 1.0);
        // Good beats bring it back, but only past the upper edge.
        let good = sample(40, 0);
        q = q.after(&good, 0, 10);
        assert!(
            q.score > DEMOTE_BELOW && q.demoted,
            "inside the band it stays demoted: {q:?}"
        );
        q = q.after(&good, 0, 10);
        assert!(q.score >= RESTORE_AT && !q.demoted, "{q:?}");
        // Without any media request it drifts back to 1 slowly, by time
        // whatever the beat interval.
        for secs in [1, 10] {
            let mut idle = Quality {
                score: 0.5,
                demoted: true,
                ..Quality::default()
            };
            let mut waited = 0;
            while idle.demoted {
                idle = idle.after(&sample(0, 0), 0, secs);
                waited += secs;
            }
            assert!((110..=120).contains(&waited), "about two minutes: {waited} s");
        }
        // A quiet box's few requests are gathered over beats: two stalls
        // in eight requests, two per beat, demote it as one busy beat would.
        let mut quiet = Quality::default();
        for _ in 0..4 {
            assert_eq!(quiet.score, 1.0);
            quiet = quiet.after(&sample(2, if quiet.pending.media == 0 { 2 } else { 0 }), 0, 1);
        }
        assert_eq!(quiet.score, 0.5, "{quiet:?}");
    }

    #[test]
    fn a_healthy_box_is_never_demoted() {
        let mut q = Quality::default();
        for i in 0..100 {
            // One stall in 200 segment requests now and then.
            q = q.after(&sample(200, u64::from(i % 7 == 0)), 0, 10);
            assert!(!q.demoted, "{q:?}");
        }
    }

    #[test]
    fn failing_answers_take_the_box_out_for_a_while() {
        let q = Quality::default();
        let failing = Sample {
            answers: 6,
            failed: 3,
            ..Sample::default()
        };
        let q = q.after(&failing, 1_000, 10);
        assert!(q.failing(1_000) && q.failing(1_000 + FAIL_HOLD_SECS - 1));
        assert!(!q.failing(1_000 + FAIL_HOLD_SECS));
        // One miss among many answers is not failing.
        let fine = Sample {
            answers: 500,
            failed: 2,
            ..Sample::default()
        };
        assert!(!Quality::default().after(&fine, 0, 10).failing(0));
        // Nor is one lone miss.
        let lone = Sample {
            answers: 1,
            failed: 1,
            ..Sample::default()
        };
        assert!(!Quality::default().after(&lone, 0, 10).failing(0));
    }

    #[test]
    fn a_lost_title_takes_the_box_out_for_that_title_only() {
        let name = |s: &str| Name::new(s).unwrap();
        let p = Playback {
            requests: 10,
            errors: 8,
            failed_by_title: [(name("movie"), 8)].into(),
            sessions: Vec::new(),
        };
        let q = Quality::default().after(&Sample::of(&p), 1_000, 10);
        assert!(q.lost("movie", 1_000) && !q.lost("show", 1_000));
        assert!(!q.failing(1_000), "one title failing is not the whole box");
        assert!(!q.lost("movie", 1_000 + FAIL_HOLD_SECS), "tried again after the hold");
        // A failed disk loses several titles: the box serves the rest.
        let p = Playback {
            failed_by_title: [(name("movie"), 4), (name("show"), 4)].into(),
            ..p
        };
        let q = Quality::default().after(&Sample::of(&p), 1_000, 10);
        assert!(q.lost("movie", 1_000) && q.lost("show", 1_000) && !q.lost("news", 1_000));
        assert!(!q.failing(1_000));
    }

    #[test]
    fn tight_throughput_counts() {
        use nearcast_common::playback::SessionStats;
        let session = |mtp: u32| SessionStats {
            sid: "s".into(),
            bitrate_kbps: 4000,
            measured_kbps: Some(mtp),
            media_requests: 10,
            ..Default::default()
        };
        let p = Playback {
            requests: 20,
            errors: 0,
            sessions: vec![session(4500), session(40_000)],
            failed_by_title: Default::default(),
        };
        let s = Sample::of(&p);
        assert_eq!((s.media, s.tight, s.stalled), (20, 10, 0));
        assert!((s.quality().unwrap() - 0.85).abs() < 1e-9);
    }
}
