//! OS rollouts (`crate::rollout`): the operator's spec and the progress
//! the leader records, both as JSON, and the OS targets a step sets,
//! written in the same transaction as the progress that explains them.

use std::collections::BTreeSet;

use super::db::Conn;
use super::StoreError;
use crate::rollout::engine::Target;
use crate::rollout::{Progress, Spec};

/// A stored rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    /// The release's name: one rollout per release.
    pub id: String,
    pub spec: Spec,
    pub progress: Progress,
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Adds rollout `r`, replacing a finished one of the same id; `Exists`
/// while any rollout is still active (one at a time).
pub fn add(c: &mut dyn Conn, r: &Rollout) -> Result<(), StoreError> {
    if let Some(active) = all(c)?.into_iter().find(|o| o.progress.state.active()) {
        return Err(StoreError::Exists {
            kind: "active rollout",
            name: active.id,
        });
    }
    c.execute("DELETE FROM rollouts WHERE id = $1", &[r.id.as_str().into()])?;
    c.execute(
        "INSERT INTO rollouts (id, spec, progress, created) VALUES ($1, $2, $3, $4)",
        &[
            r.id.as_str().into(),
            json(&r.spec)?.into(),
            json(&r.progress)?.into(),
            // Milliseconds: the order of rollouts made in one second.
            (unix_ms() as i64).into(),
        ],
    )?;
    Ok(())
}

/// Records rollout `id`'s progress `p` over `was` (what the caller read:
/// a write that raced another, the leader's step against an operator's
/// pause, say, is refused as `Conflict` and nothing changes) and sets
/// `targets`.
pub fn save(c: &mut dyn Conn, id: &str, was: &Progress, p: &Progress, targets: &[Target]) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE rollouts SET progress = $3 WHERE id = $1 AND progress = $2",
        &[id.into(), json(was)?.into(), json(p)?.into()],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "rollout '{id}' changed meanwhile; read it again"
        )));
    }
    for (appliance, release) in targets {
        c.execute(
            "INSERT INTO os_targets (appliance, release) VALUES ($1, $2)
             ON CONFLICT (appliance) DO UPDATE SET release = excluded.release",
            &[appliance.as_str().into(), release.as_str().into()],
        )?;
    }
    Ok(())
}

/// The boxes of the started waves of active emergency rollouts.
pub fn emergency_boxes(c: &mut dyn Conn) -> Result<BTreeSet<String>, StoreError> {
    let mut out = BTreeSet::new();
    for r in all(c)? {
        if r.spec.emergency && r.progress.state.active() {
            let started = r.progress.waves.iter().filter(|w| w.started.is_some());
            out.extend(started.flat_map(|w| w.boxes.iter().cloned()));
        }
    }
    Ok(out)
}

/// Every rollout, newest first.
pub fn all(c: &mut dyn Conn) -> Result<Vec<Rollout>, StoreError> {
    c.query("SELECT id, spec, progress FROM rollouts ORDER BY created DESC, id", &[])?
        .iter()
        .map(|r| {
            let bad = |e: serde_json::Error| StoreError::Corrupt(format!("rollout: {e}"));
            Ok(Rollout {
                id: r[0].text()?,
                spec: serde_json::from_str(&r[1].text()?).map_err(bad)?,
                progress: serde_json::from_str(&r[2].text()?).map_err(bad)?,
            })
        })
        .collect()
}
