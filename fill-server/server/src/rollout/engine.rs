//! The rollout's decisions, pure: which boxes are in which wave, what a
//! box's reports say of its update, when a wave starts, soaks or halts the
//! rollout, and what an abort changes. The caller turns the targets it
//! returns into `os_targets` rows (`runner.rs`).

use std::collections::{BTreeMap, BTreeSet};

use ring::digest::{digest, SHA256};
use serde::Serialize;

use super::{Members, Progress, Spec, SpecError, State, WaveProgress};

/// What a box's last heartbeat said of its OS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The release it runs (`None`: it never said, e.g. not on the image).
    pub release: Option<String>,
    /// Its last update: `installing R`, `trial R`, `committed R`, `failed R: …`.
    pub update: String,
    /// Releases that failed on it.
    pub failed: Vec<String>,
    /// Unix seconds of its last heartbeat.
    pub last_heartbeat: Option<u64>,
}

/// A box's part in a rollout, as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum BoxState {
    /// In a wave that has not started.
    Waiting,
    /// Targeted; not on the release yet (downloading, waiting for its
    /// window, installing), or on it in a trial boot not yet committed.
    Pending(String),
    Updated,
    /// Rolled back, failed to download or install, or went silent.
    Failed(String),
}

/// A target to set: (appliance, release).
pub type Target = (String, String);

/// Puts the fleet's boxes (id → site) into the spec's waves.
pub fn plan(spec: &Spec, fleet: &BTreeMap<String, Option<String>>) -> Result<Vec<WaveProgress>, SpecError> {
    spec.check()?;
    let sites: BTreeSet<&str> = fleet.values().flatten().map(String::as_str).collect();
    let mut order: Vec<(&String, [u8; 32])> = fleet.keys().map(|id| (id, rank(&spec.release, id))).collect();
    order.sort_by_key(|a| a.1);
    let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waves = Vec::with_capacity(spec.waves.len());
    for (i, w) in spec.waves.iter().enumerate() {
        let n = i + 1;
        let mut boxes: Vec<String> = Vec::new();
        match &w.boxes {
            Members::Ids(ids) => {
                for id in ids {
                    if !fleet.contains_key(id) {
                        return Err(SpecError::UnknownBox {
                            wave: n,
                            id: id.clone(),
                        });
                    }
                    if let Some(&first) = taken.get(id.as_str()) {
                        return Err(SpecError::Twice {
                            id: id.clone(),
                            first,
                            second: n,
                        });
                    }
                    boxes.push(id.clone());
                }
            }
            Members::Sites(names) => {
                if let Some(site) = names.iter().find(|s| !sites.contains(s.as_str())) {
                    return Err(SpecError::UnknownSite {
                        wave: n,
                        site: site.clone(),
                    });
                }
                boxes.extend(
                    order
                        .iter()
                        .filter(|(id, _)| !taken.contains_key(id.as_str()))
                        .filter(|(id, _)| fleet[*id].as_ref().is_some_and(|s| names.contains(s)))
                        .map(|(id, _)| (*id).clone()),
                );
            }
            Members::Percent(p) => {
                let want = ((fleet.len() as f64) * p / 100.0).ceil() as usize;
                boxes.extend(
                    order
                        .iter()
                        .filter(|(id, _)| !taken.contains_key(id.as_str()))
                        .take(want)
                        .map(|(id, _)| (*id).clone()),
                );
            }
        }
        if boxes.is_empty() {
            return Err(SpecError::Empty(n));
        }
        for b in &boxes {
            if let Some((k, _)) = fleet.get_key_value(b) {
                taken.insert(k.as_str(), n);
            }
        }
        waves.push(WaveProgress {
            boxes,
            ..WaveProgress::default()
        });
    }
    Ok(waves)
}

/// A box's place in the percent order: the same for a release every time.
fn rank(release: &str, id: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(release.len() + id.len() + 1);
    input.extend_from_slice(release.as_bytes());
    input.push(0);
    input.extend_from_slice(id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

/// What `o` says of `release` on a box targeted at `started`.
pub fn classify(o: &Observed, release: &str, started: u64, silent_secs: u64, now: u64) -> BoxState {
    let failed_prefix = format!("failed {release}");
    if o.failed.iter().any(|r| r == release) || o.update.starts_with(&failed_prefix) {
        let detail = match o.update.starts_with(&failed_prefix) {
            true => o.update.clone(),
            false => format!("release {release} failed on the box"),
        };
        return BoxState::Failed(detail);
    }
    let quiet = o.last_heartbeat.map(|t| now.saturating_sub(t));
    if now.saturating_sub(started) > silent_secs && quiet.is_none_or(|q| q > silent_secs) {
        return BoxState::Failed(match quiet {
            Some(q) => format!("no heartbeat for {q} s"),
            None => "never sent a heartbeat".to_string(),
        });
    }
    // A trial boot runs the release but has not passed its health check.
    let on_trial = o.update.starts_with("trial ");
    if o.release.as_deref() == Some(release) && !on_trial {
        return BoxState::Updated;
    }
    BoxState::Pending(match o.update.is_empty() {
        true => "waiting for the box".to_string(),
        false => o.update.clone(),
    })
}

/// Every box's state, wave by wave.
pub fn states(spec: &Spec, p: &Progress, observe: &dyn Fn(&str) -> Observed, now: u64) -> Vec<Vec<BoxState>> {
    let silent = (spec.silent_minutes * 60.0) as u64;
    p.waves
        .iter()
        .map(|w| {
            w.boxes
                .iter()
                .map(|id| match w.started {
                    None => BoxState::Waiting,
                    Some(t) => classify(&observe(id), &spec.release, t, silent, now),
                })
                .collect()
        })
        .collect()
}

/// Advances a running rollout at `now`: starts, completes and soaks waves,
/// halts it above the failure ratio. Returns the targets to set (empty
/// unless a wave started); `p` is updated in place.
pub fn step(spec: &Spec, p: &mut Progress, observe: &dyn Fn(&str) -> Observed, now: u64) -> Vec<Target> {
    let mut targets = Vec::new();
    while p.state == State::Running {
        let Some(i) = p.waves.iter().position(|w| w.soaked.is_none()) else {
            p.state = State::Done;
            break;
        };
        if p.waves[i].started.is_none() {
            p.waves[i].started = Some(now);
            targets.extend(p.waves[i].boxes.iter().map(|b| (b.clone(), spec.release.to_string())));
            break;
        }
        let row = &states(spec, p, observe, now)[i];
        let failed: Vec<(&String, &String)> = p.waves[i]
            .boxes
            .iter()
            .zip(row)
            .filter_map(|(id, s)| match s {
                BoxState::Failed(why) => Some((id, why)),
                _ => None,
            })
            .collect();
        let ratio = failed.len() as f64 / p.waves[i].boxes.len().max(1) as f64;
        if ratio > spec.max_failure_ratio {
            let list: Vec<String> = failed.iter().map(|(id, why)| format!("{id}: {why}")).collect();
            p.state = State::Halted;
            p.reason = Some(format!(
                "wave {}: {} of {} boxes failed ({ratio:.2} > {}): {}",
                i + 1,
                failed.len(),
                p.waves[i].boxes.len(),
                spec.max_failure_ratio,
                list.join("; ")
            ));
            break;
        }
        let w = &mut p.waves[i];
        if w.completed.is_none() {
            if row.iter().any(|s| matches!(s, BoxState::Pending(_))) {
                break;
            }
            w.completed = Some(now);
        }
        let soak = (spec.waves[i].soak_minutes * 60.0) as u64;
        if now < w.completed.unwrap_or(now) + soak {
            break;
        }
        w.soaked = Some(now);
    }
    targets
}

/// Aborts an active rollout: no more waves; boxes of started waves that
/// have not updated are sent back to the release they run, and with
/// `rollback` the updated ones go to it. Returns the targets to set.
pub fn abort(
    spec: &Spec,
    p: &mut Progress,
    rollback: Option<&str>,
    observe: &dyn Fn(&str) -> Observed,
    now: u64,
) -> Vec<Target> {
    let rows = states(spec, p, observe, now);
    let mut targets = Vec::new();
    for (w, row) in p.waves.iter().zip(&rows) {
        for (id, s) in w.boxes.iter().zip(row) {
            match s {
                BoxState::Updated => {
                    if let Some(r) = rollback {
                        targets.push((id.clone(), r.to_string()));
                    }
                }
                BoxState::Pending(_) | BoxState::Failed(_) => {
                    if let Some(running) = observe(id).release {
                        targets.push((id.clone(), running));
                    }
                }
                BoxState::Waiting => {}
            }
        }
    }
    p.state = State::Aborted;
    p.rollback = rollback.map(str::to_string);
    p.reason = Some("aborted by the operator".to_string());
    targets
}
