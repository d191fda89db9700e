//! OS rollouts in waves. An operator never updates a whole fleet at once:
//! a rollout names a release and waves of boxes (a share of the fleet,
//! sites, or box ids); each wave starts when the one before it has soaked
//! (all its boxes updated, then `soak_minutes` quiet) with its failure
//! ratio at or under `max_failure_ratio`, and the rollout halts by itself,
//! saying why, the moment a wave's ratio goes above it.
//!
//! A wave starts by setting its boxes' OS target (`os_targets`, what the
//! heartbeat reply already carries), so boxes need nothing new to take
//! part. The decisions are pure (`engine.rs`: the spec, the progress and
//! what the boxes report in, targets out); the leader replica runs them
//! every `TICK` (`runner.rs`) and stores progress and targets in one
//! transaction, so every replica's status agrees.

use serde::{Deserialize, Serialize};

pub mod engine;
pub mod runner;
#[cfg(test)]
mod tests;

/// What the operator asks for (`POST /v1/admin/rollouts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The OS release to roll out (its bundle uploaded).
    pub release: nearcast_common::Name,
    pub waves: Vec<WaveSpec>,
    /// Failed boxes over a wave's size above which the rollout halts.
    #[serde(default = "default_ratio")]
    pub max_failure_ratio: f64,
    /// Boxes install at once, outside their maintenance window.
    #[serde(default)]
    pub emergency: bool,
    /// A box targeted this long ago that has not sent a heartbeat for as
    /// long counts as failed (an update reboots the box: allow for it).
    #[serde(default = "default_silent")]
    pub silent_minutes: f64,
}

fn default_ratio() -> f64 {
    0.0
}

fn default_silent() -> f64 {
    10.0
}

/// One wave: who, and how long it soaks after its last box updated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    pub boxes: Members,
    #[serde(default)]
    pub soak_minutes: f64,
}

/// Which boxes a wave takes (boxes an earlier wave took are skipped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Members {
    /// This share of the whole fleet, rounded up, in an order fixed by the
    /// release and the box ids (the same boxes every time it is planned).
    Percent(f64),
    Sites(Vec<String>),
    Ids(Vec<String>),
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Paused,
    /// Stopped by itself: a wave failed too often (`Progress::reason`).
    Halted,
    Aborted,
    Done,
}

impl State {
    /// Whether the rollout may still change boxes.
    pub fn active(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }
}

/// What the rollout has done so far (stored beside its spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub state: State,
    /// Why it halted or was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub waves: Vec<WaveProgress>,
    /// The release the operator rolled the updated boxes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Unix seconds it was created.
    pub created: u64,
}

/// One wave's boxes (fixed when the rollout is created) and its times.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WaveProgress {
    pub boxes: Vec<String>,
    /// Its boxes' targets were set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// No box of it was pending any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    /// Its soak ended with the failure ratio under the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soaked: Option<u64>,
}

/// A spec the server refuses, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("a rollout needs at least one wave")]
    NoWaves,
    #[error("max_failure_ratio must be between 0 and 1")]
    Ratio,
    #[error("wave {0}: soak_minutes must be 0 or more")]
    Soak(usize),
    #[error("silent_minutes must be more than 0")]
    Silent,
    #[error("wave {0}: percent must be more than 0 and at most 100")]
    Percent(usize),
    #[error("wave {wave}: no site '{site}'")]
    UnknownSite { wave: usize, site: String },
    #[error("wave {wave}: no appliance '{id}' running the OS image")]
    UnknownBox { wave: usize, id: String },
    #[error("appliance '{id}' is in waves {first} and {second}")]
    Twice { id: String, first: usize, second: usize },
    #[error("wave {0} has no boxes (the waves before took them all)")]
    Empty(usize),
}

impl Spec {
    /// Checks the numbers (boxes and sites are checked by `engine::plan`).
    pub fn check(&self) -> Result<(), SpecError> {
        if self.waves.is_empty() {
            return Err(SpecError::NoWaves);
        }
        if !(0.0..=1.0).contains(&self.max_failure_ratio) {
            return Err(SpecError::Ratio);
        }
        if !(self.silent_minutes > 0.0 && self.silent_minutes.is_finite()) {
            return Err(SpecError::Silent);
        }
        for (i, w) in self.waves.iter().enumerate() {
            if !(w.soak_minutes >= 0.0 && w.soak_minutes.is_finite()) {
                return Err(SpecError::Soak(i + 1));
            }
            if let Members::Percent(p) = w.boxes {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(SpecError::Percent(i + 1));
                }
            }
        }
        Ok(())
    }
}
