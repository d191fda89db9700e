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

/// A keyframe's fragment inside a segment: a byte range a player can
/// fetch and decode alone.
#[derive(Clone, Copy, Debug)]
pub struct KeyRange {
    pub offset: u64,
    pub len: u64,
    /// The keyframe's decode time, in timescale units.
    pub dts: u64,
    /// Its number among the track's samples.
    pub sample: usize,
}

/// A DASH trick-mode segment (`trick-NNNNN.m4s`): one keyframe shown
/// until the next (timescale units), and its size.
#[derive(Clone, Copy, Debug)]
pub struct TrickSegment {
    pub start: u64,
    pub duration: u64,
    pub bytes: u64,
}

pub struct SegmentInfo {
    /// File name inside the rendition's folder.
    pub file: String,
    /// Decode time of the first sample (the segment's `tfdt`), in timescale units.
    pub start: u64,
    /// In timescale units.
    pub duration: u64,
    pub bytes: u64,
    /// Its keyframes' fragments (video only).
    pub keys: Vec<KeyRange>,
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
    /// Its DASH trick-mode segments (the lowest video rung only).
    pub trick: Vec<TrickSegment>,
}

pub const INIT_FILE: &str = "init.mp4";
pub const MEDIA_PLAYLIST: &str = "index.m3u8";
/// A video rendition's HLS I-frame playlist.
pub const IFRAME_PLAYLIST: &str = "iframes.m3u8";

pub fn segment_file(seq: usize) -> String {
    format!("seg-{seq:05}.m4s")
}

pub fn trick_file(seq: usize) -> String {
    format!("trick-{seq:05}.m4s")
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

    /// Every keyframe of the track with its duration (to the next one, or
    /// the track's end): (segment file, range, duration) in order.
    pub fn keyframes(&self) -> Vec<(&str, KeyRange, u64)> {
        let all: Vec<(&str, KeyRange)> = self
            .segments
            .iter()
            .flat_map(|s| s.keys.iter().map(move |k| (s.file.as_str(), *k)))
            .collect();
        let end = self.segments.last().map_or(0, |s| s.start + s.duration);
        (0..all.len())
            .map(|i| {
                let next = all.get(i + 1).map_or(end, |n| n.1.dts);
                (all[i].0, all[i].1, next.saturating_sub(all[i].1.dts))
            })
            .collect()
    }

    /// Highest bitrate of the keyframes alone, bits/s (I-frame streams).
    pub fn keyframe_bandwidth(&self) -> u64 {
        self.keyframes()
            .iter()
            .filter(|(_, _, d)| *d > 0)
            .map(|(_, k, d)| (k.len as f64 * 8.0 / self.secs(*d)).ceil() as u64)
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

/// What the manifests list besides video and audio.
pub struct Manifested<'a> {
    pub texts: &'a [crate::text::TextRendition],
    pub thumbs: Option<&'a crate::thumbs::Thumbnails>,
}
