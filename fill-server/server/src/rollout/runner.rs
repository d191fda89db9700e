//! Running rollouts: the leader replica steps every running rollout every
//! `EVERY` (`replica.rs` calls `tick`), reading what the boxes last said
//! from the store, and saves the progress and targets the step decided
//! (over the progress it read, so an operator's pause in between wins).
//! Also the status the admin API and the dashboard show.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::engine::{self, BoxState, Observed};
use super::State;
use crate::app::{App, Changed};
use crate::store::{Rollout, Snapshot, StoreError};

/// How often the leader steps running rollouts.
pub const EVERY: Duration = Duration::from_secs(1);

/// Steps every running rollout at `now`; how many changed.
pub fn tick(app: &App, now: u64) -> Result<usize, StoreError> {
    let running: Vec<Rollout> = app
        .store
        .rollouts()?
        .into_iter()
        .filter(|r| r.progress.state == State::Running)
        .collect();
    if running.is_empty() {
        return Ok(0);
    }
    let snap = app.store.snapshot()?;
    let see = observer(&snap);
    let mut changed = 0;
    for r in running {
        let mut p = r.progress.clone();
        let targets = engine::step(&r.spec, &mut p, &see, now);
        if p == r.progress {
            continue;
        }
        match app.store.save_rollout(&r.id, &r.progress, &p, &targets) {
            Ok(()) => changed += 1,
            // The operator changed it meanwhile: the next tick sees that.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
        if p.state != r.progress.state {
            tracing::info!(rollout = %r.id, state = ?p.state, reason = ?p.reason, "rollout");
        }
    }
    if changed > 0 {
        app.refresh(&Changed::Fleet)?;
    }
    Ok(changed)
}

/// The fleet as a plan needs it: appliance → its site, for the boxes that
/// run the OS image (their heartbeats carry `os`; only they can update, so
/// a box that does not would hold its wave pending for ever).
pub fn fleet(snap: &Snapshot) -> BTreeMap<String, Option<String>> {
    snap.appliances
        .iter()
        .filter(|a| a.heartbeat.as_ref().is_some_and(|h| h.os.is_some()))
        .map(|a| (a.id.clone(), a.registration.as_ref().map(|r| r.site.clone())))
        .collect()
}

/// What each box last said of its OS, from a snapshot.
pub fn observer(snap: &Snapshot) -> impl Fn(&str) -> Observed + '_ {
    let by_id: BTreeMap<&str, &crate::store::ApplianceRecord> =
        snap.appliances.iter().map(|a| (a.id.as_str(), a)).collect();
    move |id| {
        let Some(a) = by_id.get(id) else {
            return Observed::default();
        };
        let os = a.heartbeat.as_ref().and_then(|h| h.os.as_ref());
        Observed {
            release: os.map(|o| o.release.clone()),
            update: os.map(|o| o.update.clone()).unwrap_or_default(),
            failed: os.map(|o| o.failed.clone()).unwrap_or_default(),
            last_heartbeat: a.last_heartbeat,
        }
    }
}

/// One box in the status.
#[derive(Debug, Serialize)]
pub struct BoxStatus {
    pub id: String,
    #[serde(flatten)]
    pub state: BoxState,
}

/// One wave in the status.
#[derive(Debug, Serialize)]
pub struct WaveStatus {
    pub wave: usize,
    pub soak_minutes: f64,
    pub started: Option<u64>,
    pub completed: Option<u64>,
    pub soaked: Option<u64>,
    pub updated: usize,
    pub pending: usize,
    pub failed: usize,
    pub failure_ratio: f64,
    pub boxes: Vec<BoxStatus>,
}

/// A rollout as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub id: String,
    pub release: String,
    pub state: State,
    pub reason: Option<String>,
    pub rollback: Option<String>,
    pub emergency: bool,
    pub max_failure_ratio: f64,
    pub created: u64,
    pub waves: Vec<WaveStatus>,
}

/// `r`'s status at `now`, from what the boxes said (`snap`).
pub fn status(r: &Rollout, snap: &Snapshot, now: u64) -> Status {
    let see = observer(snap);
    let rows = engine::states(&r.spec, &r.progress, &see, now);
    let waves = r
        .progress
        .waves
        .iter()
        .zip(rows)
        .enumerate()
        .map(|(i, (w, row))| {
            let count = |f: fn(&BoxState) -> bool| row.iter().filter(|s| f(s)).count();
            let failed = count(|s| matches!(s, BoxState::Failed(_)));
            WaveStatus {
                wave: i + 1,
                soak_minutes: r.spec.waves.get(i).map_or(0.0, |s| s.soak_minutes),
                started: w.started,
                completed: w.completed,
                soaked: w.soaked,
                updated: count(|s| *s == BoxState::Updated),
                pending: count(|s| matches!(s, BoxState::Pending(_))),
                failed,
                failure_ratio: failed as f64 / w.boxes.len().max(1) as f64,
                boxes: w
                    .boxes
                    .iter()
                    .zip(row)
                    .map(|(id, state)| BoxStatus { id: id.clone(), state })
                    .collect(),
            }
        })
        .collect();
    Status {
        id: r.id.clone(),
        release: r.spec.release.to_string(),
        state: r.progress.state,
        reason: r.progress.reason.clone(),
        rollback: r.progress.rollback.clone(),
        emergency: r.spec.emergency,
        max_failure_ratio: r.spec.max_failure_ratio,
        created: r.progress.created,
        waves,
    }
}
