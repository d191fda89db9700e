//! HLS (RFC 8216): a multivariant playlist with audio groups, a subtitles
//! group, I-frame and image streams; one media playlist per rendition
//! using EXT-X-MAP for the CMAF header, an I-frame playlist per video
//! rendition, one per text rendition listing its WebVTT files.
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
use crate::rendition::{Protection, Rendition, IFRAME_PLAYLIST, INIT_FILE, MEDIA_PLAYLIST};
use crate::text::{vtt_file, TextRendition};

const AUDIO_GROUP: &str = "audio";
const TEXT_GROUP: &str = "subs";

/// HLS `CHARACTERISTICS` of captions for the deaf and hard of hearing.
const SDH: &str = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

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

/// A video rendition's I-frame playlist: each keyframe's fragment as a
/// byte range of the segment that holds it (no copies), lasting until the
/// next keyframe.
pub fn iframe_playlist(r: &Rendition) -> String {
    let keys = r.keyframes();
    let target = keys
        .iter()
        .map(|k| r.secs(k.2).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-I-FRAMES-ONLY\n"
    );
    if let Some(p) = &r.protection {
        for line in key_tags(p, "EXT-X-KEY") {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{INIT_FILE}\"");
    for (file, k, d) in keys {
        let _ = write!(
            out,
            "#EXTINF:{:.6},\n#EXT-X-BYTERANGE:{}@{}\n{file}\n",
            r.secs(d),
            k.len,
            k.offset
        );
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The thumbnails' image playlist (Roku's HLS image spec, which Shaka
/// Player reads): a tile per entry, `EXT-X-TILES` giving the grid and
/// each picture's time.
pub fn image_playlist(t: &crate::thumbs::Thumbnails) -> String {
    let per_tile = t.tile_secs();
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-IMAGES-ONLY\n",
        per_tile.ceil() as u64
    );
    for (i, (file, _)) in t.tiles.iter().enumerate() {
        // The last tile ends with the title.
        let secs = per_tile
            .min(t.duration - per_tile * i as f64)
            .max(t.opts.interval.min(per_tile));
        let _ = write!(
            out,
            "#EXT-X-TILES:RESOLUTION={}x{},LAYOUT={}x{},DURATION={:.3}\n#EXTINF:{secs:.3},\n{file}\n",
            t.width, t.height, t.opts.cols, t.opts.rows, t.opts.interval
        );
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A text rendition's media playlist: its WebVTT segments (no map).
pub fn text_playlist(t: &TextRendition) -> String {
    let target = t
        .segments
        .iter()
        .map(|s| (s.duration as f64 / 1000.0).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    for (i, s) in t.segments.iter().enumerate() {
        let _ = write!(out, "#EXTINF:{:.3},\n{}\n", s.duration as f64 / 1000.0, vtt_file(i + 1));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The `EXT-X-MEDIA` lines of the subtitles group.
fn text_media(out: &mut String, texts: &[TextRendition]) {
    let mut names: Vec<String> = Vec::new();
    for t in texts {
        let mut name = t.label();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{} {n}", t.label());
            n += 1;
        }
        names.push(name.clone());
        let yes = |b: bool| if b { "YES" } else { "NO" };
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{TEXT_GROUP}\",NAME=\"{name}\",LANGUAGE=\"{}\",DEFAULT={},AUTOSELECT=YES,FORCED={}",
            t.language.tag,
            yes(t.roles.default),
            yes(t.roles.forced)
        );
        if t.roles.sdh {
            let _ = write!(out, ",CHARACTERISTICS=\"{SDH}\"");
        }
        let _ = writeln!(out, ",URI=\"{}/{MEDIA_PLAYLIST}\"", t.name);
    }
    if !texts.is_empty() {
        out.push('\n');
    }
}

/// The I-frame streams of the video renditions and the thumbnails' image
/// stream, after the variants.
fn extra_streams(out: &mut String, renditions: &[Rendition], extras: &crate::package::Manifested) {
    for v in renditions
        .iter()
        .filter(|r| r.kind == TrackKind::Video && !r.keyframes().is_empty())
    {
        let _ = write!(
            out,
            "\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{},URI=\"{}/{IFRAME_PLAYLIST}\"",
            v.keyframe_bandwidth(),
            v.codec.string,
            v.codec.width,
            v.codec.height,
            v.name
        );
    }
    if renditions.iter().any(|r| r.kind == TrackKind::Video) {
        out.push('\n');
    }
    if let Some(t) = extras.thumbs {
        // RESOLUTION is one picture's (Roku's image spec; Shaka Player
        // multiplies it by the tiles' layout).
        let _ = write!(
            out,
            "\n#EXT-X-IMAGE-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"jpeg\",URI=\"{}/{MEDIA_PLAYLIST}\"\n",
            t.bandwidth(),
            t.width,
            t.height,
            crate::thumbs::FOLDER
        );
    }
}

/// Audio renditions by codec (`mp4a.40.2`, `opus`, …), in order of first
/// appearance: a group each, so a player that cannot decode one codec
/// takes the variants of another. One codec: one group, `audio`.
fn audio_groups<'a>(audio: &[&'a Rendition]) -> Vec<(String, Vec<&'a Rendition>)> {
    let mut groups: Vec<(String, Vec<&Rendition>)> = Vec::new();
    for a in audio {
        match groups.iter_mut().find(|(codec, _)| *codec == a.codec.string) {
            Some((_, members)) => members.push(a),
            None => groups.push((a.codec.string.clone(), vec![a])),
        }
    }
    if groups.len() == 1 {
        groups[0].0 = AUDIO_GROUP.to_string();
    }
    for (id, members) in groups.iter_mut().filter(|(id, _)| id != AUDIO_GROUP) {
        let family = match members[0].codec.fourcc {
            [b'm', b'p', b'4', b'a'] => "aac".to_string(),
            f => String::from_utf8_lossy(&f).trim().to_ascii_lowercase(),
        };
        *id = format!("{AUDIO_GROUP}-{family}");
    }
    groups
}

/// The `EXT-X-MEDIA` lines of audio group `id`: a language's name and
/// BCP 47 tag where we know the language, the first one the default.
fn audio_media(out: &mut String, id: &str, members: &[&Rendition]) {
    let mut names: Vec<String> = Vec::new();
    for (i, a) in members.iter().enumerate() {
        let (tag, label) = match crate::language::parse(&a.language) {
            Ok(l) => (l.tag, l.name),
            Err(_) => (a.language.clone(), a.name.clone()),
        };
        let mut name = label.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{label} {n}");
            n += 1;
        }
        names.push(name.clone());
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{id}\",NAME=\"{name}\",LANGUAGE=\"{tag}\",DEFAULT={},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}/{MEDIA_PLAYLIST}\"",
            if i == 0 { "YES" } else { "NO" },
            a.codec.channels,
            a.name
        );
    }
    out.push('\n');
}

/// One `EXT-X-STREAM-INF` of video rendition `v` with audio group `audio`
/// (its id and members): bandwidths include the group's highest.
fn variant(out: &mut String, v: &Rendition, audio: Option<(&String, &Vec<&Rendition>)>, subs: &str) {
    let peak = audio.map_or(0, |(_, m)| m.iter().map(|a| a.peak_bandwidth()).max().unwrap_or(0));
    let avg = audio.map_or(0, |(_, m)| m.iter().map(|a| a.average_bandwidth()).max().unwrap_or(0));
    let codecs = match audio {
        Some((_, m)) => format!("{},{}", v.codec.string, m[0].codec.string),
        None => v.codec.string.clone(),
    };
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={}x{},FRAME-RATE={:.3}",
        v.peak_bandwidth() + peak,
        v.average_bandwidth() + avg,
        v.codec.width,
        v.codec.height,
        v.frame_rate
    );
    if let Some((id, _)) = audio {
        let _ = write!(out, ",AUDIO=\"{id}\"");
    }
    let _ = write!(out, "{subs}\n{}/{MEDIA_PLAYLIST}\n", v.name);
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

pub fn multivariant_playlist(renditions: &[Rendition], extras: &crate::package::Manifested) -> String {
    let texts = extras.texts;
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
    let subs = if texts.is_empty() {
        String::new()
    } else {
        format!(",SUBTITLES=\"{TEXT_GROUP}\"")
    };
    if video.is_empty() {
        text_media(&mut out, texts);
        // Audio-only title: each audio rendition is a variant of its own.
        for a in &audio {
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"{subs}\n{}/{MEDIA_PLAYLIST}\n",
                a.peak_bandwidth(),
                a.average_bandwidth(),
                a.codec.string,
                a.name
            );
        }
        return out;
    }
    let groups = audio_groups(&audio);
    for (id, members) in &groups {
        audio_media(&mut out, id, members);
    }
    text_media(&mut out, texts);
    let mut video = video;
    video.sort_by_key(|v| std::cmp::Reverse(v.peak_bandwidth()));
    for v in video {
        if groups.is_empty() {
            variant(&mut out, v, None, &subs);
        }
        for (id, members) in &groups {
            variant(&mut out, v, Some((id, members)), &subs);
        }
    }
    extra_streams(&mut out, renditions, extras);
    out
}
