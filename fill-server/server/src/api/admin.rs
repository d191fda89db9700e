//! The operator's routes (`/v1/admin/…`, bearer token checked by the
//! router): ISPs, prefixes, sites, enrollments, releases, play logs, BGP,
//! OS releases and the fleet list.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::{error, parse, read, reply, write, write_parsed, Resp};
use crate::app::{App, Changed};
use crate::os::OsError;
use crate::store::StoreError;

#[derive(Deserialize)]
struct NewIsp {
    name: String,
    #[serde(default)]
    asns: Vec<u32>,
}

#[derive(Deserialize)]
struct NewSite {
    name: String,
    isp: String,
}

#[derive(Deserialize)]
struct OsTarget {
    release: String,
}

#[derive(Deserialize)]
struct Enrollment {
    id: nearcast_common::Name,
    public_key: String,
}

fn os_error(e: OsError) -> Resp {
    match e {
        OsError::Unknown(_) => error(StatusCode::NOT_FOUND, e),
        OsError::Io { .. } => {
            tracing::error!(error = %e, "OS bundle store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
        }
        _ => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// One admin call (the token already checked).
pub(super) async fn route(app: Arc<App>, method: &Method, rest: &[&str], body: Bytes) -> Resp {
    match (method, rest) {
        (&Method::POST, ["isps"]) => {
            write_parsed(app, Changed::Routing, &body, move |a, n: NewIsp| {
                a.store
                    .add_isp(&n.name, &n.asns)
                    .map(|_| serde_json::json!({ "isp": n.name }))
            })
            .await
        }
        (&Method::PUT, ["prefixes"]) => {
            let Ok(text) = String::from_utf8(body.to_vec()) else {
                return error(StatusCode::BAD_REQUEST, "prefix list is not UTF-8");
            };
            write(app, Changed::Routing, move |a| {
                a.store
                    .import_prefixes(&text)
                    .map(|n| serde_json::json!({ "prefixes": n }))
            })
            .await
        }
        (&Method::POST, ["sites"]) => {
            write_parsed(app, Changed::Fleet, &body, move |a, n: NewSite| {
                a.store
                    .add_site(&n.name, &n.isp)
                    .map(|_| serde_json::json!({ "site": n.name }))
            })
            .await
        }
        (&Method::POST, ["appliances"]) => enroll(app, &body).await,
        (&Method::POST, ["releases"]) => release(app, &body).await,
        (&Method::POST, ["playlogs"]) => playlogs(app, &body).await,
        (&Method::GET, ["bgp"]) => {
            read(app, |a| {
                Ok::<_, StoreError>(crate::bgp::fleet(&a.store.bgp_routes()?, &a.store.snapshot()?))
            })
            .await
        }
        (&Method::PUT, ["os", release]) => {
            let (dir, release) = (app.config.os_bundles.clone(), release.to_string());
            match tokio::task::spawn_blocking(move || crate::os::store(&dir, &release, &body)).await {
                Ok(Ok(m)) => reply(StatusCode::OK, m),
                Ok(Err(e)) => os_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (&Method::GET, ["os"]) => read(app, |a| Ok(crate::os::list(&a.config.os_bundles))).await,
        (&Method::PUT, ["appliances", id, "os"]) => set_os(app, id, &body).await,
        (&Method::GET, ["appliances"]) => read(app, |a| a.store.snapshot().map(|s| s.appliances)).await,
        (&Method::POST, ["live"]) => match parse::<crate::live::EventSpec>(&body) {
            Err(refusal) => refusal.into_response(),
            // The event becomes a title of its name when it ends.
            Ok(spec) if app.has_title(&spec.name) => {
                error(StatusCode::CONFLICT, format!("a title named '{}' exists", spec.name))
            }
            Ok(spec) => {
                let name = spec.name.clone();
                match app.live.create(spec) {
                    Ok(()) => reply(StatusCode::OK, serde_json::json!({ "event": name })),
                    Err(e @ crate::live::LiveError::Exists(_)) => error(StatusCode::CONFLICT, e),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                }
            }
        },
        (&Method::GET, ["live"]) => reply(StatusCode::OK, app.live.list()),
        (&Method::POST, ["live", name, "end"]) => match app.live.end(name) {
            Some(event) => {
                let store = app.config.origin_store.clone();
                tokio::task::spawn_blocking(move || event.archive(&store));
                reply(
                    StatusCode::OK,
                    serde_json::json!({ "ended": name, "archive": "writing" }),
                )
            }
            None => error(StatusCode::NOT_FOUND, format!("no live event '{name}'")),
        },
        _ => error(StatusCode::NOT_FOUND, "no such admin call"),
    }
}

/// A new appliance and its Ed25519 public key.
async fn enroll(app: Arc<App>, body: &[u8]) -> Resp {
    match parse::<Enrollment>(body) {
        // The id names the box's pathway in players' manifests.
        Ok(e) if e.id == super::play::ORIGIN => error(
            StatusCode::BAD_REQUEST,
            "an appliance id is letters, digits, '.', '_' and '-', and not 'origin'",
        ),
        Ok(e) if nearcast_common::token::decode_hex(&e.public_key).is_some_and(|k| k.len() == 32) => {
            write(app, Changed::Fleet, move |a| {
                a.store
                    .enroll(&e.id, &e.public_key)
                    .map(|_| serde_json::json!({ "enrolled": e.id }))
            })
            .await
        }
        Ok(_) => error(StatusCode::BAD_REQUEST, "public_key must be 32 bytes of hex (Ed25519)"),
        Err(refusal) => refusal.into_response(),
    }
}

/// An announced release: a title's demand boosted on a day.
async fn release(app: Arc<App>, body: &[u8]) -> Resp {
    match parse::<crate::predict::Release>(body) {
        Ok(r) if r.boost.is_finite() && r.boost > 0.0 => {
            write(app, Changed::Nothing, move |a| {
                a.store
                    .add_release(&r)
                    .map(|_| serde_json::json!({ "release": r.title }))
            })
            .await
        }
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            "a release needs a plain title and a positive boost",
        ),
        Err(refusal) => refusal.into_response(),
    }
}

/// A CDN play log (CSV) added to each ISP's demand.
async fn playlogs(app: Arc<App>, body: &[u8]) -> Resp {
    let Ok(text) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST, "play log is not UTF-8");
    };
    match crate::playlog::parse(text, &app.view()) {
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok((rows, summary)) => {
            let summary = serde_json::to_value(summary).unwrap_or_default();
            write(app, Changed::Nothing, move |a| {
                a.store.add_daily_bytes(&rows).map(|_| summary)
            })
            .await
        }
    }
}

/// The release appliance `id` should run (one that was uploaded).
async fn set_os(app: Arc<App>, id: &str, body: &[u8]) -> Resp {
    let t = match parse::<OsTarget>(body) {
        Ok(t) => t,
        Err(refusal) => return refusal.into_response(),
    };
    let id = id.to_string();
    match crate::os::path(&app.config.os_bundles, &t.release) {
        Ok(p) if p.is_file() => {
            write(app, Changed::Nothing, move |a| {
                a.store
                    .set_os_target(&id, &t.release)
                    .map(|_| serde_json::json!({ "appliance": id, "release": t.release }))
            })
            .await
        }
        Ok(_) => os_error(OsError::Unknown(t.release)),
        Err(e) => os_error(e),
    }
}
