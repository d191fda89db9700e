//! Player routes: manifests of a title rewritten for this player
//! (`playback.rs`), pointing at the appliance steering picks, with a
//! title-wide token bound to the player's prefix.
//!
//! `GET /v1/play/{title}/master.m3u8`, `GET /v1/play/{title}/manifest.mpd`,
//! and the media playlists the master leads to,
//! `GET /v1/play/{title}/{rendition}/index.m3u8?via={box}&token={token}`.

use std::net::IpAddr;

use hyper::StatusCode;
use nearcast_common::{is_plain_name, Grant, TOKEN_PARAM};

use super::{error, now, Resp};
use crate::app::App;
use crate::playback;
use crate::steer::client_prefix;

const ORIGIN: &str = "origin";

pub fn play(app: &App, rest: &[&str], query: &str, client: IpAddr) -> Resp {
    if !rest.iter().all(|s| is_plain_name(s.as_bytes())) {
        return error(StatusCode::BAD_REQUEST, "bad title or file name");
    }
    match rest {
        [title, "master.m3u8"] => {
            let (via, _) = choose(app, client, title);
            let Some(text) = read(app, &[title, "master.m3u8"]) else {
                return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
            };
            let q = format!("via={via}&{TOKEN_PARAM}={}", title_token(app, title, client));
            hls(playback::master(&text, &format!("/v1/play/{title}/"), &q))
        }
        [title, "manifest.mpd"] => {
            let view = app.view();
            let (_, boxes) = view.candidates(client, title, now(), view.max_appliances);
            let bases: Vec<String> = boxes
                .iter()
                .map(|b| b.url.as_str())
                .chain([view.origin_url.as_str()])
                .map(|u| format!("{}/c/{title}/", u.trim_end_matches('/')))
                .collect();
            let Some(text) = read(app, &[title, "manifest.mpd"]) else {
                return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
            };
            let q = format!("{TOKEN_PARAM}={}", title_token(app, title, client));
            reply_text("application/dash+xml", playback::mpd(&text, &bases, &q))
        }
        [title, rendition, "index.m3u8"] => {
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
            };
            let token = param(TOKEN_PARAM).unwrap_or("");
            let path = format!("/c/{title}/{rendition}/index.m3u8");
            if let Err(e) = app.keyring.verify(&path, token, client, now()) {
                return error(StatusCode::FORBIDDEN, e);
            }
            let view = app.view();
            let via = param("via").unwrap_or(ORIGIN);
            let base = view
                .boxes
                .iter()
                .find(|b| b.id == via)
                .map_or(view.origin_url.as_str(), |b| b.url.as_str());
            let Some(text) = read(app, &[title, rendition, "index.m3u8"]) else {
                return error(StatusCode::NOT_FOUND, format!("no playlist {path}"));
            };
            let base = format!("{}/c/{title}/{rendition}", base.trim_end_matches('/'));
            hls(playback::media(&text, &base, &format!("{TOKEN_PARAM}={token}")))
        }
        _ => error(StatusCode::NOT_FOUND, "no such play resource"),
    }
}

/// The appliance to play from (its id, or "origin"), and its base URL.
fn choose(app: &App, client: IpAddr, title: &str) -> (String, String) {
    let view = app.view();
    let (_, boxes) = view.candidates(client, title, now(), 1);
    match boxes.first() {
        Some(b) => (b.id.clone(), b.url.clone()),
        None => (ORIGIN.to_string(), view.origin_url.clone()),
    }
}

fn title_token(app: &App, title: &str, client: IpAddr) -> String {
    let grant = Grant {
        expires: now() + app.config.url_ttl_secs,
        client_prefix: client_prefix(client),
    };
    app.key.sign(&format!("/c/{title}/"), &grant)
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
