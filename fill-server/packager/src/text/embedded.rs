//! Cues from a text track inside an input MP4: `tx3g` samples are plain
//! text (escaped for WebVTT here), `wvtt` samples carry WebVTT cue boxes
//! (a cue spanning several samples is one cue again).

use super::webvtt::{Cue, Vtt};
use super::TextError;
use crate::mp4::boxes::Boxes;
use crate::mp4::text::{TextFormat, TextTrack};
use crate::mp4::Movie;

/// The cues of `track` of `movie`, in milliseconds of presentation.
pub fn cues(movie: &Movie, track: &TextTrack) -> Result<Vtt, TextError> {
    let mut vtt = Vtt::default();
    let ms = |t: i64| (t.max(0) as u128 * 1000 / u128::from(track.timescale)) as u64;
    let mut buf = Vec::new();
    for (n, s) in track.samples.iter().enumerate() {
        buf.clear();
        movie.read_sample(s, &mut buf).map_err(|e| TextError::Sample {
            track: track.id,
            sample: n,
            reason: e.to_string(),
        })?;
        let start = ms(s.dts as i64 - track.media_time);
        let end = ms(s.dts as i64 + i64::from(s.duration) - track.media_time);
        if end <= start {
            continue;
        }
        let bad = |reason: &str| TextError::Sample {
            track: track.id,
            sample: n,
            reason: reason.to_string(),
        };
        match track.format {
            TextFormat::Tx3g => {
                if let Some(text) = tx3g_text(&buf).map_err(bad)? {
                    vtt.cues.push(Cue {
                        start,
                        end,
                        id: String::new(),
                        settings: String::new(),
                        text,
                    });
                }
            }
            TextFormat::Wvtt => wvtt_sample(&buf, start, end, &mut vtt.cues).map_err(bad)?,
        }
    }
    Ok(vtt)
}

/// A `tx3g` sample's text, escaped as WebVTT cue text (blank lines
/// dropped: they would end the cue); `None` when empty.
fn tx3g_text(sample: &[u8]) -> Result<Option<String>, &'static str> {
    let len = sample
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let raw = sample.get(2..2 + len).ok_or("text length past the sample's end")?;
    let text = match raw {
        [0xfe, 0xff, rest @ ..] => {
            let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).map_err(|_| "bad UTF-16 text")?
        }
        _ => String::from_utf8(raw.to_vec()).map_err(|_| "text is not UTF-8")?,
    };
    let escaped: Vec<String> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
        .collect();
    Ok((!escaped.is_empty()).then(|| escaped.join("\n")))
}

/// Adds a `wvtt` sample's cues over `[start, end)`: one that continues a
/// cue of the sample before (same id, settings and text) extends it.
fn wvtt_sample(sample: &[u8], start: u64, end: u64, cues: &mut Vec<Cue>) -> Result<(), &'static str> {
    for b in Boxes::new(sample) {
        let b = b.map_err(|_| "malformed WebVTT sample box")?;
        if &b.kind != b"vttc" {
            continue;
        }
        let field = |kind: &[u8; 4]| -> Result<String, &'static str> {
            b.child(kind)
                .map_or(Ok(String::new()), |f| String::from_utf8(f.body.to_vec()))
                .map_err(|_| "cue text is not UTF-8")
        };
        let (id, settings, text) = (field(b"iden")?, field(b"sttg")?, field(b"payl")?);
        if text.contains("-->") || text.split('\n').any(|l| l.trim().is_empty()) || id.contains("-->") {
            return Err("cue text with '-->' or a blank line");
        }
        let continued = cues
            .iter_mut()
            .rev()
            .take(16)
            .find(|c| c.end == start && c.id == id && c.settings == settings && c.text == text);
        match continued {
            Some(c) => c.end = end,
            None => cues.push(Cue {
                start,
                end,
                id,
                settings,
                text,
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx3g_text_is_escaped() {
        assert_eq!(tx3g_text(b"\x00\x00").unwrap(), None);
        assert_eq!(
            tx3g_text(b"\x00\x0aa<b>\n\n&c\r\n").unwrap(),
            Some("a&lt;b&gt;\n&amp;c".into())
        );
        assert_eq!(tx3g_text(b"\x00\x06\xfe\xff\x00h\x00i").unwrap(), Some("hi".into()));
        assert!(tx3g_text(b"\x00\x09ab").is_err());
        assert!(tx3g_text(b"\x00\x01\xff").is_err());
    }

    #[test]
    fn wvtt_cues_over_samples_join_up() {
        // The samples our own CMAF writer makes: A over 1-5 s, B over 2-3 s.
        let cue = |start, end, text: &str| Cue {
            start,
            end,
            id: String::new(),
            settings: "line:0".into(),
            text: text.into(),
        };
        let (a, b) = (cue(1000, 5000, "A"), cue(2000, 3000, "B"));
        let mut cues = Vec::new();
        for (from, to, shown) in [
            (0, 1000, vec![]),
            (1000, 2000, vec![&a]),
            (2000, 3000, vec![&a, &b]),
            (3000, 5000, vec![&a]),
        ] {
            let seg = super::super::cmaf::segment(1, from, to, &shown).unwrap();
            let mdat = Boxes::new(&seg)
                .map(Result::unwrap)
                .find(|b| &b.kind == b"mdat")
                .unwrap();
            wvtt_sample(mdat.body, from, to, &mut cues).unwrap();
        }
        assert_eq!(cues, vec![a, b]);
    }
}
