//! `POST /v1/qoe` (players' QoE events, public, small), the operators'
//! summary at `GET /v1/admin/qoe`, the misses and costs reports at
//! `GET /v1/admin/misses` and `/v1/admin/costs`, and the dashboard data
//! at `GET /v1/admin/dashboard`.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::StatusCode;
use nearcast_common::unix_now;

use super::{error, parse, read, ApiError, Resp};
use crate::app::App;
use crate::qoe::{summarize, QoeEvent, MAX_EVENTS};

/// How many of the newest rollouts the dashboard shows.
const DASHBOARD_ROLLOUTS: usize = 5;

/// Largest QoE post (a player flushes every couple of seconds).
const MAX_POST: usize = 64 * 1024;

pub async fn post(app: Arc<App>, body: Bytes, client: std::net::IpAddr) -> Resp {
    if body.len() > MAX_POST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("QoE posts are at most {MAX_POST} bytes"),
        );
    }
    let mut events: Vec<QoeEvent> = match parse(&body) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    if events.len() > MAX_EVENTS || !events.iter().all(QoeEvent::is_valid) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_EVENTS} events with short plain fields"),
        );
    }
    let isp = app.view().prefixes.lookup(client).map(|(_, isp)| isp.clone());
    for e in &mut events {
        e.isp = isp.clone();
    }
    let n = events.len();
    read(app, move |a| {
        a.store
            .add_qoe(&events, unix_now())
            .map(|()| serde_json::json!({ "stored": n }))
    })
    .await
}

/// The host part of a base URL (`http://h:p/…` → `h:p`).
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The QoE summary of events received since `since`.
pub fn summary_since(app: &App, since: u64) -> Result<crate::qoe::QoeSummary, crate::store::StoreError> {
    let events = app.store.qoe_events(since)?;
    let mut s = summarize(&events, host_of(&app.config.origin_url));
    let rows = app.store.playback((since / 3600) as i64)?;
    s.cmcd = crate::viewers::summarize(&rows, &app.view(), unix_now());
    Ok(s)
}

/// The summary of the last `hours` (default 24).
pub async fn summary(app: Arc<App>, query: &str) -> Resp {
    let hours: u64 = super::query_param(query, "hours")
        .and_then(|h| h.parse().ok())
        .unwrap_or(24);
    let since = unix_now().saturating_sub(hours * 3600);
    read(app, move |a| summary_since(a, since)).await
}

/// The egress rows of the last `days` (`?days=N`, default 7, at most 400).
fn egress_since(a: &App, query: &str) -> Result<Vec<crate::store::EgressRow>, crate::store::StoreError> {
    let days: i64 = super::query_param(query, "days")
        .and_then(|d| d.parse().ok())
        .unwrap_or(7)
        .clamp(1, 400);
    a.store.egress(crate::store::day_of(unix_now()) - days + 1)
}

/// `GET /v1/admin/misses?days=N`: why the origin served (`misses`).
pub async fn misses(app: Arc<App>, query: &str) -> Resp {
    let query = query.to_string();
    read(app, move |a| {
        egress_since(a, &query).map(|rows| crate::costs::misses(&rows))
    })
    .await
}

/// `GET /v1/admin/costs?days=N`: origin egress at the operator's prices.
pub async fn costs(app: Arc<App>, query: &str) -> Resp {
    let query = query.to_string();
    read(app, move |a| {
        egress_since(a, &query).map(|rows| crate::costs::costs(&rows, &a.config.costs))
    })
    .await
}

/// Everything the dashboard page draws (QoE of the last 24 hours, the
/// costs and misses of the last 14 days).
pub async fn dashboard(app: Arc<App>) -> Resp {
    read(app, |a| {
        let t = unix_now();
        let since = t.saturating_sub(24 * 3600);
        let qoe = summary_since(a, since)?;
        let snap = a.store.snapshot()?;
        let egress = egress_since(a, "days=14")?;
        let history = crate::dashboard::history(
            &a.store.playback((since / 3600) as i64)?,
            &crate::costs::costs(&egress, &a.config.costs),
            crate::costs::misses(&egress),
            t,
        );
        let mut d = crate::dashboard::build(
            &snap,
            &a.store.served()?,
            qoe,
            history,
            t,
            a.config.heartbeat_timeout_secs,
        );
        let rollouts = a.store.rollouts()?;
        d.rollouts = rollouts
            .iter()
            .take(DASHBOARD_ROLLOUTS)
            .map(|r| crate::rollout::runner::status(r, &snap, t))
            .collect();
        Ok::<_, ApiError>(d)
    })
    .await
}
