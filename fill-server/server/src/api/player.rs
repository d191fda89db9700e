//! Player routes: `GET /v1/steer` (signed URLs, best first), and
//! manifests of a title rewritten for this player (`playback.rs`),
//! pointing at the appliance steering picks, with a title-wide token bound
//! to the player's prefix.
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

use super::{error, query_param, reply, Resp};
use crate::app::App;
use crate::playback::{self, Pathway};
use crate::steer::grant;

/// The origin's pathway id (no appliance may take it).
pub const ORIGIN: &str = "origin";
/// How often a player re-reads the steering manifest.
const STEERING_TTL_SECS: u64 = 10;

/// Who asks for a play resource: the player's address, the query, the
/// entitlement it shows (`?entitlement=` or a bearer token) and this
/// server's base URL as the player reached it (for license URLs).
pub struct Caller<'a> {
    pub client: IpAddr,
    pub query: &'a str,
    pub entitlement: Option<&'a str>,
    pub base: String,
}

pub fn play(app: &App, rest: &[&str], caller: &Caller) -> Resp {
    let (query, client) = (caller.query, caller.client);
    // The names enter here: each segment checked once.
    if let Some(Err(e)) = rest.iter().map(|s| Name::new(*s)).find(Result::is_err) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if let Some(refusal) = rest
        .first()
        .and_then(|title| super::rights::refused(app, title, client))
    {
        return refusal;
    }
    match rest {
        // A live event, until it is archived as a title of its name.
        [event, file @ ("master.m3u8" | "manifest.mpd")] if app.live.get(event).is_some_and(|e| !e.archived()) => {
            live(app, event, file, caller)
        }
        [title, "master.m3u8"] => vod_master(app, title, caller),
        [title, "steering.json"] => {
            let priority = pathways(app, client, title, query_param(query, "_HLS_pathway"));
            let body = serde_json::json!({
                "VERSION": 1,
                "TTL": STEERING_TTL_SECS,
                "PATHWAY-PRIORITY": priority,
            });
            reply_text("application/json", body.to_string())
        }
        [title, "manifest.mpd"] => vod_mpd(app, title, caller),
        [title, rendition, playlist @ ("index.m3u8" | "iframes.m3u8")] => {
            let token = super::token_of(query);
            let path = format!("/c/{title}/{rendition}/{playlist}");
            if let Err(e) = app.keyring.verify(&path, &token, client, unix_now()) {
                return error(StatusCode::FORBIDDEN, e);
            }
            let view = app.view();
            let base = view.url_of(query_param(query, "via").unwrap_or(ORIGIN));
            let Some(text) = read(app, &[title, rendition, playlist]) else {
                return error(StatusCode::NOT_FOUND, format!("no playlist {path}"));
            };
            let base = format!("{}/c/{title}/{rendition}", base.trim_end_matches('/'));
            let text = playback::media(&text, &base, &format!("{TOKEN_PARAM}={token}"));
            match query_param(query, SESSION_PARAM) {
                Some(s) if is_token_text(s) => hls(playback::media_keys(&text, &license_url(caller, s))),
                Some(_) => error(StatusCode::BAD_REQUEST, "malformed play session"),
                None => hls(text),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such play resource"),
    }
}

/// A title's multivariant playlist for this player: a pathway per box
/// steering picks and the origin, and, when it is encrypted, the play
/// session's license URL.
fn vod_master(app: &App, title: &str, caller: &Caller) -> Resp {
    let client = caller.client;
    let ids = pathways(app, client, title, None);
    let Some(text) = read(app, &[title, "master.m3u8"]) else {
        return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
    };
    match ids.first() {
        Some(id) if id == ORIGIN => crate::misses::note(&app.misses, &app.view(), client, title, unix_now()),
        Some(id) => crate::misses::note_detour(&app.misses, &app.view(), client, title, id, unix_now()),
        None => {}
    }
    let session = match license_session(app, title, names_keys(&text), caller) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let token = title_token(app, title, client);
    let prefix = format!("/v1/play/{title}/");
    let view = app.view();
    let paths: Vec<Pathway> = ids
        .iter()
        .map(|id| match &session {
            // In the clear, each pathway's media playlists come from its
            // box as packaged, the token in the path so their relative
            // segment URIs keep it: a player that reads every pathway's
            // playlist (Shaka) then has each segment at every pathway and
            // moves on by itself when a box fails it.
            None => Pathway {
                id,
                prefix: format!(
                    "{}/t/{}/c/{title}/",
                    view.url_of(id).trim_end_matches('/'),
                    playback::path_token(&token)
                ),
                query: String::new(),
            },
            // Encrypted, they come from here, their keys bound to the
            // play session.
            Some(s) => Pathway {
                id,
                prefix: prefix.clone(),
                query: format!("via={id}&{TOKEN_PARAM}={token}&{SESSION_PARAM}={s}"),
            },
        })
        .collect();
    let text = playback::master(&text, &paths, &format!("{prefix}steering.json"));
    match &session {
        Some(s) => hls(playback::master_license(&text, &license_url(caller, s))),
        None => hls(text),
    }
}

/// A title's MPD for this player: the boxes' and the origin's `BaseURL`s,
/// and, when it is encrypted, the play session's license URL.
fn vod_mpd(app: &App, title: &str, caller: &Caller) -> Resp {
    let client = caller.client;
    let view = app.view();
    let (_, boxes) = view.candidates(client, title, unix_now(), view.max_appliances);
    match boxes.first() {
        None => crate::misses::note(&app.misses, &view, client, title, unix_now()),
        Some(b) => crate::misses::note_detour(&app.misses, &view, client, title, &b.id, unix_now()),
    }
    let dir = format!("/c/{title}/");
    let bases: Vec<String> = view.urls(&boxes, &dir).collect();
    let Some(text) = read(app, &[title, "manifest.mpd"]) else {
        return error(StatusCode::NOT_FOUND, format!("no title '{title}'"));
    };
    let session = match license_session(app, title, names_keys(&text), caller) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let q = format!("{TOKEN_PARAM}={}", title_token(app, title, client));
    let text = playback::mpd(&text, &bases, &q);
    match &session {
        Some(s) => reply_text(
            "application/dash+xml",
            playback::mpd_license(&text, &license_url(caller, s)),
        ),
        None => reply_text("application/dash+xml", text),
    }
}

/// The media playlists' query parameter that carries the play session.
const SESSION_PARAM: &str = "ls";

/// Whether a packaged manifest names keys (the title is encrypted).
fn names_keys(text: &str) -> bool {
    text.contains("#EXT-X-SESSION-KEY:") || text.contains("<ContentProtection")
}

/// The play session of an encrypted title or event (`protected`), opened
/// from the caller's entitlement; None: it is in the clear. A refusal
/// says why.
fn license_session(app: &App, title: &str, protected: bool, caller: &Caller) -> Result<Option<String>, Box<Resp>> {
    if !protected {
        return Ok(None);
    }
    let refused = |e| Box::new(super::ApiError::from(e).into_response());
    let entitlement = caller
        .entitlement
        .ok_or_else(|| refused(nearcast_license::LicenseError::NoEntitlement))?;
    app.license
        .open_session(entitlement, title, unix_now())
        .map(Some)
        .map_err(refused)
}

/// The license URL of play session `session`.
fn license_url(caller: &Caller, session: &str) -> String {
    format!("{}/v1/license/s/{session}", caller.base)
}

/// Whether `s` may be a token (JWT characters only, bounded): it is
/// copied into playlists.
fn is_token_text(s: &str) -> bool {
    s.len() <= nearcast_license::jwt::MAX_TOKEN_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A live event's manifest for this player, with a token for the event
/// bound to the player's prefix: the HLS master lists a pathway per box
/// live steering picks (each variant's playlist on that box, which pulls
/// it through) and the live door last, with content steering; the MPD
/// lists the same as `BaseURL`s in order.
fn live(app: &App, event: &str, file: &str, caller: &Caller) -> Resp {
    let client = caller.client;
    let Some(ev) = app.live.get(event) else {
        return error(StatusCode::NOT_FOUND, format!("no live event '{event}'"));
    };
    let session = match license_session(app, event, ev.spec.encrypt.is_some(), caller) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let bind = |text: String, hls: bool| match &session {
        Some(s) if hls => playback::master_license(&text, &license_url(caller, s)),
        Some(s) => playback::mpd_license(&text, &license_url(caller, s)),
        None => text,
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
        ev.master("", "").map(|t| {
            let text = playback::master(&t, &paths, &steering);
            ("application/vnd.apple.mpegurl", bind(text, true))
        })
    } else {
        let urls: Vec<String> = bases.into_iter().map(|(_, b)| b).collect();
        ev.mpd(&urls, &q, &format!("{live_url}/time"))
            .map(|t| ("application/dash+xml", bind(t, false)))
    };
    match answer {
        Some((ctype, text)) => reply_text(ctype, text),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the encoder has not started"),
    }
}

/// Pathways for a player, best first: the boxes steering picks for it (for
/// a live event, live steering), then the origin. The pathway it is on now
/// (`current`) stays first while that box is still a candidate, so a
/// change in load does not move a playing client, unless its viewers
/// rebuffer there (`steer::quality`); a box that failed, fails its
/// viewers' requests or stopped heartbeating drops out.
fn pathways(app: &App, client: IpAddr, title: &str, current: Option<&str>) -> Vec<String> {
    let view = app.view();
    let live = app.live.get(title).is_some_and(|e| !e.archived());
    let (_, boxes) = match live {
        true => view.live_candidates(client, title, unix_now(), view.max_appliances),
        false => view.candidates(client, title, unix_now(), view.max_appliances),
    };
    let mut ids: Vec<String> = boxes.iter().map(|b| b.id.clone()).collect();
    // A box demoted for its viewers' rebuffering does not keep them when
    // a box that is not is there (candidates come in rank order).
    let keeps = |i: usize| !boxes[i].quality.demoted || boxes[0].quality.demoted;
    if let Some(i) = current
        .and_then(|c| ids.iter().position(|id| id == c))
        .filter(|&i| keeps(i))
    {
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

/// `GET /v1/steer?title=T&file=F`: where this client fetches a file of a
/// title, best first, the origin last.
pub(super) fn steer(app: &App, query: &str, client: IpAddr) -> Resp {
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
    if let Some(refusal) = super::rights::refused(app, &title, client) {
        return refusal;
    }
    let view = app.view();
    let answer = view.steer(&app.key, client, &title, &file, unix_now(), app.config.url_ttl_secs);
    app.metrics.steered(answer.urls.len() > 1);
    match view.candidates(client, &title, unix_now(), 1).1.first() {
        None => crate::misses::note(&app.misses, &view, client, &title, unix_now()),
        Some(b) => crate::misses::note_detour(&app.misses, &view, client, &title, &b.id, unix_now()),
    }
    reply(StatusCode::OK, answer)
}
