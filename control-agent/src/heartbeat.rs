//! Heartbeats: the appliance's health and load (from its admin listener),
//! space per disk (as each disk's thread last saw it), bytes served per title since the last beat (the
//! appliance counts since it started; the agent sends differences), and
//! the fill's progress.

use std::collections::BTreeMap;

use nearcast_common::appliance::ApplianceStatus;
use nearcast_common::control::{DiskState, Health, Heartbeat};
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

/// Builds the next heartbeat; `hardware` is the box's state from the
/// monitor, `last` holds the appliance's totals at the previous beat and
/// is updated.
pub fn compose(agent: &Agent, hardware: Health, view: &ApplianceStatus, last: &mut BTreeMap<Name, u64>) -> Heartbeat {
    let bytes_by_title = deltas(&view.titles, last);
    if view.serving {
        *last = view.titles.clone();
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
}
