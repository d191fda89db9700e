//! The live listener: routes, the response body (whole, or streamed while
//! a part is still being ingested), and the accept loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use nearcast_common::unix_now;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{ingest, publish};
use crate::app::App;

/// A live response body: all of it, or chunks as they are ingested. A
/// streamed body that fails ends the connection without its last chunk,
/// so the client never takes a cut part for a whole one.
pub enum LiveBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl Body for LiveBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        match &mut *self {
            LiveBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            LiveBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, LiveBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            LiveBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            LiveBody::Full(None) => SizeHint::with_exact(0),
            LiveBody::Stream(_) => SizeHint::default(),
        }
    }
}

pub type LiveResp = Response<LiveBody>;

/// A plain-text answer (errors say why).
pub fn text(status: StatusCode, body: impl Into<String>) -> LiveResp {
    let body: String = body.into();
    let mut r = Response::new(LiveBody::Full((!body.is_empty()).then(|| Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
    r
}

async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Result<LiveResp, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut resp = match (&parts.method, segs.as_slice()) {
        (&Method::PUT | &Method::POST, ["ingest", rest @ ..]) => ingest::ingest(&app.live, rest, body).await,
        (&Method::GET | &Method::HEAD, ["l", rest @ ..]) => {
            let token = crate::api::token_of(&query);
            let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
            match app.keyring.verify(&path, &token, peer.ip(), unix_now()) {
                Err(e) => text(StatusCode::FORBIDDEN, e.to_string()),
                Ok(_) => publish::get(&app.live, rest, &query, host).await,
            }
        }
        // The clock DASH players align to (UTCTiming, http-iso).
        (&Method::GET | &Method::HEAD, ["time"]) => {
            let now = nearcast_common::clock::millis_of(nearcast_common::clock::now_secs());
            text(StatusCode::OK, nearcast_common::clock::iso8601_millis(now))
        }
        _ => text(StatusCode::NOT_FOUND, format!("no route for {} {path}", parts.method)),
    };
    if parts.method == Method::HEAD {
        *resp.body_mut() = LiveBody::Full(None);
    }
    // Players on other origins read the live manifests and media.
    resp.headers_mut().insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    Ok(resp)
}

/// Serves the live door (ingest and `/l/`) on `listener` until `stop`
/// resolves. Bounded: connections and the time to send a request head
/// (`door_*` in the config), how long a reload or a followed part is held
/// (`publish`), upload sizes and idle uploads (`ingest`).
pub async fn serve(listener: TcpListener, app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
    // The events' clock (gap segments while an encoder is silent).
    let live = app.live.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            every.tick().await;
            live.tick(nearcast_common::clock::now_secs());
        }
    });
    let limits = app.config.door_limits();
    crate::server::serve_bounded(listener, app, crate::server::DoorSetup::plain(limits), stop, handle).await
}

/// The live door on `listen` from a thread and runtime of its own (the
/// demo and the tests); dropped, it stops.
pub fn spawn_background(app: Arc<App>, listen: SocketAddr) -> std::io::Result<crate::server::Background> {
    crate::server::spawn_with(listen, "nearcast-live", move |listener, stopped| {
        serve(listener, app, stopped)
    })
}
