//! The title index (`index.json`): every file of the title with its size
//! and SHA-256, and a summary of the renditions. Fill manifests take their
//! checksums from here. It carries no timestamps, so packaging the same
//! inputs gives the same index.

use nearcast_common::{Name, TitlePath};
use serde::{Deserialize, Serialize};

use crate::mp4::TrackKind;
use crate::rendition::Rendition;

pub const INDEX_FILE: &str = "index.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleIndex {
    /// Names are checked when an index is read: a tampered one with a
    /// path trick is refused.
    pub title: Name,
    pub version: u32,
    pub duration_secs: f64,
    pub target_duration_secs: f64,
    pub renditions: Vec<RenditionEntry>,
    /// Sorted by path; paths are relative to the title's folder.
    pub files: Vec<FileEntry>,
    /// How the title is encrypted (absent: in the clear). Key IDs only:
    /// keys are in the key store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<IndexProtection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexProtection {
    pub scheme: crate::cenc::Scheme,
    /// The license URL the packaged manifests name (the fill server's
    /// `/v1/play` rewrites it to the play session's).
    pub license_url: String,
    /// Key IDs (UUID form) of the title's tracks.
    pub kids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: TitlePath,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionEntry {
    pub name: String,
    pub kind: String,
    pub codecs: String,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    pub segments: usize,
}

impl From<&Rendition> for RenditionEntry {
    fn from(r: &Rendition) -> Self {
        let video = r.kind == TrackKind::Video;
        RenditionEntry {
            name: r.name.clone(),
            kind: if video { "video" } else { "audio" }.into(),
            codecs: r.codec.string.clone(),
            bandwidth: r.peak_bandwidth(),
            average_bandwidth: r.average_bandwidth(),
            width: video.then_some(r.codec.width),
            height: video.then_some(r.codec.height),
            segments: r.segments.len(),
        }
    }
}

impl From<&crate::text::TextRendition> for RenditionEntry {
    fn from(t: &crate::text::TextRendition) -> Self {
        RenditionEntry {
            name: t.name.clone(),
            kind: "text".into(),
            codecs: "wvtt".into(),
            bandwidth: t.bandwidth(),
            average_bandwidth: t.bandwidth(),
            width: None,
            height: None,
            segments: t.segments.len(),
        }
    }
}

impl From<&crate::thumbs::Thumbnails> for RenditionEntry {
    fn from(t: &crate::thumbs::Thumbnails) -> Self {
        let (w, h) = t.tile_size();
        RenditionEntry {
            name: crate::thumbs::FOLDER.into(),
            kind: "image".into(),
            codecs: "jpeg".into(),
            bandwidth: t.bandwidth(),
            average_bandwidth: t.bandwidth(),
            width: u16::try_from(w).ok(),
            height: u16::try_from(h).ok(),
            segments: t.tiles.len(),
        }
    }
}

pub use nearcast_common::sha256_hex;
