//! One track: header facts, codec, edit list, and the sample tables
//! (stts, ctts, stss, stsz, stsc, stco/co64) expanded into samples with
//! file offsets, decode times and composition offsets.

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
        let samples = samples(&stbl, id, file_len)?;
        if kind == TrackKind::Video && !samples.iter().any(|s| s.sync) {
            return Err(Mp4Error::NoKeyframe { track: id });
        }
        if samples.first().is_some_and(|s| !s.sync) {
            return Err(bad(id, "the first sample is not a keyframe"));
        }
        Ok(Some(Track {
            id,
            kind,
            timescale,
            language,
            codec,
            sample_entry: (entry.kind, entry.body.to_vec()),
            media_time: edit_media_time(trak)?,
            samples,
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

fn language(packed: u16) -> String {
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
fn edit_media_time(trak: &BoxRef) -> Result<i64, Mp4Error> {
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

fn samples(stbl: &BoxRef, id: u32, file_len: u64) -> Result<Vec<Sample>, Mp4Error> {
    // Sizes.
    let (_, _, mut r) = stbl.need(b"stsz")?.full()?;
    let fixed = r.u32()?;
    let sizes: Vec<u32> = if fixed == 0 {
        (0..r.count(4)?).map(|_| r.u32()).collect::<Result<_, _>>()?
    } else {
        let n = r.u32()? as usize;
        if (n as u64).saturating_mul(u64::from(fixed)) > file_len {
            return Err(bad(id, "stsz describes more bytes than the file has"));
        }
        vec![fixed; n]
    };
    let n = sizes.len();
    // Decode times.
    let (_, _, mut r) = stbl.need(b"stts")?.full()?;
    let mut durations = Vec::with_capacity(n);
    for _ in 0..r.count(8)? {
        let (count, delta) = (r.u32()? as usize, r.u32()?);
        if durations.len() + count > n {
            return Err(bad(id, "stts covers more samples than stsz"));
        }
        durations.extend(std::iter::repeat_n(delta, count));
    }
    if durations.len() != n {
        return Err(bad(id, &format!("stts covers {} samples, stsz {n}", durations.len())));
    }
    // Composition offsets.
    let mut cts = vec![0i32; n];
    if let Some(ctts) = stbl.child(b"ctts") {
        let (v, _, mut r) = ctts.full()?;
        let mut i = 0;
        for _ in 0..r.count(8)? {
            let count = r.u32()? as usize;
            let raw = r.u32()?;
            let off = if v == 0 {
                raw.min(i32::MAX as u32) as i32
            } else {
                raw as i32
            };
            for c in cts.iter_mut().skip(i).take(count) {
                *c = off;
            }
            i += count;
        }
    }
    // Keyframes.
    let mut sync = vec![true; n];
    if let Some(stss) = stbl.child(b"stss") {
        sync.iter_mut().for_each(|s| *s = false);
        let (_, _, mut r) = stss.full()?;
        for _ in 0..r.count(4)? {
            let k = r.u32()? as usize;
            if k == 0 || k > n {
                return Err(bad(id, &format!("stss names sample {k} of {n}")));
            }
            sync[k - 1] = true;
        }
    }
    // Chunk offsets.
    let offsets: Vec<u64> = if let Some(co64) = stbl.child(b"co64") {
        let (_, _, mut r) = co64.full()?;
        (0..r.count(8)?).map(|_| r.u64()).collect::<Result<_, _>>()?
    } else {
        let (_, _, mut r) = stbl.need(b"stco")?.full()?;
        (0..r.count(4)?)
            .map(|_| r.u32().map(u64::from))
            .collect::<Result<_, _>>()?
    };
    // Samples per chunk.
    let (_, _, mut r) = stbl.need(b"stsc")?.full()?;
    let runs: Vec<(usize, usize)> = (0..r.count(12)?)
        .map(|_| {
            let first = r.u32()? as usize;
            let per = r.u32()? as usize;
            r.skip(4)?;
            Ok((first, per))
        })
        .collect::<Result<_, Mp4Error>>()?;
    let mut out = Vec::with_capacity(n);
    let mut dts = 0u64;
    let mut i = 0usize;
    for (run, &(first, per)) in runs.iter().enumerate() {
        if first == 0 || (run > 0 && first <= runs[run - 1].0) {
            return Err(bad(id, "stsc chunks are not increasing"));
        }
        let end_chunk = runs.get(run + 1).map_or(offsets.len(), |r| r.0 - 1).min(offsets.len());
        for &chunk_offset in offsets.iter().take(end_chunk).skip(first - 1) {
            let mut pos = chunk_offset;
            for _ in 0..per {
                if i >= n {
                    break;
                }
                let end = pos + u64::from(sizes[i]);
                if end > file_len {
                    return Err(Mp4Error::PastEnd {
                        track: id,
                        sample: i,
                        start: pos,
                        end,
                        len: file_len,
                    });
                }
                out.push(Sample {
                    offset: pos,
                    size: sizes[i],
                    dts,
                    duration: durations[i],
                    cts_offset: cts[i],
                    sync: sync[i],
                });
                dts += u64::from(durations[i]);
                pos = end;
                i += 1;
            }
        }
    }
    if out.len() != n {
        return Err(bad(id, &format!("chunks hold {} samples, stsz {n}", out.len())));
    }
    Ok(out)
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
