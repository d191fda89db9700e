//! The operators' dashboard data (`GET /v1/admin/dashboard`): the fleet
//! table, per-site figures, the QoE summary and the history the page
//! plots (bytes per box per hour, rebuffering per hour, per day the hit
//! ratio, origin egress and its cost, and why the origin served) and the
//! newest OS rollouts, in one
//! document the `/dashboard` page draws.

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
    pub history: History,
    /// The newest OS rollouts (`crate::rollout`), per wave and per box.
    pub rollouts: Vec<crate::rollout::runner::Status>,
}

/// What the page plots over time.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct History {
    /// The last 24 unix hours, oldest first.
    pub hours: Vec<i64>,
    /// Box → body bytes it served in each of `hours`.
    pub box_bytes: BTreeMap<String, Vec<u64>>,
    /// Share of CMCD segment requests after a stall, in each of `hours`
    /// (`None`: no CMCD then).
    pub rebuffer_share: Vec<Option<f64>>,
    /// Per day, oldest first.
    pub days: Vec<DayTotal>,
    /// Why the origin served, and why a box other than the best did
    /// (`detour: …`), over those days.
    pub misses: BTreeMap<String, crate::costs::Count>,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct DayTotal {
    pub day: i64,
    pub box_bytes: u64,
    pub origin_bytes: u64,
    /// Box bytes over all bytes.
    pub hit_ratio: Option<f64>,
    pub origin_cost: f64,
}

/// The history from the last day's playback rows and the reports.
pub fn history(
    playback: &[crate::store::PlaybackRow],
    costs: &crate::costs::CostsReport,
    misses: crate::costs::MissesReport,
    now: u64,
) -> History {
    let last = (now / 3600) as i64;
    let hours: Vec<i64> = (last - 23..=last).collect();
    let mut reasons = misses.by_reason;
    reasons.extend(misses.detours.into_iter().map(|(r, c)| (format!("detour: {r}"), c)));
    let mut h = History {
        box_bytes: BTreeMap::new(),
        rebuffer_share: Vec::new(),
        days: Vec::new(),
        misses: reasons,
        hours,
    };
    let mut stalls = vec![(0u64, 0u64); h.hours.len()];
    for r in playback {
        let Some(i) = h.hours.iter().position(|&x| x == r.hour) else {
            continue;
        };
        let per_box = h.box_bytes.entry(r.appliance.clone()).or_insert_with(|| vec![0; 24]);
        per_box[i] += r.bytes;
        stalls[i].0 += r.starved;
        stalls[i].1 += r.media;
    }
    h.rebuffer_share = stalls
        .into_iter()
        .map(|(s, m)| (m > 0).then(|| s as f64 / m as f64))
        .collect();
    let mut days: BTreeMap<i64, DayTotal> = BTreeMap::new();
    for d in &costs.days {
        let t = days.entry(d.day).or_insert_with(|| DayTotal {
            day: d.day,
            ..DayTotal::default()
        });
        t.box_bytes += d.box_bytes;
        t.origin_bytes += d.origin_bytes;
        t.origin_cost += d.origin_cost;
    }
    for t in days.values_mut() {
        let all = t.box_bytes + t.origin_bytes;
        t.hit_ratio = (all > 0).then(|| t.box_bytes as f64 / all as f64);
    }
    h.days = days.into_values().collect();
    h
}

pub fn build(
    snap: &Snapshot,
    served: &BTreeMap<String, u64>,
    qoe: QoeSummary,
    history: History,
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
    Dashboard {
        fleet,
        sites,
        qoe,
        history,
        rollouts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EgressRow, PlaybackRow, Source};

    #[test]
    fn history_per_hour_and_day() {
        let now = 1_800_000_000;
        let hour = (now / 3600) as i64;
        let row = |h: i64, id: &str, bytes: u64, media: u64, starved: u64| PlaybackRow {
            hour: h,
            appliance: id.into(),
            bytes,
            media,
            starved,
            ..PlaybackRow::default()
        };
        let rows = [
            row(hour, "b1", 100, 10, 1),
            row(hour - 1, "b1", 50, 0, 0),
            row(hour, "b2", 7, 10, 0),
            row(hour - 30, "b1", 999, 5, 5), // older than the window
        ];
        let egress = [EgressRow {
            day: 5,
            isp: "isp-a".into(),
            title: "t".into(),
            source: Source::Origin,
            reason: "not_filled".into(),
            sessions: 2,
            bytes: 300,
        }];
        let costs = crate::costs::costs(&egress, &Default::default());
        let h = history(&rows, &costs, crate::costs::misses(&egress), now);
        assert_eq!((h.hours.len(), h.hours[23]), (24, hour));
        assert_eq!(
            (h.box_bytes["b1"][23], h.box_bytes["b1"][22], h.box_bytes["b2"][23]),
            (100, 50, 7)
        );
        assert_eq!((h.rebuffer_share[23], h.rebuffer_share[22]), (Some(0.05), None));
        assert_eq!(h.days[0].origin_bytes, 300);
        assert_eq!(h.days[0].hit_ratio, Some(0.0));
        assert_eq!(h.misses["not_filled"].sessions, 2);
    }
}
