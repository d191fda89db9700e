//! Reading progressive MP4 (ISO BMFF) files: the movie's tracks, their
//! codec configuration and their sample tables, expanded into one list of
//! samples per track. Sample data stays in the file and is read when a
//! segment is written.

pub mod boxes;
pub mod codec;
mod tables;
pub mod text;
pub mod track;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use codec::Codec;
pub use track::{Sample, Track, TrackKind};

/// The largest moov we read into memory (a 10-hour 60 fps title's tables
/// are far smaller).
const MAX_MOOV: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("not an MP4 file ({0})")]
    NotMp4(String),
    #[error("truncated inside '{0}'")]
    Truncated(String),
    #[error(
        "the file is truncated: its top-level '{kind}' box needs {need} bytes from offset {offset}, only {have} remain"
    )]
    FileTruncated {
        kind: String,
        need: u64,
        offset: u64,
        have: u64,
    },
    #[error("box '{kind}' is malformed: {reason}")]
    BadBox { kind: String, reason: String },
    #[error("no '{what}' box inside '{inside}'")]
    Missing { what: String, inside: String },
    #[error("track {track}: {reason}")]
    BadTrack { track: u32, reason: String },
    #[error("track {track} has no keyframe")]
    NoKeyframe { track: u32 },
    #[error("track {track}: sample {sample} lies at bytes {start}..{end}, past the end of the file ({len} bytes)")]
    PastEnd {
        track: u32,
        sample: usize,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("fragmented MP4 input is not supported; give a progressive MP4")]
    Fragmented,
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// An opened MP4 file and its parsed tracks: video and audio, and the
/// text tracks apart (they are packaged as WebVTT, `crate::text`).
pub struct Movie {
    pub path: PathBuf,
    pub file: File,
    pub len: u64,
    pub tracks: Vec<Track>,
    pub texts: Vec<text::TextTrack>,
}

impl Movie {
    pub fn open(path: &Path) -> Result<Movie, Mp4Error> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let moov = find_moov(|buf, at| file.read_exact_at(buf, at), len)?;
        let tracks = tracks(&moov, len)?;
        let texts = text_tracks(&moov, len)?;
        Ok(Movie {
            path: path.to_path_buf(),
            file,
            len,
            tracks,
            texts,
        })
    }

    /// Reads one sample's bytes, appending them to `out`.
    pub fn read_sample(&self, s: &Sample, out: &mut Vec<u8>) -> Result<(), Mp4Error> {
        let start = out.len();
        out.resize(start + s.size as usize, 0);
        self.file.read_exact_at(&mut out[start..], s.offset)?;
        Ok(())
    }
}

/// The video and audio tracks of a `moov` body from a file of `file_len`
/// bytes (the bound every sample must lie within).
pub fn tracks(moov: &[u8], file_len: u64) -> Result<Vec<Track>, Mp4Error> {
    let moov = boxes::BoxRef {
        kind: *b"moov",
        body: moov,
    };
    if moov.child(b"mvex").is_some() {
        return Err(Mp4Error::Fragmented);
    }
    let mut tracks = Vec::new();
    for b in moov.children() {
        let b = b?;
        if &b.kind == b"trak" {
            if let Some(t) = Track::parse(&b, file_len)? {
                tracks.push(t);
            }
        }
    }
    if tracks.is_empty() {
        return Err(Mp4Error::NotMp4("no video or audio track".into()));
    }
    Ok(tracks)
}

/// The text tracks (`tx3g`, `wvtt`) of a `moov` body.
pub fn text_tracks(moov: &[u8], file_len: u64) -> Result<Vec<text::TextTrack>, Mp4Error> {
    let moov = boxes::BoxRef {
        kind: *b"moov",
        body: moov,
    };
    let mut out = Vec::new();
    for b in moov.children() {
        let b = b?;
        if &b.kind == b"trak" {
            out.extend(text::parse(&b, file_len)?);
        }
    }
    Ok(out)
}

/// Walks the top-level boxes of a file of `len` bytes (reading only their
/// headers, through `read_at(buf, offset)`) and returns the body of
/// `moov`, wherever it is (before or after `mdat`).
pub fn find_moov(read_at: impl Fn(&mut [u8], u64) -> std::io::Result<()>, len: u64) -> Result<Vec<u8>, Mp4Error> {
    if len == 0 {
        return Err(Mp4Error::Empty);
    }
    let mut offset = 0u64;
    let mut first = true;
    while offset < len {
        let mut head = [0u8; 16];
        let want = (len - offset).min(16) as usize;
        read_at(&mut head[..want], offset)?;
        let (kind, header, size) = match boxes::parse_header(&head[..want], u64::MAX) {
            Ok(h) => h,
            Err(_) if first => return Err(Mp4Error::NotMp4("no box structure at the start".into())),
            Err(e) => return Err(e),
        };
        // Size 0 means "to the end of the file".
        let size = if head[..4] == [0, 0, 0, 0] { len - offset } else { size };
        if size > len - offset {
            if first {
                return Err(Mp4Error::NotMp4("no box structure at the start".into()));
            }
            return Err(Mp4Error::FileTruncated {
                kind: String::from_utf8_lossy(&kind).into_owned(),
                need: size,
                offset,
                have: len - offset,
            });
        }
        if first && !kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err(Mp4Error::NotMp4("no box structure at the start".into()));
        }
        first = false;
        if &kind == b"moov" {
            let body_len = size - header as u64;
            if body_len > MAX_MOOV {
                return Err(Mp4Error::Unsupported(format!("moov of {body_len} bytes")));
            }
            let mut body = vec![0u8; body_len as usize];
            read_at(&mut body, offset + header as u64)?;
            return Ok(body);
        }
        if &kind == b"moof" {
            return Err(Mp4Error::Fragmented);
        }
        offset += size;
    }
    Err(Mp4Error::NotMp4("no moov box".into()))
}
