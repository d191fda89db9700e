//! Quality of experience from the players: events the player page sends
//! (startup time, rebuffering, bitrate switches, errors, playback
//! progress), checked, stored, and summed up for operators: startup time
//! p50/p95, rebuffer ratio, switches and errors, and which hosts served.
//! The summary also carries what the boxes report of every player
//! (`viewers`, from CMCD).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Events one POST may carry.
pub const MAX_EVENTS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QoeKind {
    /// `value`: ms from page load to the first frame.
    Startup,
    RebufferStart,
    RebufferEnd,
    /// `value`: the new rendition's bandwidth, bits/s.
    Switch,
    Error,
    /// `value`: playback position, ms.
    Progress,
}

impl QoeKind {
    pub fn name(self) -> &'static str {
        match self {
            QoeKind::Startup => "startup",
            QoeKind::RebufferStart => "rebuffer_start",
            QoeKind::RebufferEnd => "rebuffer_end",
            QoeKind::Switch => "switch",
            QoeKind::Error => "error",
            QoeKind::Progress => "progress",
        }
    }

    pub fn parse(s: &str) -> Option<QoeKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QoeEvent {
    /// The player's session (random, per page load).
    pub session: String,
    pub title: nearcast_common::Name,
    pub kind: QoeKind,
    /// ms since the page loaded.
    pub at_ms: u64,
    #[serde(default)]
    pub value: Option<u64>,
    /// The host the player was fetching segments from.
    #[serde(default)]
    pub host: Option<String>,
    /// The player's ISP, by its address (set by the fill server, never
    /// taken from the player).
    #[serde(default, skip_deserializing)]
    pub isp: Option<String>,
}

impl QoeEvent {
    /// Short printable fields only: the events come from anyone.
    pub fn is_valid(&self) -> bool {
        let short = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        short(&self.session) && self.host.as_deref().is_none_or(short)
    }
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct QoeSummary {
    pub sessions: usize,
    pub startup_p50_ms: Option<u64>,
    pub startup_p95_ms: Option<u64>,
    /// Time spent rebuffering over time spent playing.
    pub rebuffer_ratio: f64,
    pub rebuffers: usize,
    pub switches: usize,
    pub errors: usize,
    /// Events by the host serving the player.
    pub by_host: BTreeMap<String, usize>,
    /// Per ISP, the share of playback (progress reports) served by
    /// appliances rather than the origin.
    pub hit_ratio_by_isp: BTreeMap<String, f64>,
    /// What the boxes say of every player's playback (CMCD).
    pub cmcd: crate::viewers::ViewersSummary,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

/// Sums up `events`; segments fetched from `origin_host` are misses.
pub fn summarize(events: &[QoeEvent], origin_host: &str) -> QoeSummary {
    let mut s = QoeSummary::default();
    // ISP → (progress reports from appliances, all progress reports)
    let mut hits: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut startups = Vec::new();
    // session → (rebuffer started at, rebuffer ms, watched ms)
    let mut sessions: BTreeMap<&str, (Option<u64>, u64, u64)> = BTreeMap::new();
    let mut ordered: Vec<&QoeEvent> = events.iter().collect();
    ordered.sort_by_key(|e| (e.session.as_str(), e.at_ms));
    for e in ordered {
        let st = sessions.entry(&e.session).or_default();
        if let Some(h) = &e.host {
            *s.by_host.entry(h.clone()).or_default() += 1;
        }
        match e.kind {
            QoeKind::Startup => startups.extend(e.value),
            QoeKind::RebufferStart => {
                s.rebuffers += 1;
                st.0 = Some(e.at_ms);
            }
            QoeKind::RebufferEnd => {
                if let Some(start) = st.0.take() {
                    st.1 += e.at_ms.saturating_sub(start);
                }
            }
            QoeKind::Switch => s.switches += 1,
            QoeKind::Error => s.errors += 1,
            QoeKind::Progress => {
                st.2 = st.2.max(e.value.unwrap_or(0));
                if let (Some(isp), Some(host)) = (&e.isp, &e.host) {
                    let h = hits.entry(isp.clone()).or_default();
                    h.0 += usize::from(host != origin_host);
                    h.1 += 1;
                }
            }
        }
    }
    s.hit_ratio_by_isp = hits
        .into_iter()
        .map(|(isp, (a, n))| (isp, a as f64 / n as f64))
        .collect();
    startups.sort_unstable();
    s.sessions = sessions.len();
    s.startup_p50_ms = percentile(&startups, 0.5);
    s.startup_p95_ms = percentile(&startups, 0.95);
    let (stalled, watched) = sessions.values().fold((0, 0), |(a, b), st| (a + st.1, b + st.2));
    s.rebuffer_ratio = if watched + stalled == 0 {
        0.0
    } else {
        stalled as f64 / (watched + stalled) as f64
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: &str, kind: QoeKind, at_ms: u64, value: Option<u64>) -> QoeEvent {
        QoeEvent {
            session: session.into(),
            title: nearcast_common::Name::new("t").unwrap(),
            kind,
            at_ms,
            value,
            host: Some("box:8080".into()),
            isp: Some("isp-a".into()),
        }
    }

    #[test]
    fn sums_up_sessions() {
        let mut events = vec![
            ev("a", QoeKind::Startup, 400, Some(400)),
            ev("a", QoeKind::Progress, 10_000, Some(9_000)),
            ev("a", QoeKind::RebufferStart, 10_500, None),
            ev("a", QoeKind::RebufferEnd, 11_500, None),
            ev("a", QoeKind::Switch, 12_000, Some(400_000)),
            ev("b", QoeKind::Startup, 900, Some(900)),
            ev("b", QoeKind::Progress, 20_000, Some(19_000)),
            ev("b", QoeKind::Error, 20_100, None),
        ];
        events.push(QoeEvent {
            host: Some("origin:7071".into()),
            ..ev("b", QoeKind::Progress, 4_000, Some(3_000))
        });
        events.reverse(); // arrival order does not matter
        let s = summarize(&events, "origin:7071");
        assert_eq!((s.sessions, s.rebuffers, s.switches, s.errors), (2, 1, 1, 1));
        assert_eq!((s.startup_p50_ms, s.startup_p95_ms), (Some(900), Some(900)));
        assert!((s.rebuffer_ratio - 1000.0 / 29_000.0).abs() < 1e-9);
        assert_eq!(s.by_host["box:8080"], 8);
        assert!(
            (s.hit_ratio_by_isp["isp-a"] - 2.0 / 3.0).abs() < 1e-9,
            "{:?}",
            s.hit_ratio_by_isp
        );
        assert_eq!(summarize(&[], "o"), QoeSummary::default());
    }

    #[test]
    fn validation() {
        let good = ev("a", QoeKind::Startup, 1, Some(1));
        assert!(good.is_valid());
        let tricky = serde_json::to_string(&good)
            .unwrap()
            .replace(r#""title":"t""#, r#""title":"../x""#);
        assert!(
            serde_json::from_str::<QoeEvent>(&tricky).is_err(),
            "a path trick in the title"
        );
        assert!(!QoeEvent {
            session: "a b".into(),
            ..good.clone()
        }
        .is_valid());
        assert!(!QoeEvent {
            host: Some("x".repeat(65)),
            ..good
        }
        .is_valid());
        assert_eq!(QoeKind::parse("rebuffer_end"), Some(QoeKind::RebufferEnd));
        assert_eq!(QoeKind::parse("nope"), None);
    }
}
