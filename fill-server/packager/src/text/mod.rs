//! Subtitles and captions: WebVTT sidecar files (`--subtitles`) and the
//! text tracks of the inputs, checked, then cut on the title's segment
//! grid into a text rendition with both forms the players read: WebVTT
//! files for HLS (`seg-NNNNN.vtt`) and CMAF `wvtt` segments for DASH
//! (`init.mp4`, `seg-NNNNN.m4s`), in one folder `text-{language}`.

pub mod cmaf;
pub mod embedded;
pub mod webvtt;

use std::path::PathBuf;
use std::str::FromStr;

use crate::language::{self, Language, LanguageError};
use crate::mp4::Movie;
use crate::rendition::{segment_file, INIT_FILE};
use webvtt::{Cue, Vtt, VttError};

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("--subtitles takes LANG[:default][:forced][:sdh]=FILE, got '{0}'")]
    BadArg(String),
    #[error("subtitles {path}: {source}")]
    Vtt { path: PathBuf, source: VttError },
    #[error("subtitles {path}: {source}")]
    Language { path: PathBuf, source: LanguageError },
    #[error("reading {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: text track {track} has language '{language}', which is not one we know: set it (ffmpeg -metadata:s:s:0 language=eng) or leave embedded text out (--no-embedded-text)")]
    EmbeddedLanguage {
        path: PathBuf,
        track: u32,
        language: String,
    },
    #[error("text track {track}, sample {sample}: {reason}")]
    Sample { track: u32, sample: usize, reason: String },
    #[error("{0} and {1} are both marked default: at most one text rendition is")]
    TwoDefaults(String, String),
    #[error("writing a text segment: {0}")]
    Segment(#[from] crate::cmaf::SegmentError),
}

/// How a text rendition is offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// Shown without the viewer asking (HLS `DEFAULT=YES`).
    pub default: bool,
    /// Forced narrative: only the parts in another language (HLS
    /// `FORCED=YES`, DASH role `forced-subtitle`).
    pub forced: bool,
    /// Captions for the deaf and hard of hearing (sound described; HLS
    /// `CHARACTERISTICS`, DASH role `caption`).
    pub sdh: bool,
}

/// `--subtitles LANG[:default][:forced][:sdh]=FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtitleArg {
    pub language: String,
    pub roles: Roles,
    pub file: PathBuf,
}

impl FromStr for SubtitleArg {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        let bad = || TextError::BadArg(s.to_string());
        let (spec, file) = s.split_once('=').ok_or_else(bad)?;
        let mut parts = spec.split(':');
        let language = parts.next().filter(|l| !l.is_empty()).ok_or_else(bad)?.to_string();
        let mut roles = Roles::default();
        for flag in parts {
            match flag {
                "default" => roles.default = true,
                "forced" => roles.forced = true,
                "sdh" => roles.sdh = true,
                _ => return Err(bad()),
            }
        }
        if file.is_empty() {
            return Err(bad());
        }
        Ok(SubtitleArg {
            language,
            roles,
            file: file.into(),
        })
    }
}

/// A text track to package.
#[derive(Clone, Debug)]
pub struct TextSource {
    pub language: Language,
    pub roles: Roles,
    pub vtt: Vtt,
}

/// Reads every sidecar file, then (if `embedded`) the inputs' text
/// tracks; all checked before anything is written.
pub fn sources(args: &[SubtitleArg], movies: &[Movie], embedded: bool) -> Result<Vec<TextSource>, TextError> {
    let mut out = Vec::new();
    for a in args {
        let language = language::parse(&a.language).map_err(|source| TextError::Language {
            path: a.file.clone(),
            source,
        })?;
        let read = |error| TextError::Read {
            path: a.file.clone(),
            error,
        };
        if std::fs::metadata(&a.file).map_err(read)?.len() > webvtt::MAX_LEN as u64 {
            return Err(TextError::Vtt {
                path: a.file.clone(),
                source: VttError::TooLarge,
            });
        }
        let bytes = std::fs::read(&a.file).map_err(read)?;
        let vtt = webvtt::parse(&bytes).map_err(|source| TextError::Vtt {
            path: a.file.clone(),
            source,
        })?;
        out.push(TextSource {
            language,
            roles: a.roles,
            vtt,
        });
    }
    for movie in movies.iter().filter(|_| embedded) {
        for t in &movie.texts {
            let language = language::parse(&t.language).map_err(|_| TextError::EmbeddedLanguage {
                path: movie.path.clone(),
                track: t.id,
                language: t.language.clone(),
            })?;
            out.push(TextSource {
                language,
                roles: Roles::default(),
                vtt: embedded::cues(movie, t)?,
            });
        }
    }
    let defaults: Vec<&TextSource> = out.iter().filter(|s| s.roles.default).collect();
    if let [a, b, ..] = defaults.as_slice() {
        return Err(TextError::TwoDefaults(a.language.tag.clone(), b.language.tag.clone()));
    }
    Ok(out)
}

/// One segment of a text rendition (milliseconds).
#[derive(Clone, Debug)]
pub struct TextSegment {
    pub start: u64,
    pub duration: u64,
    /// Of the CMAF segment (DASH bandwidth).
    pub bytes: u64,
}

/// What the manifests need of a packaged text track.
#[derive(Clone, Debug)]
pub struct TextRendition {
    /// Folder name: `text-en`, `text-en-forced`, …
    pub name: String,
    pub language: Language,
    pub roles: Roles,
    pub segments: Vec<TextSegment>,
}

impl TextRendition {
    /// The menu entry: `English`, `English (forced)`, `English (SDH)`.
    pub fn label(&self) -> String {
        let mut l = self.language.name.clone();
        if self.roles.forced {
            l.push_str(" (forced)");
        }
        if self.roles.sdh {
            l.push_str(" (SDH)");
        }
        l
    }

    /// Highest segment bitrate, bits/s, of the CMAF form.
    pub fn bandwidth(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| s.bytes * 8 * 1000 / s.duration)
            .max()
            .unwrap_or(0)
            .max(1)
    }
}

/// The HLS form of text segment `seq` (from 1).
pub fn vtt_file(seq: usize) -> String {
    format!("seg-{seq:05}.vtt")
}

/// The folder name of `src`, unique among `taken`.
pub fn folder_name(src: &TextSource, taken: &[String]) -> String {
    let mut base = format!("text-{}", src.language.tag);
    if src.roles.forced {
        base.push_str("-forced");
    }
    if src.roles.sdh {
        base.push_str("-sdh");
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The title's segment grid in milliseconds: `starts` (seconds, the first
/// video track's segment starts; empty for a title without video, which
/// is cut every `target` seconds) closed by `end_ms`.
pub fn grid(starts: &[f64], target: f64, end_ms: u64) -> Vec<u64> {
    let mut grid: Vec<u64> = if starts.is_empty() {
        let step = (target * 1000.0).round().max(1.0) as u64;
        (0..end_ms.div_ceil(step)).map(|i| i * step).collect()
    } else {
        starts.iter().map(|s| (s.max(0.0) * 1000.0).round() as u64).collect()
    };
    grid.retain(|&t| t < end_ms);
    if grid.first() != Some(&0) {
        grid.insert(0, 0);
    }
    grid.push(end_ms);
    grid.dedup();
    grid
}

/// The files of `src` as rendition `name` on `grid` (relative paths and
/// bytes, the playlist aside) and its description. Cues past the grid's
/// end are cut there; one that starts after it is dropped.
pub fn render(
    src: &TextSource,
    name: &str,
    grid: &[u64],
) -> Result<(TextRendition, Vec<crate::store::TitleFile>), TextError> {
    let end = grid.last().copied().unwrap_or(0);
    let cues: Vec<Cue> = src
        .vtt
        .cues
        .iter()
        .filter(|c| c.start < end)
        .map(|c| Cue {
            end: c.end.min(end),
            ..c.clone()
        })
        .collect();
    let mut files = vec![(
        format!("{name}/{INIT_FILE}"),
        cmaf::init(&src.vtt, src.language.iso639_2),
    )];
    let mut segments = Vec::with_capacity(grid.len());
    for (i, w) in grid.windows(2).enumerate() {
        let (from, to) = (w[0], w[1]);
        let shown: Vec<&Cue> = cues.iter().filter(|c| c.start < to && c.end > from).collect();
        let m4s = cmaf::segment((i + 1) as u32, from, to, &shown)?;
        segments.push(TextSegment {
            start: from,
            duration: to - from,
            bytes: m4s.len() as u64,
        });
        files.push((format!("{name}/{}", segment_file(i + 1)), m4s));
        let vtt = webvtt::segment_file(&src.vtt, &shown);
        files.push((format!("{name}/{}", vtt_file(i + 1)), vtt.into_bytes()));
    }
    let rendition = TextRendition {
        name: name.to_string(),
        language: src.language.clone(),
        roles: src.roles,
        segments,
    };
    Ok((rendition, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a: SubtitleArg = "pt-BR:forced:default=subs/pt.vtt".parse().unwrap();
        assert_eq!(a.language, "pt-BR");
        assert!(a.roles.forced && a.roles.default && !a.roles.sdh);
        assert_eq!(a.file, PathBuf::from("subs/pt.vtt"));
        for bad in ["en", "=x.vtt", "en:loud=x.vtt", "en="] {
            assert!(bad.parse::<SubtitleArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn grids() {
        assert_eq!(grid(&[0.0, 4.0, 8.0], 4.0, 10_000), vec![0, 4000, 8000, 10_000]);
        assert_eq!(grid(&[], 4.0, 10_000), vec![0, 4000, 8000, 10_000]);
        assert_eq!(grid(&[0.04, 4.0], 4.0, 4000), vec![0, 40, 4000]);
    }

    #[test]
    fn cues_overlapping_a_boundary_are_in_both_segments() {
        let vtt = webvtt::parse(b"WEBVTT\n\n00:03.000 --> 00:05.000\nacross\n\n00:09.000 --> 00:12.000\ncut\n\n00:11.000 --> 00:13.000\ngone\n").unwrap();
        let src = TextSource {
            language: language::parse("en").unwrap(),
            roles: Roles::default(),
            vtt,
        };
        let (r, files) = render(&src, "text-en", &[0, 4000, 10_000]).unwrap();
        assert_eq!(r.segments.len(), 2);
        let text = |n: &str| {
            let f = files.iter().find(|(p, _)| p == n).unwrap();
            String::from_utf8(f.1.clone()).unwrap()
        };
        assert!(text("text-en/seg-00001.vtt").contains("across"));
        let second = text("text-en/seg-00002.vtt");
        assert!(second.contains("00:00:03.000 --> 00:00:05.000\nacross"));
        assert!(second.contains("00:00:09.000 --> 00:00:10.000\ncut"));
        assert!(!second.contains("gone"));
        assert_eq!(files.len(), 5);
    }
}
