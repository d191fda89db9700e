//! A live track's init segment: `ftyp` + `moov` with `mvex`, one video or
//! audio track (CMAF), and the `trex` defaults its fragments lean on.

use super::IngestError;
use crate::mp4::boxes::{BoxRef, Boxes};
use crate::mp4::Track;

/// The sample defaults of a track's `trex` (ISO/IEC 14496-12 §8.8.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// One ingested init segment, kept as the bytes the encoder sent.
pub struct LiveInit {
    /// Codec, timescale and kind; no samples (they come in fragments).
    pub track: Track,
    pub defaults: Defaults,
    pub bytes: Vec<u8>,
}

impl LiveInit {
    /// Reads an init segment. It must hold a `moov` with `mvex` and
    /// exactly one video or audio track, and no media.
    pub fn parse(bytes: Vec<u8>) -> Result<LiveInit, IngestError> {
        let not = |why: &str| IngestError::NotInit(why.to_string());
        let mut moov = None;
        for b in Boxes::new(&bytes) {
            let b = b?;
            match &b.kind {
                b"moov" => moov = Some(b),
                b"moof" | b"mdat" => return Err(not("it holds media")),
                _ => {}
            }
        }
        let moov = moov.ok_or_else(|| not("no moov"))?;
        let mvex = moov
            .child(b"mvex")
            .ok_or_else(|| not("no mvex: not a fragmented file"))?;
        let mut tracks = Vec::new();
        for b in moov.children() {
            let b = b?;
            if &b.kind == b"trak" {
                if let Some(t) = Track::describe(&b)? {
                    tracks.push(t);
                }
            }
        }
        if tracks.len() != 1 {
            return Err(not(&format!(
                "{} video or audio tracks (CMAF ingest has one per stream)",
                tracks.len()
            )));
        }
        let track = tracks.remove(0);
        let defaults = trex(&mvex, track.id)?.ok_or_else(|| not("no trex for its track"))?;
        Ok(LiveInit { track, defaults, bytes })
    }

    /// The codec as HLS and DASH name it (`avc1.64001f`, `mp4a.40.2`).
    pub fn codec(&self) -> &str {
        &self.track.codec.string
    }

    /// Whether fragments made for `other` decode with this init: same
    /// kind, sample entry type, codec string and timescale.
    pub fn compatible(&self, other: &LiveInit) -> bool {
        self.track.kind == other.track.kind
            && self.track.codec.fourcc == other.track.codec.fourcc
            && self.track.codec.string == other.track.codec.string
            && self.track.timescale == other.track.timescale
    }
}

fn trex(mvex: &BoxRef, track_id: u32) -> Result<Option<Defaults>, IngestError> {
    for b in mvex.children() {
        let b = b?;
        if &b.kind != b"trex" {
            continue;
        }
        let (_, _, mut r) = b.full()?;
        if r.u32()? != track_id {
            continue;
        }
        r.skip(4)?; // default sample description index
        return Ok(Some(Defaults {
            duration: r.u32()?,
            size: r.u32()?,
            flags: r.u32()?,
        }));
    }
    Ok(None)
}
