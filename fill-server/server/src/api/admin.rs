//! The operator's routes (`/v1/admin/…`, bearer token checked by the
//! router): ISPs, prefixes, sites, enrollments, releases, play logs, BGP,
//! OS releases and rollouts (`rollout.rs`), rights (`rights.rs`) and the
//! fleet list.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::{error, parse, read, reply, write, write_parsed, ApiError, Resp};
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
        // The line a box's config needs to trust this server's answers.
        (&Method::GET, ["answer-keys"]) => reply(
            StatusCode::OK,
            serde_json::json!({ "keys": [app.answer.public_entry()] }),
        ),
        (&Method::GET, ["os"]) => read(app, |a| Ok::<_, ApiError>(crate::os::list(&a.config.os_bundles))).await,
        (&Method::PUT, ["appliances", id, "os"]) => set_os(app, id, &body).await,
        (_, ["rollouts", rest @ ..]) => super::rollout::route(app, method, rest, &body).await,
        (&Method::GET, ["appliances"]) => read(app, |a| a.store.snapshot().map(|s| s.appliances)).await,
        (&Method::POST, ["live"]) => create_event(app, &body).await,
        (&Method::GET, ["live"]) => reply(StatusCode::OK, app.live.list()),
        (&Method::POST, ["live", name, "end"]) => end_event(app, name).await,
        (&Method::PUT, ["titles", title, "rights"]) => super::rights::set(app, title, Some(body)).await,
        (&Method::DELETE, ["titles", title, "rights"]) => super::rights::set(app, title, None).await,
        (&Method::GET, ["rights"]) => super::rights::list(app).await,
        (&Method::PUT, ["countries"]) => super::rights::import_countries(app, &body).await,
        _ => error(StatusCode::NOT_FOUND, "no such admin call"),
    }
}

/// A live event, stored so every replica knows it.
async fn create_event(app: Arc<App>, body: &[u8]) -> Resp {
    let spec = match parse::<crate::live::EventSpec>(body) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    // The event becomes a title of its name when it ends.
    if app.has_title(&spec.name) {
        return error(StatusCode::CONFLICT, format!("a title named '{}' exists", spec.name));
    }
    if let Err(e) = spec.check() {
        return error(StatusCode::BAD_REQUEST, e);
    }
    write(app, Changed::Live, move |a| {
        if let Some(scheme) = spec.encrypt {
            // Its keys first: the replica taking the encoder reads them
            // when the event reaches it.
            let store = nearcast_packager::cenc::KeyStore::new(&a.config.license.key_store);
            let keys = store
                .keys_for(&spec.name, scheme)
                .and_then(|k| store.save(&k))
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("event keys: {e}")));
            keys?;
        }
        if !a.store.add_live_event(&spec)? {
            return Err(ApiError::from(StoreError::Exists {
                kind: "live event",
                name: spec.name.to_string(),
            }));
        }
        Ok(serde_json::json!({ "event": spec.name }))
    })
    .await
}

/// Ends a live event on every replica; the one holding its media archives
/// it as a title.
async fn end_event(app: Arc<App>, name: &str) -> Resp {
    if app.live.get(name).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no live event '{name}'"));
    }
    let name = name.to_string();
    write(app, Changed::Live, move |a| {
        a.store.end_live_event(&name, nearcast_common::unix_now())?;
        Ok::<_, ApiError>(serde_json::json!({ "ended": name, "archive": "writing" }))
    })
    .await
}

/// A new appliance and its Ed25519 public key.
async fn enroll(app: Arc<App>, body: &[u8]) -> Resp {
    match parse::<Enrollment>(body) {
        // The id names the box's pathway in players' manifests.
        Ok(e) if e.id == super::player::ORIGIN => error(
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
        Err(e) => e.into_response(),
    }
}

/// An announced release: a title's demand boosted on a day.
async fn release(app: Arc<App>, body: &[u8]) -> Resp {
    match parse::<crate::predict::Release>(body) {
        Ok(r) if r.boost.is_finite() && r.boost > 0.0 => {
            write(app, Changed::Demand, move |a| {
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
        Err(e) => e.into_response(),
    }
}

/// A CDN play log (CSV) added to each ISP's demand.
async fn playlogs(app: Arc<App>, body: &[u8]) -> Resp {
    let Ok(text) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST, "play log is not UTF-8");
    };
    match crate::playlog::parse(text, &app.view()) {
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok((rows, egress, summary)) => {
            let summary = serde_json::to_value(summary).unwrap_or_default();
            write(app, Changed::Demand, move |a| {
                a.store.add_daily_bytes(&rows)?;
                a.store.add_egress(&egress).map(|_| summary)
            })
            .await
        }
    }
}

/// The release appliance `id` should run (one that was uploaded).
async fn set_os(app: Arc<App>, id: &str, body: &[u8]) -> Resp {
    let t = match parse::<OsTarget>(body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let id = id.to_string();
    match crate::os::path(&app.config.os_bundles, &t.release) {
        Ok(p) if p.is_file() => {
            write(app, Changed::Fleet, move |a| {
                a.store
                    .set_os_target(&id, &t.release)
                    .map(|_| serde_json::json!({ "appliance": id, "release": t.release }))
            })
            .await
        }
        Ok(_) => ApiError::from(OsError::Unknown(t.release)).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
