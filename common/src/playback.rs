//! What a box saw of its viewers' playback, from the CMCD (`cmcd`) its
//! players send: per session the last bitrate, buffer and throughput, and
//! counts of segment requests and of those that followed a stall; per box
//! the content requests it answered and how many it failed. The appliance
//! keeps running totals (`ApplianceStatus::sessions`); the agent sends the
//! part since its previous beat in the heartbeat (`Heartbeat::playback`);
//! the fill server sums them into QoE and into each box's steering score.

use serde::{Deserialize, Serialize};

use crate::names::Name;

/// Sessions one heartbeat carries at most (the most recently active).
pub const MAX_SESSIONS: usize = 2_000;

/// One player session (CMCD `sid`) as one box saw it. In the appliance's
/// status the counts are totals since the box first saw the session; in a
/// heartbeat they are what happened since the previous beat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// The player's session id (printable, at most 64 bytes).
    pub sid: String,
    /// The title its requests were for (from the path).
    pub title: Option<Name>,
    /// CMCD `cid`, when the player sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
    /// Encoded bitrate of the last media object it asked for (`br`).
    #[serde(default)]
    pub bitrate_kbps: u32,
    /// Buffer length it last reported (`bl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_ms: Option<u32>,
    /// Throughput the player last measured (`mtp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_kbps: Option<u32>,
    /// Throughput it last asked for (`rtp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_kbps: Option<u32>,
    /// Media (audio, video, muxed) object requests.
    #[serde(default)]
    pub media_requests: u64,
    /// Of them, requests that said the buffer ran dry since the previous
    /// one (`bs`): rebuffer events.
    #[serde(default)]
    pub starved: u64,
    /// The sum of `br` over the media requests that carried it, and how
    /// many did (the average bitrate is the quotient).
    #[serde(default)]
    pub bitrate_sum_kbps: u64,
    /// Media requests that carried `br`.
    #[serde(default)]
    pub bitrate_samples: u64,
    /// From the session's first request to its first media request that
    /// was no longer urgent (`su` gone): the startup time the box saw. In
    /// a heartbeat, only in the beat where it became known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<u32>,
    /// In a heartbeat: the first beat that names this session.
    #[serde(default)]
    pub first: bool,
}

impl SessionStats {
    /// A session id a box may report: printable ASCII, 1 to 64 bytes.
    pub fn valid_sid(sid: &str) -> bool {
        !sid.is_empty() && sid.len() <= crate::cmcd::MAX_STRING && sid.bytes().all(|b| b.is_ascii_graphic())
    }

    /// What changed between two readings of the same session's totals
    /// (`before` may be absent: all of `self` is new). Counts lower than
    /// before mean the appliance restarted and counts from zero.
    pub fn since(&self, before: Option<&SessionStats>) -> SessionStats {
        let d = |now: u64, then: u64| if now >= then { now - then } else { now };
        let b = before.cloned().unwrap_or_default();
        SessionStats {
            media_requests: d(self.media_requests, b.media_requests),
            starved: d(self.starved, b.starved),
            bitrate_sum_kbps: d(self.bitrate_sum_kbps, b.bitrate_sum_kbps),
            bitrate_samples: d(self.bitrate_samples, b.bitrate_samples),
            startup_ms: self.startup_ms.filter(|_| b.startup_ms.is_none()),
            first: before.is_none(),
            ..self.clone()
        }
    }
}

/// The heartbeat's playback part: since the previous beat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Playback {
    /// Content requests the box answered.
    pub requests: u64,
    /// Of them, answers that failed the viewer: not found with a good
    /// token (the box was steered to for a title it cannot serve) and
    /// server errors.
    pub errors: u64,
    /// Those failures per title: a box that lost a title fails its
    /// viewers for that title only.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub failed_by_title: std::collections::BTreeMap<Name, u64>,
    /// Sessions active since the previous beat, at most `MAX_SESSIONS`.
    #[serde(default)]
    pub sessions: Vec<SessionStats>,
}

impl Playback {
    /// What a receiver checks (JSON and protobuf alike): at most
    /// `MAX_SESSIONS`, and printable ids.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.sessions.len() > MAX_SESSIONS {
            return Err("more sessions than a heartbeat may carry");
        }
        let ok = |s: &SessionStats| {
            SessionStats::valid_sid(&s.sid) && s.content_id.as_deref().is_none_or(SessionStats::valid_sid)
        };
        match self.sessions.iter().all(ok) {
            true => Ok(()),
            false => Err("a session or content id is not 1 to 64 printable bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_between_readings() {
        let then = SessionStats {
            sid: "s".into(),
            media_requests: 10,
            starved: 1,
            bitrate_sum_kbps: 8_000,
            bitrate_samples: 4,
            ..Default::default()
        };
        let now = SessionStats {
            media_requests: 14,
            starved: 3,
            bitrate_sum_kbps: 10_000,
            bitrate_samples: 5,
            bitrate_kbps: 2_000,
            ..then.clone()
        };
        let d = now.since(Some(&then));
        assert_eq!(
            (d.media_requests, d.starved, d.bitrate_sum_kbps, d.bitrate_samples),
            (4, 2, 2_000, 1)
        );
        assert!(!d.first);
        assert_eq!(d.bitrate_kbps, 2_000);
        assert!(now.since(None).first);
        // Startup is told once, in the beat where it became known.
        let started = SessionStats {
            startup_ms: Some(640),
            ..now.clone()
        };
        assert_eq!(started.since(Some(&now)).startup_ms, Some(640));
        assert_eq!(started.since(Some(&started)).startup_ms, None);
        // The appliance restarted: its totals start again from zero.
        let restarted = SessionStats {
            media_requests: 2,
            ..then.clone()
        };
        assert_eq!(restarted.since(Some(&now)).media_requests, 2);
        assert!(SessionStats::valid_sid("6e2f-a"));
        assert!(!SessionStats::valid_sid("a b"));
        assert!(!SessionStats::valid_sid(&"x".repeat(65)));
    }
}
