//! The operators' dashboard data (`GET /v1/admin/dashboard`): the fleet
//! table, per-site figures and the QoE summary, in one document the
//! `/dashboard` page draws.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::qoe::QoeSummary;
use crate::store::{Health, Snapshot};

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub site: Option<String>,
    pub health: Option<Health>,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_secs: Option<u64>,
    pub disks: Vec<(String, Health)>,
    pub load: Option<f64>,
    /// Bytes the box reported serving since this fill server started.
    pub served_bytes: u64,
    pub fill_files: Option<(u64, u64)>,
    pub fill_running: bool,
    pub manifest: Option<String>,
    pub version: Option<String>,
    pub titles: usize,
}

#[derive(Debug, Serialize)]
pub struct Site {
    pub site: String,
    pub isp: String,
    pub boxes: usize,
    /// Boxes with a fresh heartbeat that is not `failed`.
    pub up: usize,
    pub served_bytes: u64,
    /// Share of the ISP's playback served by appliances (from QoE).
    pub hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub fleet: Vec<Row>,
    pub sites: Vec<Site>,
    pub qoe: QoeSummary,
}

pub fn build(
    snap: &Snapshot,
    served: &BTreeMap<String, u64>,
    qoe: QoeSummary,
    now: u64,
    heartbeat_timeout: u64,
) -> Dashboard {
    let fleet: Vec<Row> = snap
        .appliances
        .iter()
        .map(|a| {
            let hb = a.heartbeat.as_ref();
            let fill = hb.and_then(|h| h.fill.as_ref());
            Row {
                id: a.id.clone(),
                site: a.registration.as_ref().map(|r| r.site.clone()),
                health: hb.map(|h| h.health),
                heartbeat_age_secs: a.last_heartbeat.map(|t| now.saturating_sub(t)),
                disks: hb.map_or_else(Vec::new, |h| {
                    h.disks.iter().map(|d| (d.name.clone(), d.health)).collect()
                }),
                load: hb.map(|h| h.load),
                served_bytes: served.get(&a.id).copied().unwrap_or(0),
                fill_files: fill.map(|f| (f.files_done, f.files_total)),
                fill_running: fill.is_some_and(|f| f.running),
                manifest: fill.map(|f| f.manifest_version.clone()).filter(|v| !v.is_empty()),
                version: hb.and_then(|h| h.version.clone()),
                titles: a.inventory.titles.len(),
            }
        })
        .collect();
    let sites = snap
        .sites
        .iter()
        .map(|(site, isp)| {
            let rows: Vec<&Row> = fleet.iter().filter(|r| r.site.as_deref() == Some(site)).collect();
            Site {
                site: site.clone(),
                isp: isp.clone(),
                boxes: rows.len(),
                up: rows
                    .iter()
                    .filter(|r| {
                        r.heartbeat_age_secs.is_some_and(|a| a <= heartbeat_timeout) && r.health != Some(Health::Failed)
                    })
                    .count(),
                served_bytes: rows.iter().map(|r| r.served_bytes).sum(),
                hit_ratio: qoe.hit_ratio_by_isp.get(isp).copied(),
            }
        })
        .collect();
    Dashboard { fleet, sites, qoe }
}
