//! What the manifests and the title index need to know about one packaged
//! track, gathered while its segments are written.

use crate::cenc::Scheme;
use crate::mp4::{Codec, TrackKind};

/// What a manifest signals about an encrypted rendition.
#[derive(Clone, Debug)]
pub struct Protection {
    pub scheme: Scheme,
    pub kid: [u8; 16],
    /// The license service (Clear Key JSON exchange); HLS key URIs are
    /// `{license_url}/keys/{kid hex}`.
    pub license_url: String,
    /// Other DRM systems' signalling for this key (from CPIX).
    pub systems: Vec<crate::cenc::cpix::DrmSystem>,
}

pub struct SegmentInfo {
    /// File name inside the rendition's folder.
    pub file: String,
    /// Decode time of the first sample (the segment's `tfdt`), in timescale units.
    pub start: u64,
    /// In timescale units.
    pub duration: u64,
    pub bytes: u64,
}

pub struct Rendition {
    /// Folder name: `720p`, `audio-eng`, …
    pub name: String,
    pub kind: TrackKind,
    pub codec: Codec,
    pub timescale: u32,
    pub language: String,
    pub frame_rate: f64,
    pub segments: Vec<SegmentInfo>,
    pub protection: Option<Protection>,
}

pub const INIT_FILE: &str = "init.mp4";
pub const MEDIA_PLAYLIST: &str = "index.m3u8";

pub fn segment_file(seq: usize) -> String {
    format!("seg-{seq:05}.m4s")
}

impl Rendition {
    pub fn secs(&self, units: u64) -> f64 {
        units as f64 / f64::from(self.timescale)
    }

    pub fn duration_secs(&self) -> f64 {
        self.secs(self.segments.iter().map(|s| s.duration).sum())
    }

    /// Highest segment bitrate, bits/s (HLS BANDWIDTH, DASH bandwidth).
    pub fn peak_bandwidth(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| (s.bytes as f64 * 8.0 / self.secs(s.duration)).ceil() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Whole-track bitrate, bits/s (HLS AVERAGE-BANDWIDTH).
    pub fn average_bandwidth(&self) -> u64 {
        let d = self.duration_secs();
        if d <= 0.0 {
            return 0;
        }
        (self.segments.iter().map(|s| s.bytes).sum::<u64>() as f64 * 8.0 / d).ceil() as u64
    }
}
