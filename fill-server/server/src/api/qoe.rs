//! `POST /v1/qoe` (players' QoE events, public, small) and the operators'
//! summary at `GET /v1/admin/qoe`.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::StatusCode;

use super::{error, now, parse, reply, store_error, Resp};
use crate::app::App;
use crate::qoe::{summarize, QoeEvent, MAX_EVENTS};

/// Largest QoE post (a player flushes every couple of seconds).
const MAX_POST: usize = 64 * 1024;

pub async fn post(app: Arc<App>, body: Bytes) -> Resp {
    if body.len() > MAX_POST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("QoE posts are at most {MAX_POST} bytes"),
        );
    }
    let events: Vec<QoeEvent> = match parse(&body) {
        Ok(e) => e,
        Err(refusal) => return refusal.into_response(),
    };
    if events.len() > MAX_EVENTS || !events.iter().all(QoeEvent::is_valid) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_EVENTS} events with short plain fields"),
        );
    }
    let store = app.store.clone();
    let n = events.len();
    match tokio::task::spawn_blocking(move || store.add_qoe(&events, now())).await {
        Ok(Ok(())) => reply(StatusCode::OK, serde_json::json!({ "stored": n })),
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The summary of the last `hours` (default 24).
pub async fn summary(app: Arc<App>, query: &str) -> Resp {
    let hours: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("hours="))
        .and_then(|h| h.parse().ok())
        .unwrap_or(24);
    let since = now().saturating_sub(hours * 3600);
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.qoe_events(since)).await {
        Ok(Ok(events)) => reply(StatusCode::OK, summarize(&events)),
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
