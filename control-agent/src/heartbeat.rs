//! Heartbeats: the appliance's health and load (from its admin listener),
//! space per disk (as each disk's thread last saw it), bytes served per title since the last beat (the
//! appliance counts since it started; the agent sends differences), and
//! the fill's progress, and what the players said of their playback
//! (CMCD sessions and failed answers, also as differences).

use std::collections::{BTreeMap, HashMap};

use nearcast_common::appliance::ApplianceStatus;
use nearcast_common::control::{DiskState, Health, Heartbeat};
use nearcast_common::playback::{Playback, SessionStats, MAX_SESSIONS};
use nearcast_common::Name;

use crate::agent::Agent;

/// Bytes per title served between two readings of the appliance's
/// totals. A total lower than before means the appliance restarted and
/// counts from zero.
pub fn deltas(now: &BTreeMap<Name, u64>, before: &BTreeMap<Name, u64>) -> BTreeMap<Name, u64> {
    now.iter()
        .filter_map(|(title, &n)| {
            let b = before.get(title).copied().unwrap_or(0);
            let d = if n >= b { n - b } else { n };
            (d > 0).then(|| (title.clone(), d))
        })
        .collect()
}

/// The appliance's totals at the last beat the fill server took.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    titles: BTreeMap<Name, u64>,
    sessions: HashMap<String, SessionStats>,
    requests: u64,
    errors: u64,
    failed_by_title: BTreeMap<Name, u64>,
}

impl Reading {
    pub fn of(view: &ApplianceStatus) -> Reading {
        Reading {
            titles: view.titles.clone(),
            sessions: view.sessions.iter().map(|s| (s.sid.clone(), s.clone())).collect(),
            requests: view.content_requests,
            errors: view.content_errors,
            failed_by_title: view.failed_by_title.clone(),
        }
    }
}

/// What happened to playback between two readings: answers and failed
/// ones, and the sessions that made media requests (the most recently
/// active first, at most `MAX_SESSIONS`).
pub fn playback(view: &ApplianceStatus, before: &Reading) -> Playback {
    let d = |now: u64, then: u64| if now >= then { now - then } else { now };
    Playback {
        requests: d(view.content_requests, before.requests),
        errors: d(view.content_errors, before.errors),
        failed_by_title: deltas(&view.failed_by_title, &before.failed_by_title),
        sessions: view
            .sessions
            .iter()
            .map(|s| s.since(before.sessions.get(&s.sid)))
            .filter(|s| s.first || s.media_requests > 0)
            .take(MAX_SESSIONS)
            .collect(),
    }
}

/// Builds the next heartbeat; `hardware` is the box's state from the
/// monitor, `last` holds the appliance's totals at the previous beat and
/// is updated.
pub fn compose(agent: &Agent, hardware: Health, view: &ApplianceStatus, last: &mut Reading) -> Heartbeat {
    let bytes_by_title = deltas(&view.titles, &last.titles);
    let playback = playback(view, last);
    if view.serving {
        *last = Reading::of(view);
    }
    let disks: Vec<DiskState> = agent
        .disks
        .iter()
        .map(|d| DiskState {
            name: d.name(),
            health: d.health(),
            free_bytes: match d.health() {
                Health::Failed => 0,
                // What the disk's thread last saw: never wait on a disk.
                _ => d.space_seen().free,
            },
        })
        .collect();
    let health = if !view.serving { Health::Failed } else { hardware };
    let cap = agent.config.appliance_max_connections.max(1);
    Heartbeat {
        health,
        load: (view.connections as f64 / cap as f64).min(1.0),
        free_bytes: disks.iter().map(|d| d.free_bytes).sum(),
        disks,
        bytes_by_title,
        fill: Some(agent.progress.report()),
        bgp: agent.bgp.as_ref().map(|s| nearcast_common::control::BgpSummary {
            session: s.state().name().to_string(),
            prefixes: s.table_len() as u64,
        }),
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        os: agent.updater.as_ref().map(|u| u.os_state()),
        playback: view.serving.then_some(playback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<Name, u64> {
        pairs.iter().map(|(t, n)| (Name::new(*t).unwrap(), *n)).collect()
    }

    #[test]
    fn deltas_between_readings() {
        let before = map(&[("a", 100), ("b", 50)]);
        let now = map(&[("a", 160), ("b", 50), ("c", 7)]);
        assert_eq!(deltas(&now, &before), map(&[("a", 60), ("c", 7)]));
        // The appliance restarted: its totals start again from zero.
        assert_eq!(deltas(&map(&[("a", 30)]), &before), map(&[("a", 30)]));
        assert!(deltas(&before, &before).is_empty());
    }

    #[test]
    fn playback_between_readings() {
        let session = |sid: &str, media: u64| SessionStats {
            sid: sid.into(),
            media_requests: media,
            ..Default::default()
        };
        let mut view = ApplianceStatus {
            serving: true,
            content_requests: 10,
            content_errors: 1,
            sessions: vec![session("a", 5), session("b", 2)],
            ..Default::default()
        };
        let before = Reading::of(&view);
        view.content_requests = 25;
        view.content_errors = 4;
        view.sessions = vec![session("c", 1), session("a", 9), session("b", 2)];
        let p = playback(&view, &before);
        assert_eq!((p.requests, p.errors), (15, 3));
        let got: Vec<(&str, u64, bool)> = p
            .sessions
            .iter()
            .map(|s| (s.sid.as_str(), s.media_requests, s.first))
            .collect();
        assert_eq!(got, [("c", 1, true), ("a", 4, false)], "b did nothing since");
        // The appliance restarted: counts start again from zero.
        view.content_requests = 3;
        assert_eq!(playback(&view, &before).requests, 3);
    }
}
