//! The ingest door: `PUT`/`POST /ingest/{event}/{secret}/{file}` as an
//! encoder pushes CMAF (ffmpeg's DASH muxer with `-method PUT -streaming
//! 1`, or any DASH-IF interface-1 encoder). Init segments are read whole;
//! a media segment's body is cut into boxes as it arrives and each whole
//! fragment is published at once. The encoder's own manifests are
//! accepted and ignored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::StatusCode;
use nearcast_common::token::constant_time_eq;
use nearcast_common::Name;
use nearcast_packager::live::protect::LiveProtection;
use nearcast_packager::live::{IngestError, LiveInit, LiveTrack, Published, Splitter};
use nearcast_packager::mp4::TrackKind;

use super::http::{text, LiveResp};
use super::{Event, Live};

/// An init segment larger than this is refused.
const MAX_INIT: usize = 1 << 20;
/// A box larger than this is refused (an mdat of 2 s at 50 Mbit/s is 12 MiB).
const MAX_BOX: u64 = 32 << 20;
/// An upload that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(10);

/// What an ingest path names.
#[derive(Debug, PartialEq)]
enum Target {
    Init(Name),
    Media(Name),
    /// The encoder's MPD or playlist: not read.
    Manifest,
}

/// `rendition/init…`, `rendition/anything.m4s`, or ffmpeg's default names
/// `init-{rendition}.m4s` and `chunk-{rendition}-{number}.m4s`.
fn target(file: &[&str]) -> Option<Target> {
    let last = file.last()?;
    if last.ends_with(".mpd") || last.ends_with(".m3u8") {
        return Some(Target::Manifest);
    }
    match file {
        [rendition, f] => {
            let r = Name::new(*rendition).ok()?;
            Some(if f.starts_with("init") {
                Target::Init(r)
            } else {
                Target::Media(r)
            })
        }
        [f] => {
            let stem = f.rsplit_once('.').map_or(*f, |(s, _)| s);
            if let Some(r) = stem.strip_prefix("init-") {
                return Name::new(r).ok().map(Target::Init);
            }
            let (r, number) = stem.strip_prefix("chunk-")?.rsplit_once('-')?;
            number.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            Name::new(r).ok().map(Target::Media)
        }
        _ => None,
    }
}

/// Handles one upload. `rest` is the path after `/ingest/`.
pub async fn ingest(live: &Live, rest: &[&str], body: Incoming) -> LiveResp {
    let [event, secret, file @ ..] = rest else {
        return text(
            StatusCode::NOT_FOUND,
            "ingest paths are /ingest/{event}/{secret}/{file}",
        );
    };
    let Some(event) = live.get(event) else {
        return text(StatusCode::NOT_FOUND, format!("no live event '{event}'"));
    };
    if !constant_time_eq(secret.as_bytes(), event.spec.secret.as_bytes()) {
        tracing::warn!(event = %event.spec.name, "ingest with a wrong secret");
        return text(StatusCode::FORBIDDEN, "wrong ingest secret");
    }
    let Some(target) = target(file) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("not an ingest file name: {}", file.join("/")),
        );
    };
    {
        let mut st = event.state();
        if st.ended {
            return text(StatusCode::CONFLICT, "the event has ended");
        }
        if st.uploads >= 2 * event.spec.max_renditions {
            return text(StatusCode::TOO_MANY_REQUESTS, "too many uploads at once for this event");
        }
        st.uploads += 1;
    }
    let _upload = Upload(&event);
    match target {
        Target::Manifest => drain(body).await,
        Target::Init(r) => init(&event, r, body).await,
        Target::Media(r) => media(&event, r, body).await,
    }
}

/// One upload in progress: counted until it is dropped, however the
/// handler ends (a dropped connection included).
struct Upload<'a>(&'a Event);

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state();
        st.uploads = st.uploads.saturating_sub(1);
    }
}

/// Reads and drops an encoder manifest (bounded).
async fn drain(body: Incoming) -> LiveResp {
    match http_body_util::Limited::new(body, MAX_INIT).collect().await {
        Ok(_) => text(StatusCode::NO_CONTENT, ""),
        Err(e) => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    }
}

async fn init(event: &Arc<Event>, rendition: Name, body: Incoming) -> LiveResp {
    let bytes = match http_body_util::Limited::new(body, MAX_INIT).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    };
    let result = LiveInit::parse(bytes).and_then(|init| {
        let mut st = event.state();
        let max = event.spec.max_renditions;
        let full = st.tracks.len() >= max;
        match st.tracks.get_mut(&rendition) {
            Some(track) => track.set_init(init),
            None if full => Err(IngestError::NotInit(format!("the event takes {max} renditions"))),
            None => {
                let track = new_track(event, init)?;
                st.tracks.insert(rendition.clone(), track);
                Ok(())
            }
        }
    });
    event.bump();
    match result {
        Ok(()) => text(StatusCode::NO_CONTENT, ""),
        Err(e) => refuse(event, &rendition, e),
    }
}

/// A rendition's track, encrypted from its first byte when the event is.
fn new_track(event: &Event, init: LiveInit) -> Result<LiveTrack, IngestError> {
    let protection = match (event.spec.encrypt, &event.keys) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(IngestError::NotInit(
                "the event is encrypted and this replica has no keys for it".into(),
            ))
        }
        (Some(scheme), Some(k)) => {
            let tracks = if init.track.kind == TrackKind::Video {
                "video"
            } else {
                "audio"
            };
            let key = k.keys.key(tracks).map_err(|e| IngestError::NotInit(e.to_string()))?;
            Some(LiveProtection::new(scheme, key, &init, &k.license_url)?)
        }
    };
    let mut track = LiveTrack::new(init, event.track_options());
    if let Some(p) = protection {
        track.protect(p)?;
    }
    Ok(track)
}

/// One media segment, published fragment by fragment as it arrives.
async fn media(event: &Arc<Event>, rendition: Name, mut body: Incoming) -> LiveResp {
    {
        let mut st = event.state();
        let Some(track) = st.tracks.get_mut(&rendition) else {
            return refuse(event, &rendition, IngestError::NoInit);
        };
        track.begin_segment();
    }
    let mut split = Splitter::new(MAX_BOX);
    let outcome = loop {
        let frame = match tokio::time::timeout(IDLE, body.frame()).await {
            Err(_) => break Err(None),
            Ok(None) => break split.finish().map_err(Some),
            Ok(Some(Err(e))) => {
                tracing::warn!(event = %event.spec.name, %rendition, error = %e, "upload cut off");
                break Err(None);
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if let Err(e) = feed(event, &rendition, &mut split, &data) {
            break Err(Some(e));
        }
    };
    let mut st = event.state();
    let Some(track) = st.tracks.get_mut(&rendition) else {
        return text(StatusCode::GONE, "the rendition is gone");
    };
    let result = match outcome {
        Ok(()) => track.end_segment().map_err(Some),
        Err(e) => {
            track.abort();
            Err(e)
        }
    };
    drop(st);
    event.bump();
    match result {
        Ok(_) => text(StatusCode::NO_CONTENT, ""),
        Err(Some(e)) => refuse(event, &rendition, e),
        Err(None) => text(StatusCode::REQUEST_TIMEOUT, "the upload stalled or was cut off"),
    }
}

/// Splits `data` into boxes and hands them to the track; wakes players
/// when a fragment was published.
fn feed(event: &Event, rendition: &Name, split: &mut Splitter, data: &[u8]) -> Result<(), IngestError> {
    let boxes = split.push(data)?;
    let mut st = event.state();
    if st.ended {
        return Err(IngestError::Closed);
    }
    st.last_ingest = Some(Instant::now());
    let track = st.tracks.get_mut(rendition).ok_or(IngestError::NoInit)?;
    let now = nearcast_common::clock::now_secs();
    let mut published = false;
    for b in boxes {
        published |= track.push(b, now)? != Published::Nothing;
    }
    drop(st);
    if published {
        event.bump();
    }
    Ok(())
}

/// Logs a refusal and answers with its status.
fn refuse(event: &Event, rendition: &Name, e: IngestError) -> LiveResp {
    tracing::warn!(event = %event.spec.name, %rendition, error = %e, "ingest refused");
    let status = match e {
        IngestError::Oversize { .. } | IngestError::SegmentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::CodecChanged { .. }
        | IngestError::Duplicate { .. }
        | IngestError::BackInTime { .. }
        | IngestError::JumpInSegment { .. }
        | IngestError::NoInit
        | IngestError::Closed => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    text(status, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn ingest_file_names() {
        assert_eq!(target(&["init-stream0.m4s"]), Some(Target::Init(n("stream0"))));
        assert_eq!(target(&["chunk-stream1-00042.m4s"]), Some(Target::Media(n("stream1"))));
        assert_eq!(target(&["video", "init.mp4"]), Some(Target::Init(n("video"))));
        assert_eq!(target(&["video", "17.m4s"]), Some(Target::Media(n("video"))));
        assert_eq!(target(&["manifest.mpd"]), Some(Target::Manifest));
        assert_eq!(target(&["x", "index.m3u8"]), Some(Target::Manifest));
        for bad in [
            &["chunk-stream1-x1.m4s"][..],
            &["../init.mp4"],
            &["..", "1.m4s"],
            &["a", "b", "c.m4s"],
            &[],
        ] {
            assert_eq!(target(bad), None, "{bad:?}");
        }
    }
}
