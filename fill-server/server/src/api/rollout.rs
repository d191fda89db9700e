//! The operator's OS rollouts (`/v1/admin/rollouts…`): create one, read
//! its status per wave and per box, pause, resume or abort it. The waves
//! themselves advance on the leader replica (`crate::rollout::runner`).

use std::sync::Arc;

use hyper::{Method, StatusCode};
use nearcast_common::unix_now;
use serde::Deserialize;

use super::{parse, read, write, ApiError, Resp};
use crate::app::{App, Changed};
use crate::os::OsError;
use crate::rollout::{engine, runner, Progress, Spec, State};
use crate::store::{Rollout, StoreError};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Abort {
    /// The release the already updated boxes go back to.
    #[serde(default)]
    rollback: Option<String>,
}

/// One rollout call under `/v1/admin/rollouts` (`rest` after it).
pub(super) async fn route(app: Arc<App>, method: &Method, rest: &[&str], body: &[u8]) -> Resp {
    match (method, rest) {
        (&Method::POST, []) => create(app, body).await,
        (&Method::GET, []) => {
            read(app, |a| {
                let snap = a.store.snapshot()?;
                let all = a.store.rollouts()?;
                Ok::<_, StoreError>(
                    all.iter()
                        .map(|r| runner::status(r, &snap, unix_now()))
                        .collect::<Vec<_>>(),
                )
            })
            .await
        }
        (&Method::GET, [id]) => {
            let id = id.to_string();
            read(app, move |a| {
                let r = find(a, &id)?;
                Ok::<_, ApiError>(runner::status(&r, &a.store.snapshot()?, unix_now()))
            })
            .await
        }
        (&Method::POST, [id, action @ ("pause" | "resume" | "abort")]) => act(app, id, action, body).await,
        _ => super::error(StatusCode::NOT_FOUND, "no such rollout call"),
    }
}

fn find(a: &App, id: &str) -> Result<Rollout, ApiError> {
    a.store
        .rollouts()?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no rollout '{id}'")))
}

/// A release whose bundle was uploaded, or the reason it cannot be used.
fn uploaded(a: &App, release: &str) -> Result<(), ApiError> {
    match crate::os::path(&a.config.os_bundles, release)?.is_file() {
        true => Ok(()),
        false => Err(OsError::Unknown(release.to_string()).into()),
    }
}

/// Plans the waves over today's fleet and stores the rollout; the leader
/// starts its first wave within `runner::EVERY`.
async fn create(app: Arc<App>, body: &[u8]) -> Resp {
    let spec = match parse::<Spec>(body) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    write(app, Changed::Fleet, move |a| {
        uploaded(a, &spec.release)?;
        let fleet = runner::fleet(&a.store.snapshot()?);
        let waves = engine::plan(&spec, &fleet).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        let r = Rollout {
            id: spec.release.to_string(),
            progress: Progress {
                state: State::Running,
                reason: None,
                waves,
                rollback: None,
                created: unix_now(),
            },
            spec,
        };
        a.store.add_rollout(&r)?;
        let sizes: Vec<usize> = r.progress.waves.iter().map(|w| w.boxes.len()).collect();
        Ok::<_, ApiError>(serde_json::json!({ "rollout": r.id, "waves": sizes }))
    })
    .await
}

/// Pause, resume or abort (with an optional rollback release).
async fn act(app: Arc<App>, id: &str, action: &str, body: &[u8]) -> Resp {
    let abort = match (action, body.is_empty()) {
        ("abort", false) => match parse::<Abort>(body) {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        },
        _ => Abort::default(),
    };
    let (id, action) = (id.to_string(), action.to_string());
    write(app, Changed::Fleet, move |a| {
        let r = find(a, &id)?;
        let mut p = r.progress.clone();
        let refused = |why: &str| ApiError::new(StatusCode::CONFLICT, format!("rollout '{id}' is {why}"));
        let targets = match (action.as_str(), p.state) {
            ("pause", State::Running) => {
                p.state = State::Paused;
                Vec::new()
            }
            ("resume", State::Paused) => {
                p.state = State::Running;
                Vec::new()
            }
            ("abort", s) if s.active() => {
                if let Some(rb) = &abort.rollback {
                    uploaded(a, rb)?;
                }
                let snap = a.store.snapshot()?;
                let see = runner::observer(&snap);
                engine::abort(&r.spec, &mut p, abort.rollback.as_deref(), &see, unix_now())
            }
            (_, s) => return Err(refused(&format!("{s:?}").to_lowercase())),
        };
        a.store.save_rollout(&id, &r.progress, &p, &targets)?;
        Ok::<_, ApiError>(serde_json::json!({ "rollout": id, "state": p.state, "targets": targets.len() }))
    })
    .await
}
