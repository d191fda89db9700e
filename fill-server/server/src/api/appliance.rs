//! The routes appliances call (`/v1/appliances/{id}/…`), each signed with
//! the appliance's enrolled key: register, heartbeat, inventory, BGP
//! routes, the fill manifest and the OS bundle.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use nearcast_common::control::Routes;
use nearcast_common::live::LivePlan;
use nearcast_common::request_auth::{Signed, HEADER_ID, HEADER_SIGNATURE, HEADER_TIME};
use nearcast_common::unix_now;

use super::wire::Format;
use super::{blocking, error, write, ApiError, Resp};
use crate::app::{App, Changed};
use crate::metrics::OsSent;
use crate::store::{Heartbeat, Inventory, Registration};
use nearcast_common::control::HeartbeatReply;

/// The appliance named in the path must be the one that signed, with its
/// enrolled key.
async fn authenticate(app: &Arc<App>, id: &str, s: &Signed<'_>) -> Result<(), ApiError> {
    if s.id != id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "request signed for another appliance",
        ));
    }
    let owned = id.to_string();
    let Some(key) = blocking(app.clone(), move |a| a.public_key(&owned)).await? else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("appliance '{id}' is not enrolled"),
        ));
    };
    s.verify(&key, unix_now())
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))
}

/// An appliance's call: authenticated, routed, and the answer signed with
/// the server's answer key, bound to the request's own signature (so the
/// box can tell it is the server's answer to this request).
pub(super) async fn call(
    app: Arc<App>,
    parts: &hyper::http::request::Parts,
    id: &str,
    action: &str,
    body: Bytes,
) -> Resp {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let signed = Signed {
        id: header(HEADER_ID).unwrap_or(""),
        method: parts.method.as_str(),
        path,
        time: header(HEADER_TIME).unwrap_or(""),
        signature: header(HEADER_SIGNATURE).unwrap_or(""),
        body: &body,
    };
    let resp = match authenticate(&app, id, &signed).await {
        Err(e) => e.into_response(),
        Ok(()) => {
            let range = header("range").map(str::to_string);
            route(
                app.clone(),
                &parts.method,
                id,
                action,
                Format::of(parts),
                body.clone(),
                range,
            )
            .await
        }
    };
    let (mut head, answer) = resp.into_parts();
    let answer = match answer.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let request_signature = header(HEADER_SIGNATURE).unwrap_or("");
    for (name, value) in app
        .answer
        .sign(id, request_signature, head.status.as_u16(), unix_now(), &answer)
    {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            head.headers.insert(name, v);
        }
    }
    Response::from_parts(head, Full::new(answer))
}

/// One authenticated appliance call (`range`: its `Range` header, which
/// only the OS bundle honours).
async fn route(
    app: Arc<App>,
    method: &Method,
    id: &str,
    action: &str,
    f: Format,
    body: Bytes,
    range: Option<String>,
) -> Resp {
    let id = id.to_string();
    let t = unix_now();
    match (method, action) {
        (&Method::POST, "register") => match f.parse::<Registration>(&body) {
            Ok(r) => {
                write(app, Changed::Fleet, move |a| {
                    a.store
                        .register(&id, &r, t)
                        .map(|_| serde_json::json!({ "registered": id }))
                })
                .await
            }
            Err(e) => e.into_response(),
        },
        (&Method::POST, "heartbeat") => heartbeat(app, id, t, f, &body).await,
        (&Method::PUT, "inventory") => match f.parse::<Inventory>(&body) {
            Ok(inv) => {
                write(app, Changed::Fleet, move |a| {
                    a.store
                        .set_inventory(&id, &inv)
                        .map(|_| serde_json::json!({ "ok": true }))
                })
                .await
            }
            Err(e) => e.into_response(),
        },
        (&Method::PUT, "routes") => routes(app, id, t, f, &body).await,
        (&Method::GET, "manifest") => manifest(app, id, t, f).await,
        (&Method::GET, "os") => os_bundle(app, id, range).await,
        (&Method::GET, "os/index") => os_index(app, id).await,
        (&Method::GET, a) if a.starts_with("os/chunks/") => os_chunk(app, a["os/chunks/".len()..].to_string()).await,
        _ => error(StatusCode::NOT_FOUND, format!("no appliance action {method} {action}")),
    }
}

/// Written with its batch (`beats`), patched into the steering view, and
/// answered with the OS release the box should move to, if any, and its
/// live plan.
async fn heartbeat(app: Arc<App>, id: String, t: u64, f: Format, body: &[u8]) -> Resp {
    let hb = match f.parse::<Heartbeat>(body) {
        Ok(hb) => hb,
        Err(e) => return e.into_response(),
    };
    if let Some(Err(e)) = hb.playback.as_ref().map(|p| p.check()) {
        return error(StatusCode::BAD_REQUEST, format!("playback: {e}"));
    }
    // Only a box running the image can take an OS update.
    let running = hb.os.clone();
    match app.beats.submit(id.clone(), hb).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "heartbeat not stored");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "storage failure");
        }
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"),
    }
    let reply = blocking(app, move |a| {
        let os_update = match &running {
            Some(os) => a.os_target(&id).filter(|r| *r != os.release && !os.failed.contains(r)),
            None => None,
        };
        let live = live_setting(a, &id, t);
        let os_emergency = os_update.is_some() && a.os_emergency(&id);
        Ok::<_, ApiError>(HeartbeatReply {
            os_update,
            os_emergency,
            live,
        })
    })
    .await;
    match reply {
        Ok(r) => f.answer(&r, |mut v| {
            v["ok"] = true.into();
            v
        }),
        Err(e) => e.into_response(),
    }
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
async fn routes(app: Arc<App>, id: String, t: u64, f: Format, body: &[u8]) -> Resp {
    match f.parse::<Routes>(body) {
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
        Err(e) => e.into_response(),
    }
}

async fn manifest(app: Arc<App>, id: String, t: u64, f: Format) -> Resp {
    match blocking(app, move |a| crate::fill::manifest_for(a, &id, t)).await {
        Ok(m) => f.answer(&m, |v| v),
        Err(e) => e.into_response(),
    }
}

/// The bundle of the release set for this box, named in
/// `x-nearcast-release`; from an offset with `Range: bytes=N-` (a download
/// cut mid-way resumes: the box checks the release is the same).
async fn os_bundle(app: Arc<App>, id: String, range: Option<String>) -> Resp {
    let result = blocking(app.clone(), move |a| {
        let release = a
            .store
            .os_target(&id)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no OS release is set for this appliance"))?;
        let bytes = crate::os::read(&a.config.os_bundles, &release)?;
        Ok::<_, ApiError>((release, bytes))
    })
    .await;
    let (release, bytes) = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let len = bytes.len() as u64;
    let from = range.as_deref().and_then(|r| first_byte(r, len)).unwrap_or(0);
    app.metrics.os_sent(OsSent::Bundle, len - from);
    let head = Response::builder()
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header(nearcast_common::bundle::RELEASE_HEADER, release.as_str());
    let built = match range.as_deref().map(|r| first_byte(r, len)) {
        None => head.body(Full::new(Bytes::from(bytes))),
        Some(Some(from)) => head
            .status(StatusCode::PARTIAL_CONTENT)
            .header("content-range", format!("bytes {from}-{}/{len}", len - 1))
            .body(Full::new(Bytes::from(bytes).slice(from as usize..))),
        Some(None) => head
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header("content-range", format!("bytes */{len}"))
            .body(Full::new(Bytes::new())),
    };
    built.unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn octets(release: Option<&str>, bytes: Vec<u8>) -> Resp {
    let mut head = Response::builder().header("content-type", "application/octet-stream");
    if let Some(r) = release {
        head = head.header(nearcast_common::bundle::RELEASE_HEADER, r);
    }
    head.body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

/// The box's target release's bundle header (signed manifest) followed by
/// its chunk index; 404 when the release has no index (the box then
/// downloads the bundle whole).
async fn os_index(app: Arc<App>, id: String) -> Resp {
    let result = blocking(app.clone(), move |a| {
        let release = a
            .store
            .os_target(&id)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no OS release is set for this appliance"))?;
        let dir = &a.config.os_bundles;
        let index = crate::os::chunks::index(dir, &release)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("release '{release}' has no chunk index")))?;
        let header = crate::os::header(dir, &release)?;
        Ok::<_, ApiError>((release, [header, index].concat()))
    })
    .await;
    match result {
        Ok((release, bytes)) => {
            app.metrics.os_sent(OsSent::Index, bytes.len() as u64);
            octets(Some(&release), bytes)
        }
        Err(e) => e.into_response(),
    }
}

/// One chunk by its SHA-256.
async fn os_chunk(app: Arc<App>, hash: String) -> Resp {
    match blocking(app.clone(), move |a| {
        Ok::<_, ApiError>(crate::os::chunks::chunk(&a.config.os_bundles, &hash)?)
    })
    .await
    {
        Ok(bytes) => {
            app.metrics.os_sent(OsSent::Chunk, bytes.len() as u64);
            octets(None, bytes)
        }
        Err(e) => e.into_response(),
    }
}

/// The offset of `bytes=N-` (the one form a resuming box sends) when it is
/// inside a body of `len` bytes.
fn first_byte(range: &str, len: u64) -> Option<u64> {
    let from: u64 = range.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()?;
    (from < len).then_some(from)
}
