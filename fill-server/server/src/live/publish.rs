//! What players read under `/l/{event}/`: the multivariant playlist, each
//! rendition's LL-HLS playlist (a blocking reload is held until the part
//! it names exists), init segments, and segments and parts — streamed
//! while the encoder is still sending them, each fragment as it lands.

use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use nearcast_common::Name;
use nearcast_packager::live::hls::{self, Block, Playlist, Report};
use nearcast_packager::live::LiveTrack;
use tokio::sync::mpsc;

use super::http::{text, LiveBody, LiveResp};
use super::{Event, EventState, Live};
use crate::api::query_param as param;
use nearcast_common::TOKEN_PARAM;

/// A follower gives up on a part the encoder stopped sending.
const STALL: Duration = Duration::from_secs(10);

/// `rest` is the path after `/l/`.
pub async fn get(live: &Live, rest: &[&str], query: &str, host: &str) -> LiveResp {
    let Some(event) = rest.first().and_then(|e| live.get(e)) else {
        return text(StatusCode::NOT_FOUND, "no such live event");
    };
    // Every URI we write carries the token the request came with.
    let token = param(query, TOKEN_PARAM)
        .map(|t| format!("{TOKEN_PARAM}={t}"))
        .unwrap_or_default();
    match rest {
        [_, "master.m3u8"] => master(&event, &token),
        [_, "manifest.mpd"] => manifest(&event, &token, host),
        [_, rendition, file] => {
            let Ok(rendition) = Name::new(*rendition) else {
                return text(StatusCode::BAD_REQUEST, "bad rendition name");
            };
            if *file == "index.m3u8" {
                media_playlist(&event, &rendition, query, &token).await
            } else {
                media(&event, &rendition, file).await
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such live file"),
    }
}

fn playlist_resp(body: String) -> LiveResp {
    let mut r = Response::new(LiveBody::Full(Some(Bytes::from(body))));
    let h = r.headers_mut();
    h.insert(
        "content-type",
        "application/vnd.apple.mpegurl".parse().expect("a header value"),
    );
    h.insert("cache-control", "max-age=1".parse().expect("a header value"));
    r
}

/// The multivariant playlist.
fn master(event: &Event, token: &str) -> LiveResp {
    match event.master("", token) {
        Some(text) => playlist_resp(text),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "the encoder has not started"),
    }
}

/// The low-latency DASH manifest.
fn manifest(event: &Event, token: &str, host: &str) -> LiveResp {
    let utc = if host.is_empty() {
        "/time".to_string()
    } else {
        format!("http://{host}/time")
    };
    match event.mpd(&[], token, &utc) {
        Some(mpd) => mpd_resp(mpd),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "the encoder has not started"),
    }
}

/// An MPD answer (short-lived, like a playlist).
pub fn mpd_resp(mpd: String) -> LiveResp {
    let mut r = playlist_resp(mpd);
    r.headers_mut()
        .insert("content-type", "application/dash+xml".parse().expect("a header value"));
    r
}

/// Waits (at most until `deadline`) for `f` to find an answer in the
/// event's state; `None` when the time ran out.
async fn wait_for<T>(event: &Event, deadline: Instant, mut f: impl FnMut(&EventState) -> Option<T>) -> Option<T> {
    let mut changed = event.subscribe();
    loop {
        changed.borrow_and_update();
        if let Some(v) = f(&event.state()) {
            return Some(v);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, changed.changed()).await {
            Ok(Ok(())) => {}
            _ => return f(&event.state()),
        }
    }
}

/// A rendition's playlist; with `_HLS_msn` (and `_HLS_part`) held until
/// the playlist has that part, for at most three target durations.
async fn media_playlist(event: &Event, rendition: &Name, query: &str, token: &str) -> LiveResp {
    let number = |k: &str| param(query, k).map(|v| v.parse::<u64>().map_err(|_| k.to_string()));
    let (msn, part) = match (number("_HLS_msn"), number("_HLS_part")) {
        (Some(Err(k)), _) | (_, Some(Err(k))) => return text(StatusCode::BAD_REQUEST, format!("{k} is not a number")),
        (None, Some(_)) => return text(StatusCode::BAD_REQUEST, "_HLS_part needs _HLS_msn"),
        (m, p) => (m.and_then(Result::ok), p.and_then(Result::ok).map(|p| p as usize)),
    };
    let skip = matches!(param(query, "_HLS_skip"), Some("YES" | "v2"));
    let hold = Duration::from_secs_f64(3.0 * event.spec.segment_secs);
    let answer = wait_for(event, Instant::now() + hold, |st| {
        let Some(track) = st.tracks.get(rendition) else {
            return Some(Err(text(StatusCode::NOT_FOUND, format!("no rendition '{rendition}'"))));
        };
        if let Some(msn) = msn {
            match hls::block(track, msn, part) {
                Block::TooFar => {
                    return Some(Err(text(
                        StatusCode::BAD_REQUEST,
                        format!("_HLS_msn={msn} is too far ahead"),
                    )));
                }
                Block::Wait if !st.ended => return None,
                _ => {}
            }
        }
        Some(Ok(render(st, event, rendition, track, skip, token)))
    })
    .await;
    match answer {
        Some(Ok(text)) => playlist_resp(text),
        Some(Err(resp)) => resp,
        None => text(StatusCode::SERVICE_UNAVAILABLE, "the part did not arrive in time"),
    }
}

fn render(st: &EventState, event: &Event, rendition: &Name, track: &LiveTrack, skip: bool, token: &str) -> String {
    let reports: Vec<Report> = st
        .tracks
        .iter()
        .filter(|(name, _)| *name != rendition)
        .filter_map(|(name, t)| {
            let (last_msn, last_part) = hls::position(t)?;
            Some(Report {
                uri: format!("../{name}/index.m3u8"),
                last_msn,
                last_part,
            })
        })
        .collect();
    hls::media_playlist(&Playlist {
        track,
        segment_target: event.spec.segment_secs,
        skip,
        reports: &reports,
        ended: st.ended,
        query: token,
        vod: false,
    })
}

/// What a media file name asks for.
enum Wanted {
    Init(u32),
    Segment(u64),
    Part(u64, usize),
}

fn wanted(file: &str) -> Option<Wanted> {
    if let Some(e) = file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")) {
        return e.parse().ok().map(Wanted::Init);
    }
    let stem = file.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some(Wanted::Part(m.parse().ok()?, p.parse().ok()?)),
        None => stem.parse().ok().map(Wanted::Segment),
    }
}

/// Bytes of a segment or part from `from`, and whether that is all of it.
enum Slice {
    Gone,
    NotYet,
    Bytes(Vec<u8>, bool),
}

fn slice(track: &LiveTrack, msn: u64, part: Option<usize>, from: usize) -> Slice {
    // A gap segment has no media. Asked for whole (a DASH player whose
    // template named it before its period was closed) it is an empty
    // answer, so the player moves on; its parts do not exist.
    if let Some(seg) = track.segment(msn).filter(|s| s.gap) {
        return if part.is_none() && seg.complete {
            Slice::Bytes(Vec::new(), true)
        } else {
            Slice::Gone
        };
    }
    let Some(seg) = track.segment(msn) else {
        let newest = track.segments().back().map(|s| s.msn);
        return match newest {
            Some(n) if msn <= n => Slice::Gone,
            _ => Slice::NotYet,
        };
    };
    let (start, end, complete) = match part {
        None => (0, seg.data.len(), seg.complete),
        Some(k) => match seg.parts.get(k) {
            Some(p) => (p.start, p.end, p.complete),
            None if seg.complete => return Slice::Gone,
            None => return Slice::NotYet,
        },
    };
    let at = (start + from).min(end);
    Slice::Bytes(seg.data[at..end].to_vec(), complete)
}

async fn media(event: &std::sync::Arc<Event>, rendition: &Name, file: &str) -> LiveResp {
    let Some(w) = wanted(file) else {
        return text(StatusCode::NOT_FOUND, format!("no live file '{file}'"));
    };
    let (msn, part) = match w {
        Wanted::Init(e) => {
            let st = event.state();
            return match st.tracks.get(rendition).and_then(|t| t.init_of(e)) {
                Some(init) => media_resp(init.bytes.clone(), "video/mp4", event),
                None => text(StatusCode::NOT_FOUND, "no such init segment"),
            };
        }
        Wanted::Segment(m) => (m, None),
        Wanted::Part(m, p) => (m, Some(p)),
    };
    // A part or segment just ahead (a preload hint) is waited for.
    let hold = Instant::now() + Duration::from_secs_f64(3.0 * event.spec.segment_secs);
    let first = wait_for(event, hold, |st| {
        let track = st.tracks.get(rendition)?;
        let near = track.segments().back().is_none_or(|s| msn <= s.msn + 1);
        match slice(track, msn, part, 0) {
            Slice::NotYet if near && !st.ended => None,
            s => Some(s),
        }
    })
    .await;
    match first {
        None | Some(Slice::NotYet) | Some(Slice::Gone) => text(StatusCode::NOT_FOUND, "no such part or segment"),
        Some(Slice::Bytes(bytes, true)) => media_resp(bytes, "video/iso.segment", event),
        Some(Slice::Bytes(bytes, false)) => follow(event.clone(), rendition.clone(), msn, part, bytes),
    }
}

fn media_resp(bytes: Vec<u8>, kind: &'static str, event: &Event) -> LiveResp {
    let mut r = Response::new(LiveBody::Full(Some(Bytes::from(bytes))));
    let h = r.headers_mut();
    h.insert("content-type", kind.parse().expect("a header value"));
    let age = format!("max-age={}", event.spec.window_secs as u64);
    if let Ok(v) = age.parse() {
        h.insert("cache-control", v);
    }
    r
}

/// Streams a part or segment still being ingested: what is there now,
/// then each fragment as it lands, until it is whole.
fn follow(event: std::sync::Arc<Event>, rendition: Name, msn: u64, part: Option<usize>, first: Vec<u8>) -> LiveResp {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    tokio::spawn(async move {
        let mut sent = first.len();
        if tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            let next = wait_for(&event, Instant::now() + STALL, |st| {
                let track = st.tracks.get(&rendition)?;
                match slice(track, msn, part, sent) {
                    Slice::Bytes(b, complete) if !b.is_empty() || complete => Some(Some((b, complete))),
                    Slice::Gone => Some(None),
                    _ => None,
                }
            })
            .await;
            let Some(Some((bytes, complete))) = next else {
                // Stalled or dropped from the window: the connection ends
                // without its last chunk, so the client sees it cut short.
                tracing::warn!(event = %event.spec.name, %rendition, msn, "a followed part stopped arriving");
                let _ = tx
                    .send(Err(std::io::Error::other("the encoder stopped sending it")))
                    .await;
                return;
            };
            sent += bytes.len();
            if !bytes.is_empty() && tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return;
            }
            if complete {
                return;
            }
        }
    });
    let mut r = Response::new(LiveBody::Stream(rx));
    let h = r.headers_mut();
    h.insert("content-type", "video/iso.segment".parse().expect("a header value"));
    h.insert("cache-control", "no-store".parse().expect("a header value"));
    r
}
