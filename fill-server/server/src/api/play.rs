//! Player routes: manifests of a title rewritten for this player
//! (`playback.rs`), pointing at the appliance steering picks, with a
//! title-wide token bound to the player's prefix.
//!
//! `GET /v1/play/{title}/master.m3u8`, `GET /v1/play/{title}/manifest.mpd`,
//! the media playlists the master leads to,
//! `GET /v1/play/{title}/{rendition}/index.m3u8?via={box}&token={token}`,
//! and the HLS content steering manifest the master names,
//! `GET /v1/play/{title}/steering.json?_HLS_pathway={box}`.
//!
//! HLS failover: the master lists every candidate box and the origin as
//! pathways; the player moves to the next one when its box stops answering,
//! and reloads the steering manifest to learn the current order.

use std::net::IpAddr;

use hyper::StatusCode;
use nearcast_common::{unix_now, Name, TOKEN_PARAM};

use super::{error, query_param, Resp};
use crate::app::App;
use crate::playback::{self, Pathway};
use crate::steer::grant;

/// The origin's pathway id (no appliance may take it).
pub const ORIGIN: &str = "origin";
/// How often a player re-reads the steering manifest.
const STEERING_TTL_SECS: u64 = 10;

pub fn play(app: &App, rest: &[&str], query: &str, client: IpAddr) -> Resp {
    // The names enter here: each segment checked once.
    if let Some(Err(e)) = rest.iter().map(|s| Name::new(*s)).find(Result::is_err) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    match rest {
        // A live event, until it is archived as a title of its name.
        [event, file @ ("master.m3u8" | "manifest.mpd")] if app.live.get(event).is_some_and(|e| !e.archived()) => {
            live(app, event, file, client)
        }
        [title, "master.m3u8"] => {
            let ids = pathways(app, client, title, None);
            let Some(text) = read(app, &[title, "master.m3u8"]) else {
                return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
            };
            let q = format!("{TOKEN_PARAM}={}", title_token(app, title, client));
            let prefix = format!("/v1/play/{title}/");
            let paths: Vec<Pathway> = ids
                .iter()
                .map(|id| Pathway {
                    id,
                    prefix: prefix.clone(),
                    query: format!("via={id}&{q}"),
                })
                .collect();
            hls(playback::master(&text, &paths, &format!("{prefix}steering.json")))
        }
        [title, "steering.json"] => {
            let priority = pathways(app, client, title, query_param(query, "_HLS_pathway"));
            let body = serde_json::json!({
                "VERSION": 1,
                "TTL": STEERING_TTL_SECS,
                "PATHWAY-PRIORITY": priority,
            });
            reply_text("application/json", body.to_string())
        }
        [title, "manifest.mpd"] => {
            let view = app.view();
            let (_, boxes) = view.candidates(client, title, unix_now(), view.max_appliances);
            let dir = format!("/c/{title}/");
            let bases: Vec<String> = view.urls(&boxes, &dir).collect();
            let Some(text) = read(app, &[title, "manifest.mpd"]) else {
                return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
            };
            let q = format!("{TOKEN_PARAM}={}", title_token(app, title, client));
            reply_text("application/dash+xml", playback::mpd(&text, &bases, &q))
        }
        [title, rendition, "index.m3u8"] => {
            let token = super::token_of(query);
            let path = format!("/c/{title}/{rendition}/index.m3u8");
            if let Err(e) = app.keyring.verify(&path, &token, client, unix_now()) {
                return error(StatusCode::FORBIDDEN, e);
            }
            let view = app.view();
            let base = view.url_of(query_param(query, "via").unwrap_or(ORIGIN));
            let Some(text) = read(app, &[title, rendition, "index.m3u8"]) else {
                return error(StatusCode::NOT_FOUND, format!("no playlist {path}"));
            };
            let base = format!("{}/c/{title}/{rendition}", base.trim_end_matches('/'));
            hls(playback::media(&text, &base, &format!("{TOKEN_PARAM}={token}")))
        }
        _ => error(StatusCode::NOT_FOUND, "no such play resource"),
    }
}

/// A live event's manifest for this player, with a token for the event
/// bound to the player's prefix: the HLS master lists a pathway per box
/// live steering picks (each variant's playlist on that box, which pulls
/// it through) and the live door last, with content steering; the MPD
/// lists the same as `BaseURL`s in order.
fn live(app: &App, event: &str, file: &str, client: IpAddr) -> Resp {
    let Some(ev) = app.live.get(event) else {
        return error(StatusCode::NOT_FOUND, format!("no live event '{event}'"));
    };
    let token = app.key.sign(
        &format!("/l/{event}/"),
        &grant(client, unix_now(), app.config.url_ttl_secs),
    );
    let q = format!("{TOKEN_PARAM}={token}");
    let live_url = app.config.live_url.trim_end_matches('/');
    let view = app.view();
    let bases: Vec<(String, String)> = pathways(app, client, event, None)
        .into_iter()
        .map(|id| {
            let base = match id.as_str() {
                ORIGIN => live_url,
                box_id => view.url_of(box_id).trim_end_matches('/'),
            };
            let base = format!("{base}/l/{event}/");
            (id, base)
        })
        .collect();
    let answer = if file == "master.m3u8" {
        let paths: Vec<Pathway> = bases
            .iter()
            .map(|(id, base)| Pathway {
                id,
                prefix: base.clone(),
                query: q.clone(),
            })
            .collect();
        let steering = format!("/v1/play/{event}/steering.json");
        ev.master("", "")
            .map(|t| ("application/vnd.apple.mpegurl", playback::master(&t, &paths, &steering)))
    } else {
        let urls: Vec<String> = bases.into_iter().map(|(_, b)| b).collect();
        ev.mpd(&urls, &q, &format!("{live_url}/time"))
            .map(|t| ("application/dash+xml", t))
    };
    match answer {
        Some((ctype, text)) => reply_text(ctype, text),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the encoder has not started"),
    }
}

/// Pathways for a player, best first: the boxes steering picks for it (for
/// a live event, live steering), then the origin. The pathway it is on now
/// (`current`) stays first while that box is still a candidate, so a
/// change in load does not move a playing client; a box that failed or
/// stopped heartbeating drops out.
fn pathways(app: &App, client: IpAddr, title: &str, current: Option<&str>) -> Vec<String> {
    let view = app.view();
    let live = app.live.get(title).is_some_and(|e| !e.archived());
    let (_, boxes) = match live {
        true => view.live_candidates(client, title, unix_now(), view.max_appliances),
        false => view.candidates(client, title, unix_now(), view.max_appliances),
    };
    let mut ids: Vec<String> = boxes.iter().map(|b| b.id.clone()).collect();
    if let Some(i) = current.and_then(|c| ids.iter().position(|id| id == c)) {
        let id = ids.remove(i);
        ids.insert(0, id);
    }
    ids.push(ORIGIN.to_string());
    ids
}

fn title_token(app: &App, title: &str, client: IpAddr) -> String {
    app.key.sign(
        &format!("/c/{title}/"),
        &grant(client, unix_now(), app.config.url_ttl_secs),
    )
}

fn read(app: &App, parts: &[&str]) -> Option<String> {
    let path = parts.iter().fold(app.config.origin_store.clone(), |p, s| p.join(s));
    std::fs::read_to_string(path).ok()
}

fn hls(body: String) -> Resp {
    reply_text("application/vnd.apple.mpegurl", body)
}

fn reply_text(ctype: &str, body: String) -> Resp {
    hyper::Response::builder()
        .header("content-type", ctype)
        .header("cache-control", "no-store")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}
