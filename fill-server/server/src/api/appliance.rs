//! The routes appliances call (`/v1/appliances/{id}/…`), each signed with
//! the appliance's enrolled key: register, heartbeat, inventory, BGP
//! routes, the fill manifest and the OS bundle.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use nearcast_common::control::Routes;
use nearcast_common::live::LivePlan;
use nearcast_common::request_auth::Signed;
use nearcast_common::unix_now;

use super::{error, parse, reply, store_error, write, write_parsed, Refusal, Resp};
use crate::app::{App, Changed};
use crate::store::{Heartbeat, Inventory, Registration};

/// The appliance named in the path must be the one that signed, with its
/// enrolled key.
pub(super) async fn authenticate(app: &Arc<App>, id: &str, s: &Signed<'_>) -> Result<(), Refusal> {
    if s.id != id {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "request signed for another appliance",
        ));
    }
    let store = app.store.clone();
    let owned = id.to_string();
    let key = tokio::task::spawn_blocking(move || store.public_key(&owned))
        .await
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| {
            tracing::error!(error = %e, "store failure");
            Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
        })?;
    let Some(key) = key else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("appliance '{id}' is not enrolled"),
        ));
    };
    s.verify(&key, unix_now())
        .map_err(|e| Refusal::new(StatusCode::FORBIDDEN, e))
}

/// One authenticated appliance call.
pub(super) async fn route(app: Arc<App>, method: &Method, id: &str, action: &str, body: Bytes) -> Resp {
    let id = id.to_string();
    let t = unix_now();
    match (method, action) {
        (&Method::POST, "register") => {
            write_parsed(app, Changed::Fleet, &body, move |a, r: Registration| {
                a.store
                    .register(&id, &r, t)
                    .map(|_| serde_json::json!({ "registered": id }))
            })
            .await
        }
        (&Method::POST, "heartbeat") => heartbeat(app, id, t, &body).await,
        (&Method::PUT, "inventory") => {
            write_parsed(app, Changed::Fleet, &body, move |a, inv: Inventory| {
                a.store
                    .set_inventory(&id, &inv)
                    .map(|_| serde_json::json!({ "ok": true }))
            })
            .await
        }
        (&Method::PUT, "routes") => routes(app, id, t, &body).await,
        (&Method::GET, "manifest") => manifest(app, id, t).await,
        (&Method::GET, "os") => os_bundle(app, id).await,
        _ => error(StatusCode::NOT_FOUND, format!("no appliance action {method} {action}")),
    }
}

/// Stored, patched into the steering view, and answered with the OS
/// release the box should move to, if any.
async fn heartbeat(app: Arc<App>, id: String, t: u64, body: &[u8]) -> Resp {
    let hb = match parse::<Heartbeat>(body) {
        Ok(hb) => hb,
        Err(refusal) => return refusal.into_response(),
    };
    let changed = Changed::Heartbeat {
        id: id.clone(),
        at: t,
        load: hb.load,
        healthy: crate::app::steerable(&hb),
    };
    write(app, changed, move |a| {
        a.store.heartbeat(&id, &hb, t)?;
        a.count_served(&id, &hb);
        // Only a box running the image can take an OS update.
        let os_update = match &hb.os {
            Some(os) => a
                .store
                .os_target(&id)?
                .filter(|r| *r != os.release && !os.failed.contains(r)),
            None => None,
        };
        let live = live_setting(a, &id, t);
        Ok(serde_json::json!({ "ok": true, "os_update": os_update, "live": live }))
    })
    .await
}

/// What the box pulls live objects through: its site's healthy boxes,
/// then the live door; and its live cache size.
fn live_setting(app: &App, id: &str, now: u64) -> Option<LivePlan> {
    let c = &app.config;
    Some(LivePlan {
        self_id: id.to_string(),
        peers: app.view().site_peers(id, now)?,
        origins: vec![c.live_box_url.clone().unwrap_or_else(|| c.live_url.clone())],
        cache_mib: c.live_box_cache_mib,
    })
}

/// The table the box learned over BGP; every prefix must parse.
async fn routes(app: Arc<App>, id: String, t: u64, body: &[u8]) -> Resp {
    match parse::<Routes>(body) {
        Ok(r) if r.session.len() <= 16 && r.prefixes().all(|p| p.parse::<nearcast_common::IpPrefix>().is_ok()) => {
            write(app, Changed::Bgp, move |a| {
                a.store
                    .set_routes(&id, &r, t)
                    .map(|_| serde_json::json!({ "prefixes": r.len() }))
            })
            .await
        }
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            "routes need a short session state and valid prefixes",
        ),
        Err(refusal) => refusal.into_response(),
    }
}

async fn manifest(app: Arc<App>, id: String, t: u64) -> Resp {
    match tokio::task::spawn_blocking(move || crate::fill::manifest_for(&app, &id, t)).await {
        Ok(Ok(m)) => reply(StatusCode::OK, m),
        Ok(Err(crate::fill::FillError::Store(e))) => store_error(e),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The bundle of the release set for this box.
async fn os_bundle(app: Arc<App>, id: String) -> Resp {
    let result = tokio::task::spawn_blocking(move || {
        let release = app
            .store
            .os_target(&id)
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "no OS release is set for this appliance"))?;
        crate::os::read(&app.config.os_bundles, &release).map_err(|e| match e {
            crate::os::OsError::Unknown(_) => Refusal::new(StatusCode::NOT_FOUND, e),
            other => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, other),
        })
    })
    .await;
    match result {
        Ok(Ok(bytes)) => Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(bytes)))
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response")),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
