//! Text tracks inside an MP4: 3GPP timed text (`tx3g`, ffmpeg's
//! `mov_text`, QuickTime's subtitles) and WebVTT (`wvtt`). Their samples
//! are found here like any track's; `crate::text::embedded` turns them
//! into cues. Other text formats (TTML `stpp`, CEA-608 `c608`) are left
//! out, as a track of no kind we package.

use super::boxes::BoxRef;
use super::{Mp4Error, Sample};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// A sample: a 16-bit text length, the text, then style boxes.
    Tx3g,
    /// A sample: `vttc` boxes (one per cue shown) or one `vtte`.
    Wvtt,
}

#[derive(Clone, Debug)]
pub struct TextTrack {
    pub id: u32,
    pub format: TextFormat,
    pub timescale: u32,
    /// As the `mdhd` has it (ISO 639-2, `und` when unset).
    pub language: String,
    /// Where presentation starts, from the edit list (timescale units).
    pub media_time: i64,
    pub samples: Vec<Sample>,
}

/// The `trak` as a text track; `None` if it is not one we read.
pub fn parse(trak: &BoxRef, file_len: u64) -> Result<Option<TextTrack>, Mp4Error> {
    let (v, _, mut r) = trak.need(b"tkhd")?.full()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let id = r.u32()?;
    let mdia = trak.need(b"mdia")?;
    let (_, _, mut h) = mdia.need(b"hdlr")?.full()?;
    h.skip(4)?;
    if !matches!(h.bytes(4)?, b"text" | b"sbtl" | b"subt") {
        return Ok(None);
    }
    let stbl = mdia.need(b"minf")?.need(b"stbl")?;
    let (_, _, mut sd) = stbl.need(b"stsd")?.full()?;
    if sd.u32()? == 0 {
        return Ok(None);
    }
    let format = match super::boxes::Boxes::new(sd.rest()).next().transpose()? {
        Some(e) if &e.kind == b"tx3g" => TextFormat::Tx3g,
        Some(e) if &e.kind == b"wvtt" => TextFormat::Wvtt,
        _ => return Ok(None),
    };
    let (v, _, mut m) = mdia.need(b"mdhd")?.full()?;
    m.skip(if v == 1 { 16 } else { 8 })?;
    let timescale = m.u32()?;
    if timescale == 0 {
        return Err(Mp4Error::BadTrack {
            track: id,
            reason: "timescale is 0".into(),
        });
    }
    m.skip(if v == 1 { 8 } else { 4 })?;
    let language = super::track::language(m.u16()?);
    Ok(Some(TextTrack {
        id,
        format,
        timescale,
        language,
        media_time: super::track::edit_media_time(trak)?,
        samples: super::tables::samples(&stbl, id, file_len)?,
    }))
}
