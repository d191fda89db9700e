//! The HTTP API (hyper): admin calls with a bearer token, appliance calls
//! signed with the appliance's key, and steering for players. JSON in and
//! out; every refusal says why in a JSON `error`.

mod play;
mod qoe;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use nearcast_common::request_auth::{Signed, HEADER_ID, HEADER_SIGNATURE, HEADER_TIME};
use nearcast_common::unix_now;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::app::{App, Changed};
use crate::metrics::Route;
use crate::store::{Heartbeat, Inventory, Registration, StoreError};

/// The API's OpenAPI 3 document (committed as `fill-server/server/openapi.json`).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The player page (`/player?title=…`) and the hls.js it plays with.
const PLAYER_PAGE: &[u8] = include_bytes!("../../player/index.html");
const HLS_JS: &[u8] = include_bytes!("../../player/hls.min.js");
/// The operators' dashboard page (data from `/v1/admin/dashboard`).
const DASHBOARD_PAGE: &[u8] = include_bytes!("../../player/dashboard.html");

/// Largest request body (a prefix import of a full table fits).
const MAX_BODY: usize = 64 * 1024 * 1024;

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl serde::Serialize) -> Resp {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// A built-in document.
fn fixed(content_type: &str, body: &'static [u8]) -> Resp {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Resp {
    reply(status, serde_json::json!({ "error": msg.to_string() }))
}

/// A refusal decided before a handler runs: small to pass around, turned
/// into a response at the end.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        Refusal(status, msg.to_string())
    }

    fn into_response(self) -> Resp {
        error(self.0, self.1)
    }
}

fn store_error(e: StoreError) -> Resp {
    match e {
        StoreError::Unknown { .. } | StoreError::Import { .. } => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        other => {
            tracing::error!(error = %other, "store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
        }
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, and it is
/// an authority (an IPv6 address in brackets); HTTP/1.0 may have none.
fn host_ok(parts: &hyper::http::request::Parts) -> bool {
    let mut hosts = parts.headers.get_all(hyper::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => parts.version < hyper::Version::HTTP_11,
        (Some(h), None) => h
            .to_str()
            .ok()
            .is_some_and(|h| h.parse::<hyper::http::uri::Authority>().is_ok()),
        _ => false,
    }
}

/// Serves one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    if !host_ok(&parts) {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "missing, repeated or malformed Host header",
        ));
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, e)),
    };
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let route = match segs.as_slice() {
        ["v1", "steer"] => Route::Steer,
        ["v1", "play", ..] => Route::Play,
        ["v1", "appliances", ..] => Route::Appliance,
        ["v1", "admin", ..] => Route::Admin,
        _ => Route::Other,
    };
    let resp = match (&parts.method, segs.as_slice()) {
        (&Method::GET, ["healthz"]) => reply(StatusCode::OK, serde_json::json!({ "status": "ok" })),
        (&Method::GET, ["openapi.json"]) => fixed("application/json", OPENAPI.as_bytes()),
        (&Method::GET, ["player"]) => fixed("text/html; charset=utf-8", PLAYER_PAGE),
        (&Method::GET, ["player", "hls.min.js"]) => fixed("text/javascript", HLS_JS),
        (&Method::GET, ["dashboard"]) => fixed("text/html; charset=utf-8", DASHBOARD_PAGE),
        (&Method::GET, ["metrics"]) => Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(app.metrics.render(&app.view(), unix_now()))))
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "metrics")),
        (&Method::GET, ["v1", "play", rest @ ..]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            play::play(&app, rest, parts.uri.query().unwrap_or(""), client)
        }
        (&Method::POST, ["v1", "qoe"]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            qoe::post(app.clone(), body, client).await
        }
        (&Method::GET, ["v1", "steer"]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            steer(&app, parts.uri.query().unwrap_or(""), client)
        }
        (_, ["v1", "admin", rest @ ..]) => {
            let token = header("authorization").and_then(|h| h.strip_prefix("Bearer "));
            if token != Some(app.config.admin_token.as_str()) {
                error(StatusCode::UNAUTHORIZED, "admin token required")
            } else if parts.method == Method::GET && rest == ["qoe"] {
                qoe::summary(app.clone(), parts.uri.query().unwrap_or("")).await
            } else if parts.method == Method::GET && rest == ["dashboard"] {
                qoe::dashboard(app.clone()).await
            } else {
                admin(app.clone(), &parts.method, rest, body).await
            }
        }
        (method, ["v1", "appliances", id, action]) => {
            let path_q = parts.uri.path_and_query().map_or(path.as_str(), |p| p.as_str());
            let signed = Signed {
                id: header(HEADER_ID).unwrap_or(""),
                method: method.as_str(),
                path: path_q,
                time: header(HEADER_TIME).unwrap_or(""),
                signature: header(HEADER_SIGNATURE).unwrap_or(""),
                body: &body,
            };
            match authenticate(&app, id, &signed).await {
                Err(refusal) => refusal.into_response(),
                Ok(()) => appliance(app.clone(), method, id, action, body).await,
            }
        }
        _ => error(StatusCode::NOT_FOUND, format!("no route for {} {path}", parts.method)),
    };
    app.metrics.request(route, resp.status().as_u16());
    let mut resp = resp;
    if matches!(route, Route::Steer | Route::Play) {
        // Players on other origins call steering and read its manifests.
        resp.headers_mut().insert(
            "access-control-allow-origin",
            hyper::header::HeaderValue::from_static("*"),
        );
    }
    Ok(resp)
}

/// The appliance named in the path must be the one that signed, with its
/// enrolled key.
async fn authenticate(app: &Arc<App>, id: &str, s: &Signed<'_>) -> Result<(), Refusal> {
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

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

/// Runs a store call off the async threads, then refreshes what it changed.
async fn write(
    app: Arc<App>,
    changed: Changed,
    f: impl FnOnce(&App) -> Result<serde_json::Value, StoreError> + Send + 'static,
) -> Resp {
    let result = tokio::task::spawn_blocking(move || {
        let v = f(&app)?;
        app.refresh(changed)?;
        Ok::<_, StoreError>(v)
    })
    .await;
    match result {
        Ok(Ok(v)) => reply(StatusCode::OK, v),
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Parses a JSON body into `T`, then runs `f` with it as a store write.
async fn write_parsed<T: DeserializeOwned + Send + 'static>(
    app: Arc<App>,
    changed: Changed,
    body: &[u8],
    f: impl FnOnce(&App, T) -> Result<serde_json::Value, StoreError> + Send + 'static,
) -> Resp {
    match parse::<T>(body) {
        Ok(v) => write(app, changed, move |a| f(a, v)).await,
        Err(refusal) => refusal.into_response(),
    }
}

async fn appliance(app: Arc<App>, method: &Method, id: &str, action: &str, body: Bytes) -> Resp {
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
        (&Method::POST, "heartbeat") => match parse::<Heartbeat>(&body) {
            Ok(hb) => {
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
                    Ok(serde_json::json!({ "ok": true, "os_update": os_update }))
                })
                .await
            }
            Err(refusal) => refusal.into_response(),
        },
        (&Method::PUT, "inventory") => {
            write_parsed(app, Changed::Fleet, &body, move |a, inv: Inventory| {
                a.store
                    .set_inventory(&id, &inv)
                    .map(|_| serde_json::json!({ "ok": true }))
            })
            .await
        }
        (&Method::PUT, "routes") => match parse::<nearcast_common::control::Routes>(&body) {
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
        },
        (&Method::GET, "manifest") => {
            let result = tokio::task::spawn_blocking(move || crate::fill::manifest_for(&app, &id, t)).await;
            match result {
                Ok(Ok(m)) => reply(StatusCode::OK, m),
                Ok(Err(crate::fill::FillError::Store(e))) => store_error(e),
                Ok(Err(e)) => error(StatusCode::CONFLICT, e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (&Method::GET, "os") => {
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
        _ => error(StatusCode::NOT_FOUND, format!("no appliance action {method} {action}")),
    }
}

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

fn os_error(e: crate::os::OsError) -> Resp {
    use crate::os::OsError;
    match e {
        OsError::Unknown(_) => error(StatusCode::NOT_FOUND, e),
        OsError::Io { .. } => {
            tracing::error!(error = %e, "OS bundle store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
        }
        _ => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

#[derive(Deserialize)]
struct Enrollment {
    id: nearcast_common::Name,
    public_key: String,
}

async fn admin(app: Arc<App>, method: &Method, rest: &[&str], body: Bytes) -> Resp {
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
        (&Method::POST, ["appliances"]) => match parse::<Enrollment>(&body) {
            // The id names the box's pathway in players' manifests.
            Ok(e) if e.id == play::ORIGIN => error(
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
        },
        (&Method::POST, ["releases"]) => match parse::<crate::predict::Release>(&body) {
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
        },
        (&Method::POST, ["playlogs"]) => {
            let Ok(text) = String::from_utf8(body.to_vec()) else {
                return error(StatusCode::BAD_REQUEST, "play log is not UTF-8");
            };
            match crate::playlog::parse(&text, &app.view()) {
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
        (&Method::GET, ["bgp"]) => {
            let store = app.store.clone();
            let result =
                tokio::task::spawn_blocking(move || Ok::<_, StoreError>((store.bgp_routes()?, store.snapshot()?)))
                    .await;
            match result {
                Ok(Ok((routes, snap))) => reply(StatusCode::OK, crate::bgp::fleet(&routes, &snap)),
                Ok(Err(e)) => store_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (&Method::PUT, ["os", release]) => {
            let (dir, release) = (app.config.os_bundles.clone(), release.to_string());
            match tokio::task::spawn_blocking(move || crate::os::store(&dir, &release, &body)).await {
                Ok(Ok(m)) => reply(StatusCode::OK, m),
                Ok(Err(e)) => os_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (&Method::GET, ["os"]) => {
            let dir = app.config.os_bundles.clone();
            match tokio::task::spawn_blocking(move || crate::os::list(&dir)).await {
                Ok(list) => reply(StatusCode::OK, list),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (&Method::PUT, ["appliances", id, "os"]) => match parse::<OsTarget>(&body) {
            Ok(t) => {
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
                    Ok(_) => os_error(crate::os::OsError::Unknown(t.release)),
                    Err(e) => os_error(e),
                }
            }
            Err(refusal) => refusal.into_response(),
        },
        (&Method::GET, ["appliances"]) => {
            let store = app.store.clone();
            match tokio::task::spawn_blocking(move || store.snapshot()).await {
                Ok(Ok(s)) => reply(StatusCode::OK, s.appliances),
                Ok(Err(e)) => store_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such admin call"),
    }
}

/// The value of `name` in a query string (as sent, not percent-decoded).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

fn steer(app: &App, query: &str, client: IpAddr) -> Resp {
    let Some(title) = query_param(query, "title") else {
        return error(StatusCode::BAD_REQUEST, "title is required");
    };
    let file = query_param(query, "file").unwrap_or("master.m3u8");
    let (title, file) = match (nearcast_common::Name::new(title), nearcast_common::TitlePath::new(file)) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !app.has_title(&title) {
        return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
    }
    let answer = app
        .view()
        .steer(&app.key, client, &title, &file, unix_now(), app.config.url_ttl_secs);
    app.metrics.steered(answer.urls.len() > 1);
    reply(StatusCode::OK, answer)
}
