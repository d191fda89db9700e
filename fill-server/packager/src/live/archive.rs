//! An ended live event as a VOD title: its media playlists (type VOD, no
//! low-latency tags), its multivariant playlist and a static MPD, all
//! relative to the title's folder, and a rendition summary for the title
//! index. The segment files themselves are the live ones, unchanged; the
//! fill server writes them (see its `live/archive.rs`).

use super::dash;
use super::hls::{self, Playlist};
use super::track::LiveTrack;
use crate::index::RenditionEntry;
use crate::mp4::TrackKind;

/// (path in the title's folder, text) of every manifest of the archive.
pub fn manifests(tracks: &[(&str, &LiveTrack)], segment_secs: f64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = tracks
        .iter()
        .map(|(name, track)| {
            let text = hls::media_playlist(&Playlist {
                track,
                segment_target: segment_secs,
                skip: false,
                reports: &[],
                ended: true,
                query: "",
                vod: true,
            });
            (format!("{name}/index.m3u8"), text)
        })
        .collect();
    if let Some(master) = hls::multivariant(tracks, "", "") {
        out.push(("master.m3u8".into(), master));
    }
    let mpd = dash::mpd(&dash::Mpd {
        tracks,
        segment_secs,
        part_target: segment_secs,
        window_secs: 0.0,
        utc_timing: "",
        query: "",
        base_urls: &[],
        target_latency: 0.0,
        now: 0.0,
        vod: true,
    });
    if let Some(mpd) = mpd {
        out.push(("manifest.mpd".into(), mpd));
    }
    out
}

/// The title index's summary of one archived rendition.
pub fn rendition_entry(name: &str, t: &LiveTrack) -> RenditionEntry {
    let video = t.init().track.kind == TrackKind::Video;
    let bytes: usize = t.segments().iter().map(|s| s.data.len()).sum();
    let secs = t.secs(t.segments().iter().map(|s| s.duration).sum());
    let codec = &t.init().track.codec;
    RenditionEntry {
        name: name.to_string(),
        kind: if video { "video" } else { "audio" }.into(),
        codecs: codec.string.clone(),
        bandwidth: t.peak_bitrate(),
        average_bandwidth: if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        },
        width: video.then_some(codec.width),
        height: video.then_some(codec.height),
        segments: t.segments().len(),
    }
}
