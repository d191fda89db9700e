//! WebVTT (W3C): a checked reader for sidecar files and the writer of the
//! segmented files HLS lists. Errors name the line, so whoever made the
//! file can fix it. Cues keep their identifier, settings and text as
//! written; `STYLE` and `REGION` blocks are kept for every segment's
//! header; `NOTE`s are dropped.
//!
//! Cues must come in order of their start times (the format says so, and
//! segmenting relies on it). Cues that overlap in time are legal WebVTT
//! and kept: two speakers at once, or a sound description beside the
//! dialogue, are shown together by every player.

use std::fmt::Write;

/// A sidecar file larger than this is refused (a feature film's
/// subtitles are a few hundred KB).
pub const MAX_LEN: usize = 16 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    /// Milliseconds from the start of the title.
    pub start: u64,
    pub end: u64,
    pub id: String,
    /// Cue settings after the end time (`line:0 align:start`), as written.
    pub settings: String,
    pub text: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vtt {
    /// `STYLE` and `REGION` blocks, as written.
    pub header_blocks: Vec<String>,
    pub cues: Vec<Cue>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VttError {
    #[error("line {line}: not UTF-8")]
    Utf8 { line: usize },
    #[error("line 1: a WebVTT file starts with 'WEBVTT'")]
    NoHeader,
    #[error("line {line}: bad cue timing '{text}' (want [hh:]mm:ss.ttt --> [hh:]mm:ss.ttt)")]
    Timing { line: usize, text: String },
    #[error("line {line}: the cue ends ({end}) before or as it starts ({start})")]
    Reversed { line: usize, start: String, end: String },
    #[error(
        "line {line}: the cue starts at {start}, before the cue above it ({previous}): cues must be in time order"
    )]
    OutOfOrder {
        line: usize,
        start: String,
        previous: String,
    },
    #[error("line {line}: '-->' in a cue's text (a missing blank line before the next cue?)")]
    ArrowInText { line: usize },
    #[error("the file is over {MAX_LEN} bytes")]
    TooLarge,
}

/// Reads a WebVTT file.
pub fn parse(bytes: &[u8]) -> Result<Vtt, VttError> {
    if bytes.len() > MAX_LEN {
        return Err(VttError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| VttError::Utf8 {
        line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let first = lines.first().copied().unwrap_or("");
    let rest = first.strip_prefix("WEBVTT").ok_or(VttError::NoHeader)?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Err(VttError::NoHeader);
    }
    let mut vtt = Vtt::default();
    // The header runs to the first blank line.
    let mut i = lines.iter().position(|l| l.is_empty()).unwrap_or(lines.len());
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let end = lines[i..]
            .iter()
            .position(|l| l.is_empty())
            .map_or(lines.len(), |n| i + n);
        block(&lines[i..end], i + 1, &mut vtt)?;
        i = end;
    }
    Ok(vtt)
}

/// One block (lines `block`, the first being line `line` of the file).
fn block(block: &[&str], line: usize, vtt: &mut Vtt) -> Result<(), VttError> {
    let head = block[0];
    if head == "NOTE" || head.starts_with("NOTE ") || head.starts_with("NOTE\t") {
        return Ok(());
    }
    if (head == "STYLE" || head == "REGION") && !block.iter().any(|l| l.contains("-->")) {
        vtt.header_blocks.push(block.join("\n"));
        return Ok(());
    }
    let (id, timing_at) = if head.contains("-->") { ("", 0) } else { (head, 1) };
    let timing_line = line + timing_at;
    let timing = block.get(timing_at).ok_or_else(|| VttError::Timing {
        line: timing_line,
        text: String::new(),
    })?;
    let (start, end, settings) = cue_timing(timing).ok_or_else(|| VttError::Timing {
        line: timing_line,
        text: timing.to_string(),
    })?;
    if end <= start {
        return Err(VttError::Reversed {
            line: timing_line,
            start: timestamp(start),
            end: timestamp(end),
        });
    }
    if let Some(prev) = vtt.cues.last().filter(|c| c.start > start) {
        return Err(VttError::OutOfOrder {
            line: timing_line,
            start: timestamp(start),
            previous: timestamp(prev.start),
        });
    }
    let payload = &block[timing_at + 1..];
    if let Some(n) = payload.iter().position(|l| l.contains("-->")) {
        return Err(VttError::ArrowInText {
            line: timing_line + 1 + n,
        });
    }
    vtt.cues.push(Cue {
        start,
        end,
        id: id.to_string(),
        settings: settings.to_string(),
        text: payload.join("\n"),
    });
    Ok(())
}

/// `00:01.000 --> 00:04.000 line:0` → (1000, 4000, "line:0").
fn cue_timing(line: &str) -> Option<(u64, u64, &str)> {
    let (a, b) = line.split_once("-->")?;
    let b = b.trim_start_matches([' ', '\t']);
    let (end, settings) = b.split_once([' ', '\t']).unwrap_or((b, ""));
    Some((parse_time(a.trim())?, parse_time(end)?, settings.trim()))
}

/// `[hh:]mm:ss.ttt` in milliseconds (hours two digits or more).
fn parse_time(s: &str) -> Option<u64> {
    let (hms, ms) = s.split_once('.')?;
    let parts: Vec<&str> = hms.split(':').collect();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if ms.len() != 3 || !digits(ms) || !parts.iter().all(|p| digits(p)) {
        return None;
    }
    let (h, m, sec) = match parts.as_slice() {
        [m, sec] => ("0", *m, *sec),
        [h, m, sec] if h.len() >= 2 => (*h, *m, *sec),
        _ => return None,
    };
    if m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, m, sec, ms): (u64, u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?, ms.parse().ok()?);
    if m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// Milliseconds as `hh:mm:ss.ttt`.
pub fn timestamp(ms: u64) -> String {
    let (h, m, s, t) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{t:03}")
}

/// One HLS text segment: the header with `X-TIMESTAMP-MAP` (cue time 0 is
/// media time 0: the CMAF tracks' decode times start at 0), the header
/// blocks, then every cue that overlaps the segment, with its own times
/// (a cue over a boundary is in both segments; players drop the copy).
pub fn segment_file(vtt: &Vtt, cues: &[&Cue]) -> String {
    let mut out = String::from("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n");
    for b in &vtt.header_blocks {
        let _ = write!(out, "{b}\n\n");
    }
    for c in cues {
        if !c.id.is_empty() {
            let _ = writeln!(out, "{}", c.id);
        }
        let _ = write!(out, "{} --> {}", timestamp(c.start), timestamp(c.end));
        if !c.settings.is_empty() {
            let _ = write!(out, " {}", c.settings);
        }
        let _ = write!(out, "\n{}\n\n", c.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\u{feff}WEBVTT - a title\r\nKind: captions\r\n\r\nSTYLE\r\n::cue { color: yellow }\r\n\r\n\
        NOTE a note\r\nover two lines\r\n\r\n1\r\n00:01.000 --> 00:04.500 line:0 align:start\r\nHello\r\n<i>there</i>\r\n\r\n\
        01:00:02.250 --> 01:00:03.000\r\nLater\r\n";

    #[test]
    fn reads_cues_with_ids_settings_and_styles() {
        let v = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(v.header_blocks, vec!["STYLE\n::cue { color: yellow }".to_string()]);
        assert_eq!(v.cues.len(), 2);
        let c = &v.cues[0];
        assert_eq!((c.start, c.end, c.id.as_str()), (1000, 4500, "1"));
        assert_eq!(
            (c.settings.as_str(), c.text.as_str()),
            ("line:0 align:start", "Hello\n<i>there</i>")
        );
        assert_eq!(v.cues[1].start, 3_602_250);
        let seg = segment_file(&v, &[&v.cues[0]]);
        assert!(seg.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\nSTYLE\n"));
        assert!(seg.contains("1\n00:00:01.000 --> 00:00:04.500 line:0 align:start\nHello\n<i>there</i>\n\n"));
        // What we write reads back the same.
        assert_eq!(parse(seg.as_bytes()).unwrap().cues[0], v.cues[0]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = |s: &[u8]| parse(s).unwrap_err();
        assert_eq!(e(b"1\n00:01.000 --> 00:02.000\nx\n"), VttError::NoHeader);
        assert_eq!(e(b"WEBVTTX\n"), VttError::NoHeader);
        assert_eq!(
            e(b"WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.0 --> 00:04.000\nx\n"),
            VttError::Timing {
                line: 6,
                text: "00:03.0 --> 00:04.000".into()
            }
        );
        assert!(matches!(
            e(b"WEBVTT\n\n00:05.000 --> 00:02.000\nx\n"),
            VttError::Reversed { line: 3, .. }
        ));
        assert!(matches!(
            e(b"WEBVTT\n\n00:05.000 --> 00:06.000\nx\n\n00:04.000 --> 00:07.000\ny\n"),
            VttError::OutOfOrder { line: 6, .. }
        ));
        assert_eq!(
            e(b"WEBVTT\n\n00:01.000 --> 00:02.000\nx\n00:03.000 --> 00:04.000\ny\n"),
            VttError::ArrowInText { line: 5 }
        );
        assert_eq!(
            e(b"WEBVTT\n\n00:01.000 --> 00:02.000\n\xff\n"),
            VttError::Utf8 { line: 4 }
        );
        assert!(matches!(
            e(b"WEBVTT\n\n00:61.000 --> 00:62.000\nx\n"),
            VttError::Timing { .. }
        ));
        assert!(matches!(e(b"WEBVTT\n\nan id only\n"), VttError::Timing { line: 4, .. }));
    }

    #[test]
    fn overlapping_cues_are_kept() {
        let v = parse(b"WEBVTT\n\n00:01.000 --> 00:05.000\nA\n\n00:02.000 --> 00:03.000\nB\n").unwrap();
        assert_eq!(v.cues.len(), 2);
    }
}
