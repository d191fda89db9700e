//! The license service's routes (W3C Clear Key exchange; design in
//! docs/content-protection.md):
//!
//! - `POST /v1/license` with `Authorization: Bearer <entitlement>`, or
//!   `POST /v1/license/s/{session}` (the URL a `/v1/play` manifest
//!   carries): `{"kids": […]}` in, a JWK set out.
//! - `GET /v1/license/keys/{kid}`, `GET /v1/license/s/{session}/keys/{kid}`:
//!   the 16 key bytes (HLS `identity` key delivery, as Shaka Player reads it).
//! - `POST /v1/license/renew`, `POST /v1/license/s/{session}/renew`: the
//!   stream's lease moved on (`{"lease_secs": n}`).
//!
//! Refusals (mapped in `error.rs`): 401 no or bad entitlement or
//! session, 403 title not in it, 404 unknown key, 429 stream limit, and
//! 451 when the title's rights refuse this client now (`rights.rs`), each
//! with a JSON `error`.

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use nearcast_common::unix_now;
use nearcast_license::{Auth, LicenseError};

use super::error::blocking;
use super::{error, reply, ApiError, Resp};
use crate::app::App;

pub async fn call(
    app: Arc<App>,
    parts: &hyper::http::request::Parts,
    rest: &[&str],
    body: Bytes,
    client: IpAddr,
) -> Resp {
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let (auth, action) = match rest {
        ["s", session, action @ ..] => (Auth::Session(session), action),
        action => (bearer.map_or(Auth::None, Auth::Bearer), action),
    };
    match (&parts.method, action) {
        (&Method::OPTIONS, _) => preflight(),
        (&Method::POST, []) => {
            let kids = nearcast_license::clearkey::parse_request(&body).unwrap_or_default();
            if let Some(refusal) = kids.iter().find_map(|k| unavailable(&app, k, client)) {
                return refusal;
            }
            let result = with_reread(&app, |a| a.license.license(auth, &body, unix_now())).await;
            // Again: a title packaged since start is known only now.
            if let Some(refusal) = kids.iter().find_map(|k| unavailable(&app, k, client)) {
                return refusal;
            }
            match result {
                Ok(json) => bytes("application/json", json),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        (&Method::GET, ["keys", kid]) => {
            let Some(kid) = nearcast_packager::cenc::keys::unhex(kid) else {
                return error(StatusCode::BAD_REQUEST, "a key ID is 32 hex digits");
            };
            if let Some(refusal) = unavailable(&app, &kid, client) {
                return refusal;
            }
            let result = with_reread(&app, |a| a.license.key(auth, &kid, unix_now())).await;
            if let Some(refusal) = unavailable(&app, &kid, client) {
                return refusal;
            }
            match result {
                Ok(key) => bytes("application/octet-stream", key.to_vec()),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        (&Method::POST, ["renew"]) => match app.license.renew(auth, unix_now()) {
            Ok(lease) => reply(StatusCode::OK, serde_json::json!({ "lease_secs": lease })),
            Err(e) => ApiError::from(e).into_response(),
        },
        _ => error(StatusCode::NOT_FOUND, "no such license resource"),
    }
}

/// 451 when the title of `kid` may not be watched from `client` now
/// (asked before the license is made, and after, for a title the service
/// learnt of on the way).
fn unavailable(app: &App, kid: &[u8; 16], client: IpAddr) -> Option<Resp> {
    let title = app.license.title_of(kid)?;
    super::rights::refused(app, &title, client)
}

/// Runs `f`; when it names a key ID the service has not seen, reads the
/// key store again (off the async threads, once a second at most) and
/// runs it once more: a title packaged since start is served.
async fn with_reread<T>(app: &Arc<App>, f: impl Fn(&App) -> Result<T, LicenseError>) -> Result<T, LicenseError> {
    match f(app) {
        Err(LicenseError::UnknownKey(_)) if app.license.may_reread(unix_now()) => {
            if let Err(e) = blocking(app.clone(), |a| a.license.reload()).await {
                tracing::warn!(error = ?e, "reading the key store again");
            }
            f(app)
        }
        other => other,
    }
}

fn bytes(content_type: &str, body: Vec<u8>) -> Resp {
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// CORS preflight: players on other origins post with an
/// `Authorization` header.
fn preflight() -> Resp {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("access-control-allow-methods", "GET, POST, OPTIONS")
        .header("access-control-allow-headers", "authorization, content-type")
        .header("access-control-max-age", "600")
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
