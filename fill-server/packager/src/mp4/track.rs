//! One track: header facts, codec, edit list, and its samples with file
//! offsets, decode times and composition offsets (from the sample tables,
//! `tables.rs`).

use super::boxes::BoxRef;
use super::codec::{self, Codec};
use super::Mp4Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub offset: u64,
    pub size: u32,
    /// Decode time in the track's timescale.
    pub dts: u64,
    pub duration: u32,
    /// Composition time minus decode time.
    pub cts_offset: i32,
    pub sync: bool,
}

pub struct Track {
    pub id: u32,
    pub kind: TrackKind,
    pub timescale: u32,
    /// ISO 639-2/T code, `und` when unset.
    pub language: String,
    pub codec: Codec,
    /// The sample entry box (type and body), copied into the CMAF init.
    pub sample_entry: ([u8; 4], Vec<u8>),
    /// Media time where presentation starts (from the edit list), in the
    /// track's timescale; 0 without an edit list.
    pub media_time: i64,
    pub samples: Vec<Sample>,
}

impl Track {
    /// Parses a `trak`; `None` for tracks that are neither video nor audio.
    pub fn parse(trak: &BoxRef, file_len: u64) -> Result<Option<Track>, Mp4Error> {
        let Some(mut track) = Track::describe(trak)? else {
            return Ok(None);
        };
        let id = track.id;
        let stbl = trak.need(b"mdia")?.need(b"minf")?.need(b"stbl")?;
        let samples = super::tables::samples(&stbl, id, file_len)?;
        if track.kind == TrackKind::Video && !samples.iter().any(|s| s.sync) {
            return Err(Mp4Error::NoKeyframe { track: id });
        }
        if samples.first().is_some_and(|s| !s.sync) {
            return Err(bad(id, "the first sample is not a keyframe"));
        }
        track.samples = samples;
        Ok(Some(track))
    }

    /// A `trak`'s header facts and codec without its samples: all a
    /// fragmented file's init segment has (its samples come in fragments).
    pub fn describe(trak: &BoxRef) -> Result<Option<Track>, Mp4Error> {
        let (v, _, mut r) = trak.need(b"tkhd")?.full()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let id = r.u32()?;
        let mdia = trak.need(b"mdia")?;
        let (_, _, mut h) = mdia.need(b"hdlr")?.full()?;
        h.skip(4)?;
        let kind = match h.bytes(4)? {
            b"vide" => TrackKind::Video,
            b"soun" => TrackKind::Audio,
            _ => return Ok(None),
        };
        let (v, _, mut m) = mdia.need(b"mdhd")?.full()?;
        m.skip(if v == 1 { 16 } else { 8 })?;
        let timescale = m.u32()?;
        if timescale == 0 {
            return Err(bad(id, "timescale is 0"));
        }
        m.skip(if v == 1 { 8 } else { 4 })?;
        let language = language(m.u16()?);
        let stbl = mdia.need(b"minf")?.need(b"stbl")?;
        let (_, _, mut sd) = stbl.need(b"stsd")?.full()?;
        if sd.u32()? == 0 {
            return Err(bad(id, "no sample description"));
        }
        let entry = super::boxes::Boxes::new(sd.rest())
            .next()
            .ok_or_else(|| bad(id, "empty sample description"))??;
        let codec = codec::parse(&entry, id)?;
        Ok(Some(Track {
            id,
            kind,
            timescale,
            language,
            codec,
            sample_entry: (entry.kind, entry.body.to_vec()),
            media_time: edit_media_time(trak)?,
            samples: Vec::new(),
        }))
    }

    /// Duration in seconds (decode timeline).
    pub fn duration_secs(&self) -> f64 {
        let total: u64 = self.samples.iter().map(|s| u64::from(s.duration)).sum();
        total as f64 / f64::from(self.timescale)
    }

    /// Frames per second for video, from the samples' mean duration.
    pub fn frame_rate(&self) -> f64 {
        let d = self.duration_secs();
        if d > 0.0 {
            self.samples.len() as f64 / d
        } else {
            0.0
        }
    }
}

fn bad(track: u32, reason: &str) -> Mp4Error {
    Mp4Error::BadTrack {
        track,
        reason: reason.to_string(),
    }
}

pub(super) fn language(packed: u16) -> String {
    let chars: String = [(packed >> 10) & 31, (packed >> 5) & 31, packed & 31]
        .iter()
        .map(|&c| char::from(0x60 + c as u8))
        .collect();
    if chars.chars().all(|c| c.is_ascii_lowercase()) {
        chars
    } else {
        "und".into()
    }
}

/// The first non-empty edit's media time (ffmpeg writes one to hide the
/// B-frame reordering delay).
pub(super) fn edit_media_time(trak: &BoxRef) -> Result<i64, Mp4Error> {
    let Some(elst) = trak.child(b"edts").and_then(|e| e.child(b"elst")) else {
        return Ok(0);
    };
    let (v, _, mut r) = elst.full()?;
    let n = r.count(if v == 1 { 20 } else { 12 })?;
    for _ in 0..n {
        let media_time = if v == 1 {
            r.skip(8)?;
            r.u64()? as i64
        } else {
            r.skip(4)?;
            i64::from(r.u32()? as i32)
        };
        r.skip(4)?;
        if media_time >= 0 {
            return Ok(media_time);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(language(0x15c7), "eng");
        assert_eq!(language(0), "und");
    }
}
