//! The HTTP API (hyper), a module per audience: operators (`admin`, with a
//! bearer token), appliances (`appliance`, each call signed with the box's
//! key) and players (`player`: steering and rewritten manifests; `qoe`). JSON in and
//! out; every refusal says why in a JSON `error`.

mod admin;
mod appliance;
mod bundle;
mod error;
mod license;
mod player;
mod qoe;
mod rights;
mod rollout;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use nearcast_common::unix_now;
use serde::de::DeserializeOwned;

use crate::app::{App, Changed};
use crate::metrics::Route;
use crate::store::StoreError;
use error::blocking;
pub(crate) use error::ApiError;

/// The API's OpenAPI 3 document (committed as `fill-server/server/openapi.json`).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The player page (`/player?title=…`) and the hls.js it plays with.
const PLAYER_PAGE: &[u8] = include_bytes!("../../player/index.html");
const HLS_JS: &[u8] = include_bytes!("../../player/hls.min.js");
/// The operators' dashboard page (data from `/v1/admin/dashboard`).
const DASHBOARD_PAGE: &[u8] = include_bytes!("../../player/dashboard.html");

const KIB: usize = 1024;
pub(crate) const MIB: usize = 1024 * KIB;
/// How long a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The largest body a route takes: checked against `Content-Length`
/// before anything is read, and again while the body streams in.
fn body_limit(method: &Method, segs: &[&str]) -> usize {
    match (method, segs) {
        (&Method::GET | &Method::HEAD, _) => 0,
        (_, ["v1", "qoe"]) => 64 * KIB,
        // A Clear Key request names a few key IDs.
        (_, ["v1", "license", ..]) => 4 * KIB,
        // A full routing table (1.2M prefixes) as text or grouped JSON.
        (_, ["v1", "admin", "prefixes" | "countries"]) | (_, ["v1", "appliances", _, "routes"]) => 256 * MIB,
        (_, ["v1", "appliances", _, "inventory"]) | (_, ["v1", "admin", "playlogs"]) => 64 * MIB,
        _ => MIB,
    }
}

/// The request body, read within its route's limit and time.
async fn read_body(parts: &hyper::http::request::Parts, body: Incoming, limit: usize) -> Result<Bytes, Resp> {
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("this route takes at most {limit} body bytes"),
        ));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, e)),
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "the body took too long")),
    }
}

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

/// The metrics label of a path.
fn route_of(segs: &[&str]) -> Route {
    match segs {
        ["v1", "steer"] => Route::Steer,
        ["v1", "play", ..] => Route::Play,
        ["v1", "appliances", ..] => Route::Appliance,
        ["v1", "admin", ..] => Route::Admin,
        ["v1", "license", ..] => Route::License,
        _ => Route::Other,
    }
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Players and boxes (`listen`).
    Public,
    /// Operators (`admin_listen`, loopback by default): `/v1/admin/…` and
    /// the dashboard, plus `/healthz` and `/metrics`.
    Admin,
}

/// Serves one request on the public listener.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
    Ok(serve_on(Door::Public, app, req, peer).await)
}

/// Serves one request on the admin listener.
pub async fn handle_admin(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
    Ok(serve_on(Door::Admin, app, req, peer).await)
}

async fn serve_on(door: Door, app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let (parts, body) = req.into_parts();
    if !host_ok(&parts) {
        return error(StatusCode::BAD_REQUEST, "missing, repeated or malformed Host header");
    }
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let for_admins = matches!(segs.as_slice(), ["v1", "admin", ..] | ["dashboard"]);
    let anyone = matches!(segs.as_slice(), ["healthz"] | ["metrics"]);
    let wrong_door = match door {
        Door::Public => for_admins.then_some("admin calls are served on the admin listener (admin_listen)"),
        Door::Admin => (!for_admins && !anyone).then_some("the admin listener serves /v1/admin/… and /dashboard"),
    };
    if let Some(why) = wrong_door {
        return error(StatusCode::NOT_FOUND, why);
    }
    if let (&Method::PUT, ["v1", "admin", "os", release]) = (&parts.method, segs.as_slice()) {
        // Streamed to disk, not read here.
        let resp = match admitted(&app, &parts) {
            true => bundle::upload(app.clone(), &parts, release, body).await,
            false => error(StatusCode::UNAUTHORIZED, "admin token required"),
        };
        app.metrics.request(Route::Admin, resp.status().as_u16());
        return resp;
    }
    let body = match read_body(&parts, body, body_limit(&parts.method, &segs)).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let route = route_of(&segs);
    let mut resp = routed(app.clone(), &parts, &path, &segs, body, peer).await;
    app.metrics.request(route, resp.status().as_u16());
    if matches!(route, Route::Steer | Route::Play | Route::License) {
        // Players on other origins call steering and read its manifests.
        resp.headers_mut().insert(
            "access-control-allow-origin",
            hyper::header::HeaderValue::from_static("*"),
        );
    }
    resp
}

/// The route for a request that came in on the right door.
async fn routed(
    app: Arc<App>,
    parts: &hyper::http::request::Parts,
    path: &str,
    segs: &[&str],
    body: Bytes,
    peer: SocketAddr,
) -> Resp {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    match (&parts.method, segs) {
        (&Method::GET, ["healthz"]) => reply(StatusCode::OK, serde_json::json!({ "status": "ok" })),
        (&Method::GET, ["openapi.json"]) => fixed("application/json", OPENAPI.as_bytes()),
        (&Method::GET, ["player"]) => fixed("text/html; charset=utf-8", PLAYER_PAGE),
        (&Method::GET, ["player", "hls.min.js"]) => fixed("text/javascript", HLS_JS),
        (&Method::GET, ["dashboard"]) => fixed("text/html; charset=utf-8", DASHBOARD_PAGE),
        (&Method::GET, ["metrics"]) => Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(app.metrics.render(&app, unix_now()))))
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "metrics")),
        (&Method::GET, ["v1", "play", rest @ ..]) => {
            let query = parts.uri.query().unwrap_or("");
            let caller = player::Caller {
                client: app.client_ip(peer.ip(), header("x-forwarded-for")),
                query,
                entitlement: query_param(query, "entitlement")
                    .or_else(|| header("authorization").and_then(|h| h.strip_prefix("Bearer "))),
                base: format!(
                    "{}://{}",
                    if app.tls.is_some() { "https" } else { "http" },
                    header("host").unwrap_or("localhost")
                ),
            };
            player::play(&app, rest, &caller)
        }
        (&Method::POST, ["v1", "qoe"]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            qoe::post(app.clone(), body, client).await
        }
        (&Method::GET, ["v1", "steer"]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            player::steer(&app, parts.uri.query().unwrap_or(""), client)
        }
        (_, ["v1", "license", rest @ ..]) => {
            let client = app.client_ip(peer.ip(), header("x-forwarded-for"));
            license::call(app.clone(), parts, rest, body, client).await
        }
        (_, ["v1", "admin", rest @ ..]) => admin_call(app, parts, rest, body).await,
        (_, ["v1", "appliances", id, action]) => appliance::call(app, parts, id, action, body).await,
        // Delta OS updates: the chunk index, a chunk by its hash.
        (_, ["v1", "appliances", id, "os", "index"]) => appliance::call(app, parts, id, "os/index", body).await,
        (_, ["v1", "appliances", id, "os", "chunks", hash]) => {
            let action = format!("os/chunks/{hash}");
            appliance::call(app, parts, id, &action, body).await
        }
        _ => error(StatusCode::NOT_FOUND, format!("no route for {} {path}", parts.method)),
    }
}

/// Whether the request carries the admin bearer token (compared in
/// constant time).
fn admitted(app: &App, parts: &hyper::http::request::Parts) -> bool {
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    token.is_some_and(|t| {
        !app.config.admin_token.is_empty()
            && nearcast_common::token::constant_time_eq(t.as_bytes(), app.config.admin_token.as_bytes())
    })
}

/// An operator's call: the bearer token (compared in constant time), then
/// the QoE summary, the dashboard's data, the misses and costs reports,
/// or the admin routes.
async fn admin_call(app: Arc<App>, parts: &hyper::http::request::Parts, rest: &[&str], body: Bytes) -> Resp {
    let query = parts.uri.query().unwrap_or("");
    if !admitted(&app, parts) {
        error(StatusCode::UNAUTHORIZED, "admin token required")
    } else if parts.method == Method::GET && rest == ["qoe"] {
        qoe::summary(app, query).await
    } else if parts.method == Method::GET && rest == ["dashboard"] {
        qoe::dashboard(app).await
    } else if parts.method == Method::GET && rest == ["misses"] {
        qoe::misses(app, query).await
    } else if parts.method == Method::GET && rest == ["costs"] {
        qoe::costs(app, query).await
    } else {
        admin::route(app, &parts.method, rest, body).await
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

/// The answer to a call: its JSON, or its error's.
fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Resp {
    match result {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

/// Runs a store call off the async threads, then refreshes what it changed.
async fn write<E: Into<ApiError> + From<StoreError> + Send + 'static>(
    app: Arc<App>,
    changed: Changed,
    f: impl FnOnce(&App) -> Result<serde_json::Value, E> + Send + 'static,
) -> Resp {
    answer(
        blocking(app, move |a| {
            let v = f(a)?;
            a.refresh(&changed)?;
            Ok::<_, E>(v)
        })
        .await,
    )
}

/// Runs a store read off the async threads and answers with its JSON.
async fn read<T: serde::Serialize + Send + 'static, E: Into<ApiError> + Send + 'static>(
    app: Arc<App>,
    f: impl FnOnce(&App) -> Result<T, E> + Send + 'static,
) -> Resp {
    answer(blocking(app, f).await)
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
        Err(e) => e.into_response(),
    }
}

/// The URL token of a query string, percent-decoded (players re-encode
/// queries: hls.js sends a token's `/` as `%2F` once it adds `_HLS_msn`);
/// empty when there is none.
pub(crate) fn token_of(query: &str) -> String {
    let mut buf = [0u8; 512];
    nearcast_common::query::param(query.as_bytes(), nearcast_common::TOKEN_PARAM, &mut buf)
        .unwrap_or("")
        .to_string()
}

/// The value of `name` in a query string (as sent, not percent-decoded).
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}
