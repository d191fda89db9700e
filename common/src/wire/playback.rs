//! The heartbeat's playback part on the wire. Decoding checks what the
//! fill server relies on (`Playback::check`, and plain title names).

use super::{invalid, name, v1, WireError};
use crate::playback::{Playback, SessionStats, MAX_SESSIONS};

pub(super) fn to(p: &Playback) -> v1::Playback {
    v1::Playback {
        requests: p.requests,
        errors: p.errors,
        sessions: p.sessions.iter().map(session_to).collect(),
        failed_by_title: p.failed_by_title.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
    }
}

fn session_to(s: &SessionStats) -> v1::SessionStats {
    v1::SessionStats {
        sid: s.sid.clone(),
        title: s.title.as_ref().map(|t| t.to_string()).unwrap_or_default(),
        content_id: s.content_id.clone(),
        bitrate_kbps: s.bitrate_kbps,
        buffer_ms: s.buffer_ms,
        measured_kbps: s.measured_kbps,
        requested_kbps: s.requested_kbps,
        media_requests: s.media_requests,
        starved: s.starved,
        bitrate_sum_kbps: s.bitrate_sum_kbps,
        bitrate_samples: s.bitrate_samples,
        startup_ms: s.startup_ms,
        first: s.first,
    }
}

pub(super) fn from(m: v1::Playback) -> Result<Playback, WireError> {
    if m.sessions.len() > MAX_SESSIONS {
        return Err(invalid("playback.sessions", format!("more than {MAX_SESSIONS}")));
    }
    let failed_by_title = m
        .failed_by_title
        .into_iter()
        .map(|(t, n)| Ok((name("playback.failed_by_title", t)?, n)))
        .collect::<Result<_, WireError>>()?;
    let p = Playback {
        requests: m.requests,
        errors: m.errors,
        sessions: m.sessions.into_iter().map(session_from).collect::<Result<_, _>>()?,
        failed_by_title,
    };
    p.check().map_err(|e| invalid("playback.sessions", e))?;
    Ok(p)
}

fn session_from(m: v1::SessionStats) -> Result<SessionStats, WireError> {
    let title = match m.title.is_empty() {
        true => None,
        false => Some(name("playback.sessions.title", m.title)?),
    };
    Ok(SessionStats {
        sid: m.sid,
        title,
        content_id: m.content_id,
        bitrate_kbps: m.bitrate_kbps,
        buffer_ms: m.buffer_ms,
        measured_kbps: m.measured_kbps,
        requested_kbps: m.requested_kbps,
        media_requests: m.media_requests,
        starved: m.starved,
        bitrate_sum_kbps: m.bitrate_sum_kbps,
        bitrate_samples: m.bitrate_samples,
        startup_ms: m.startup_ms,
        first: m.first,
    })
}
