//! Codec configuration from the sample entry: the RFC 6381 `CODECS`
//! string players need, read from the real configuration boxes (avcC,
//! hvcC, av1C, esds, dOps), plus picture size and audio layout.

use super::boxes::{BoxRef, Boxes, Reader};
use super::Mp4Error;

#[derive(Clone, Debug, PartialEq)]
pub struct Codec {
    /// The sample entry type (`avc1`, `av01`, `mp4a`, `Opus`, …).
    pub fourcc: [u8; 4],
    /// RFC 6381 codec string, e.g. `avc1.64001f`, `mp4a.40.2`.
    pub string: String,
    pub width: u16,
    pub height: u16,
    pub channels: u16,
    pub sample_rate: u32,
}

/// Bytes of VisualSampleEntry / AudioSampleEntry fields before child boxes.
const VISUAL_FIELDS: usize = 78;
const AUDIO_FIELDS: usize = 28;

/// The body of configuration box `kind` (`avcC`, `hvcC`, …) in the body
/// of a video sample entry.
pub fn video_config<'a>(entry_body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    Boxes::new(entry_body.get(VISUAL_FIELDS..)?)
        .filter_map(Result::ok)
        .find(|b| &b.kind == kind)
        .map(|b| b.body)
}

pub fn parse(entry: &BoxRef, track: u32) -> Result<Codec, Mp4Error> {
    let bad = |reason: String| Mp4Error::BadTrack { track, reason };
    let fourcc = entry.kind;
    match &fourcc {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"av01" => {
            let mut r = Reader::new(entry.body, fourcc);
            r.skip(24)?;
            let (width, height) = (r.u16()?, r.u16()?);
            let children = entry
                .body
                .get(VISUAL_FIELDS..)
                .ok_or_else(|| bad("video sample entry too short".into()))?;
            let config = |kind: &[u8; 4]| {
                Boxes::new(children)
                    .filter_map(Result::ok)
                    .find(|b| &b.kind == kind)
                    .ok_or_else(|| bad(format!("no {} box in the sample entry", String::from_utf8_lossy(kind))))
            };
            let fc = String::from_utf8_lossy(&fourcc).into_owned();
            let string = match &fourcc {
                b"avc1" | b"avc3" => {
                    let c = config(b"avcC")?.body;
                    let p = c.get(1..4).ok_or_else(|| bad("avcC too short".into()))?;
                    format!("{fc}.{:02x}{:02x}{:02x}", p[0], p[1], p[2])
                }
                b"av01" => av1_string(config(b"av1C")?.body).ok_or_else(|| bad("av1C too short".into()))?,
                _ => hevc_string(&fc, config(b"hvcC")?.body).ok_or_else(|| bad("hvcC too short".into()))?,
            };
            Ok(Codec {
                fourcc,
                string,
                width,
                height,
                channels: 0,
                sample_rate: 0,
            })
        }
        b"mp4a" | b"Opus" => {
            let mut r = Reader::new(entry.body, fourcc);
            r.skip(16)?;
            let channels = r.u16()?;
            r.skip(6)?;
            let sample_rate = r.u32()? >> 16;
            let children = entry
                .body
                .get(AUDIO_FIELDS..)
                .ok_or_else(|| bad("audio sample entry too short".into()))?;
            let find = |kind: &[u8; 4]| Boxes::new(children).filter_map(Result::ok).find(|b| &b.kind == kind);
            // The sample entry's channel count is often a fixed 2; the
            // decoder configuration has the real one.
            let (string, real_channels) = if &fourcc == b"Opus" {
                let dops = find(b"dOps").ok_or_else(|| bad("no dOps box in the Opus sample entry".into()))?;
                ("opus".to_string(), dops.body.get(1).map(|&c| u16::from(c)))
            } else {
                let esds = find(b"esds").ok_or_else(|| bad("no esds box in the mp4a sample entry".into()))?;
                aac_config(esds.body).ok_or_else(|| bad("esds has no AAC decoder configuration".into()))?
            };
            let channels = real_channels.filter(|&c| c > 0).unwrap_or(channels);
            Ok(Codec {
                fourcc,
                string,
                width: 0,
                height: 0,
                channels,
                sample_rate,
            })
        }
        other => Err(Mp4Error::Unsupported(format!(
            "codec '{}' in track {track}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// `av01.P.LLT.DD` from an AV1CodecConfigurationRecord.
fn av1_string(c: &[u8]) -> Option<String> {
    let (b1, b2) = (*c.get(1)?, *c.get(2)?);
    let profile = b1 >> 5;
    let level = b1 & 0x1f;
    let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (b2 & 0x40 != 0, b2 & 0x20 != 0) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

/// `hvc1.P.C.TL.B` from an HEVCDecoderConfigurationRecord.
fn hevc_string(fourcc: &str, c: &[u8]) -> Option<String> {
    let b1 = *c.get(1)?;
    let space = ["", "A", "B", "C"][(b1 >> 6) as usize];
    let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b1 & 0x1f;
    let compat = u32::from_be_bytes(c.get(2..6)?.try_into().ok()?).reverse_bits();
    let constraints = c.get(6..12)?;
    let level = *c.get(12)?;
    let mut s = format!("{fourcc}.{space}{profile}.{compat:x}.{tier}{level}");
    let last = constraints.iter().rposition(|&b| b != 0);
    if let Some(last) = last {
        for b in &constraints[..=last] {
            s.push_str(&format!(".{b:x}"));
        }
    }
    Some(s)
}

/// `mp4a.40.N` from an esds: ES_Descriptor → DecoderConfigDescriptor →
/// DecoderSpecificInfo (AudioSpecificConfig), whose first five bits are the
/// audio object type; also the channel configuration when it says one.
fn aac_config(esds: &[u8]) -> Option<(String, Option<u16>)> {
    let mut d = esds.get(4..)?; // version + flags
    let (tag, body) = descriptor(&mut d)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *body.get(2)?;
    let mut skip = 3;
    if flags & 0x80 != 0 {
        skip += 2;
    }
    if flags & 0x40 != 0 {
        skip += 1 + usize::from(*body.get(skip)?);
    }
    if flags & 0x20 != 0 {
        skip += 2;
    }
    let mut d = body.get(skip..)?;
    let (tag, dc) = descriptor(&mut d)?;
    if tag != 0x04 {
        return None;
    }
    let oti = *dc.first()?;
    let mut d = dc.get(13..)?;
    let (tag, dsi) = descriptor(&mut d)?;
    if tag != 0x05 || dsi.is_empty() {
        return Some((format!("mp4a.{oti:x}"), None));
    }
    let bits = dsi.iter().take(8).fold(0u64, |acc, &b| acc << 8 | u64::from(b)) << (8 * (8 - dsi.len().min(8)));
    let mut pos = 0;
    let mut take = |n: u32| {
        let v = (bits >> (64 - pos - n)) & ((1 << n) - 1);
        pos += n;
        v
    };
    let mut aot = take(5);
    if aot == 31 {
        aot = 32 + take(6);
    }
    if take(4) == 0xf {
        take(24); // explicit sampling frequency
    }
    let channels = match take(4) {
        0 => None, // defined in a program config element
        7 => Some(8),
        c @ 1..=6 => Some(c as u16),
        _ => None,
    };
    Some((format!("mp4a.{oti:x}.{aot}"), channels))
}

/// One MPEG-4 descriptor: tag, then a length in 7-bit groups.
fn descriptor<'a>(d: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let tag = *d.first()?;
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let b = *d.get(i)?;
        len = (len << 7) | usize::from(b & 0x7f);
        i += 1;
        if b & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let body = d.get(i..i + len)?;
    *d = &d[i + len..];
    Some((tag, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av1_and_hevc_strings() {
        assert_eq!(av1_string(&[0x81, 0x08, 0x0c, 0x00]).unwrap(), "av01.0.08M.08");
        assert_eq!(av1_string(&[0x81, 0x2d, 0x40]).unwrap(), "av01.1.13M.10");
        let hvcc = [1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        assert_eq!(hevc_string("hvc1", &hvcc).unwrap(), "hvc1.1.6.L93.90");
    }

    #[test]
    fn aac_string_from_esds() {
        // esds written by ffmpeg for AAC-LC 48 kHz stereo.
        let esds = [
            0, 0, 0, 0, 0x03, 0x19, 0x00, 0x01, 0x00, 0x04, 0x11, 0x40, 0x15, 0, 0, 0, 0, 0x01, 0xf4, 0, 0, 0x01, 0xf4,
            0, 0x05, 0x02, 0x11, 0x90, 0x06, 0x01, 0x02,
        ];
        assert_eq!(aac_config(&esds).unwrap(), ("mp4a.40.2".to_string(), Some(2)));
        assert!(aac_config(&[0, 0, 0, 0, 0x03]).is_none());
        // An empty AudioSpecificConfig (found by the mp4 fuzz target: the
        // bit reader shifted by 64) names the object type indication only.
        let mut empty = esds;
        empty[25] = 0;
        assert_eq!(aac_config(&empty).unwrap(), ("mp4a.40".to_string(), None));
    }
}
