//! `PUT /v1/admin/os/{release}`: an OS bundle (tens to hundreds of MiB)
//! streamed to a hidden file by a blocking writer as it arrives, never
//! held whole, then checked and renamed into place (`os::Upload`). Over
//! `os_bundle_max_mib` (by `Content-Length` or as it streams), cut, stalled
//! or malformed, nothing is kept.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::StatusCode;
use tokio::sync::mpsc;

use super::{error, reply, ApiError, Resp};
use crate::app::App;

/// Time allowed between two pieces of the body, and for all of it.
const IDLE: Duration = Duration::from_secs(30);
const TOTAL: Duration = Duration::from_secs(600);
/// Pieces in flight to the writer (hyper's are up to 16 KiB or so).
const QUEUE: usize = 16;

/// Why the body stopped before its end.
enum Stop {
    Refused(ApiError),
    /// The writer failed: its error is the answer.
    WriterGone,
}

pub(super) async fn upload(app: Arc<App>, parts: &hyper::http::request::Parts, release: &str, body: Incoming) -> Resp {
    let limit = app.config.os_bundle_max_mib.saturating_mul(super::MIB as u64);
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bundles are at most {limit} bytes"),
        );
    }
    let (dir, release) = (app.config.os_bundles.clone(), release.to_string());
    let (pieces, mut rx) = mpsc::channel::<Option<Bytes>>(QUEUE);
    // `None` ends the body; a closed channel without it drops the upload.
    let writer = tokio::task::spawn_blocking(move || {
        let mut up = crate::os::Upload::begin(&dir, &release)?;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Some(chunk) => up.write(&chunk)?,
                None => return up.finish().map(Some),
            }
        }
        Ok(None)
    });
    let streamed = tokio::time::timeout(TOTAL, stream(body, limit, &pieces))
        .await
        .unwrap_or_else(|_| {
            Err(Stop::Refused(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the bundle took too long",
            )))
        });
    let refused = match streamed {
        Ok(()) => {
            let _ = pieces.send(None).await;
            None
        }
        Err(Stop::Refused(refusal)) => Some(refusal),
        Err(Stop::WriterGone) => None,
    };
    drop(pieces);
    // Awaited even when refused, so the partial file is gone on answer.
    let written = writer.await;
    match (refused, written) {
        (Some(refusal), _) => refusal.into_response(),
        (None, Ok(Ok(Some(m)))) => reply(StatusCode::OK, m),
        (None, Ok(Ok(None))) => error(StatusCode::BAD_REQUEST, "the bundle's body was cut"),
        (None, Ok(Err(e))) => ApiError::from(e).into_response(),
        (None, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Sends `body`'s data to the writer, within `limit` bytes and `IDLE`
/// per piece.
async fn stream(mut body: Incoming, limit: u64, pieces: &mpsc::Sender<Option<Bytes>>) -> Result<(), Stop> {
    let refuse = |status, msg: String| Err(Stop::Refused(ApiError::new(status, msg)));
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(IDLE, body.frame()).await {
            Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "the bundle stalled".into()),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return refuse(StatusCode::BAD_REQUEST, format!("the bundle's body: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len() as u64;
        if total > limit {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bundles are at most {limit} bytes"),
            );
        }
        if pieces.send(Some(data)).await.is_err() {
            return Err(Stop::WriterGone);
        }
    }
}
