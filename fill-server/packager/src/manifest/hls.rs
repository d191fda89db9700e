//! HLS (RFC 8216): a multivariant playlist with an audio group, and one
//! media playlist per rendition using EXT-X-MAP for the CMAF header.
//!
//! An encrypted rendition's playlist names its key twice, as HLS allows
//! (one tag per KEYFORMAT): `org.w3.clearkey` with the key ID (hls.js and
//! EME players take the license URL from their configuration) and
//! `identity` with `{license_url}/keys/{kid}`, where Shaka Player fetches
//! the key itself. `SAMPLE-AES-CTR` is `cenc`, `SAMPLE-AES` is `cbcs`.
//! The multivariant playlist lists each key as `EXT-X-SESSION-KEY`.

use std::fmt::Write;

use base64::Engine;

use crate::cenc::{keys::hex, Scheme};
use crate::mp4::TrackKind;
use crate::rendition::{Protection, Rendition, INIT_FILE, MEDIA_PLAYLIST};

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
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    if let Some(p) = &r.protection {
        for line in key_tags(p, "EXT-X-KEY") {
            let _ = writeln!(out, "{line}");
        }
        for lines in p.systems.iter().filter_map(|s| s.hls_media.as_ref()) {
            let _ = writeln!(out, "{}", lines.trim_end());
        }
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{INIT_FILE}\"");
    for s in &r.segments {
        let _ = write!(out, "#EXTINF:{:.6},\n{}\n", r.secs(s.duration), s.file);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The key tags (`EXT-X-KEY` or `EXT-X-SESSION-KEY`) of one key.
pub fn key_tags(p: &Protection, tag: &str) -> [String; 2] {
    let method = match p.scheme {
        Scheme::Cenc => "SAMPLE-AES-CTR",
        Scheme::Cbcs => "SAMPLE-AES",
    };
    let kid = hex(&p.kid);
    let data = base64::engine::general_purpose::STANDARD.encode(p.kid);
    [
        format!(
            "#{tag}:METHOD={method},URI=\"data:text/plain;base64,{data}\",KEYID=0x{kid},KEYFORMAT=\"org.w3.clearkey\",KEYFORMATVERSIONS=\"1\""
        ),
        format!(
            "#{tag}:METHOD={method},URI=\"{}/keys/{kid}\",KEYFORMAT=\"identity\",KEYFORMATVERSIONS=\"1\"",
            p.license_url
        ),
    ]
}

pub fn multivariant_playlist(renditions: &[Rendition]) -> String {
    let audio: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Audio).collect();
    let video: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Video).collect();
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut kids: Vec<[u8; 16]> = Vec::new();
    for p in renditions.iter().filter_map(|r| r.protection.as_ref()) {
        if !kids.contains(&p.kid) {
            kids.push(p.kid);
            let [clear_key, _] = key_tags(p, "EXT-X-SESSION-KEY");
            let _ = writeln!(out, "{clear_key}");
            for lines in p.systems.iter().filter_map(|s| s.hls_master.as_ref()) {
                let _ = writeln!(out, "{}", lines.trim_end());
            }
        }
    }
    out.push('\n');
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
