//! Heartbeats: the appliance's health and load (from its admin listener),
//! space per disk, bytes served per title since the last beat (the
//! appliance counts since it started; the agent sends differences), and
//! the fill's progress.

use std::collections::BTreeMap;

use hyper::body::Bytes;
use nearcast_common::control::{DiskState, Health, Heartbeat};

use crate::agent::Agent;
use crate::disks::space;
use crate::http::fetch_small;

/// What the appliance said on its admin listener.
pub struct ApplianceView {
    pub serving: bool,
    pub open_connections: u64,
    /// Body bytes per title since the appliance started.
    pub bytes_by_title: BTreeMap<String, u64>,
}

pub async fn read_appliance(admin: &str) -> ApplianceView {
    let base = admin.trim_end_matches('/');
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move { fetch_small("GET", &url, &[], Bytes::new()).await }
    };
    let serving = get("/healthz").await.is_ok();
    let bytes_by_title = match get("/titles").await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => BTreeMap::new(),
    };
    let open_connections = match get("/metrics").await {
        Ok(b) => String::from_utf8_lossy(&b)
            .lines()
            .find_map(|l| l.strip_prefix("nearcast_connections_active ")?.trim().parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    };
    ApplianceView {
        serving,
        open_connections,
        bytes_by_title,
    }
}

/// Builds the next heartbeat; `last` holds the appliance's totals at the
/// previous beat and is updated.
pub fn compose(agent: &Agent, view: &ApplianceView, last: &mut BTreeMap<String, u64>) -> Heartbeat {
    let mut bytes_by_title = BTreeMap::new();
    for (title, &now) in &view.bytes_by_title {
        let before = last.get(title).copied().unwrap_or(0);
        // Lower than before: the appliance restarted and counts from zero.
        let delta = if now >= before { now - before } else { now };
        if delta > 0 {
            bytes_by_title.insert(title.clone(), delta);
        }
    }
    if view.serving {
        *last = view.bytes_by_title.clone();
    }
    let disks: Vec<DiskState> = agent
        .disks
        .iter()
        .map(|d| match space(&d.root) {
            Ok(s) if d.root.is_dir() => DiskState {
                name: d.name(),
                health: Health::Ok,
                free_bytes: s.free,
            },
            _ => DiskState {
                name: d.name(),
                health: Health::Failed,
                free_bytes: 0,
            },
        })
        .collect();
    let health = if !view.serving || disks.iter().all(|d| d.health == Health::Failed) {
        Health::Failed
    } else if disks.iter().any(|d| d.health != Health::Ok) {
        Health::Degraded
    } else if agent.progress.running() {
        Health::Filling
    } else {
        Health::Ok
    };
    let cap = agent.config.appliance_max_connections.max(1);
    Heartbeat {
        health,
        load: (view.open_connections as f64 / cap as f64).min(1.0),
        free_bytes: disks.iter().map(|d| d.free_bytes).sum(),
        disks,
        bytes_by_title,
        fill: Some(agent.progress.report()),
    }
}
