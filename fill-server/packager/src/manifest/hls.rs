//! HLS (RFC 8216): a multivariant playlist with an audio group, and one
//! media playlist per rendition using EXT-X-MAP for the CMAF header.

use std::fmt::Write;

use crate::mp4::TrackKind;
use crate::rendition::{Rendition, INIT_FILE, MEDIA_PLAYLIST};

const AUDIO_GROUP: &str = "audio";

pub fn media_playlist(r: &Rendition) -> String {
    // RFC 8216 §4.3.3.1: every EXTINF, rounded to the nearest integer, must
    // not exceed the target duration.
    let target = r
        .segments
        .iter()
        .map(|s| r.secs(s.duration).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{INIT_FILE}\"\n"
    );
    for s in &r.segments {
        let _ = write!(out, "#EXTINF:{:.6},\n{}\n", r.secs(s.duration), s.file);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

pub fn multivariant_playlist(renditions: &[Rendition]) -> String {
    let audio: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Audio).collect();
    let video: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Video).collect();
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\n");
    if video.is_empty() {
        // Audio-only title: each audio rendition is a variant of its own.
        for a in &audio {
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}/{MEDIA_PLAYLIST}\n",
                a.peak_bandwidth(),
                a.average_bandwidth(),
                a.codec.string,
                a.name
            );
        }
        return out;
    }
    for (i, a) in audio.iter().enumerate() {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"{}\",LANGUAGE=\"{}\",DEFAULT={},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}/{MEDIA_PLAYLIST}\"",
            a.name,
            a.language,
            if i == 0 { "YES" } else { "NO" },
            a.codec.channels,
            a.name
        );
    }
    if !audio.is_empty() {
        out.push('\n');
    }
    let audio_peak = audio.iter().map(|a| a.peak_bandwidth()).max().unwrap_or(0);
    let audio_avg = audio.iter().map(|a| a.average_bandwidth()).max().unwrap_or(0);
    let audio_codec = audio.first().map(|a| a.codec.string.as_str());
    let mut video = video;
    video.sort_by_key(|v| std::cmp::Reverse(v.peak_bandwidth()));
    for v in video {
        let codecs = match audio_codec {
            Some(a) => format!("{},{a}", v.codec.string),
            None => v.codec.string.clone(),
        };
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={}x{},FRAME-RATE={:.3}",
            v.peak_bandwidth() + audio_peak,
            v.average_bandwidth() + audio_avg,
            v.codec.width,
            v.codec.height,
            v.frame_rate
        );
        if audio_codec.is_some() {
            let _ = write!(out, ",AUDIO=\"{AUDIO_GROUP}\"");
        }
        let _ = write!(out, "\n{}/{MEDIA_PLAYLIST}\n", v.name);
    }
    out
}
