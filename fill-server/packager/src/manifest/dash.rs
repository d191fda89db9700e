//! A static DASH MPD (ISO/IEC 23009-1, live profile addressing): one
//! adaptation set for video, one per audio language, one per text
//! rendition (WebVTT in CMAF), SegmentTemplate with
//! a SegmentTimeline built from the real segment durations. An encrypted
//! set carries `ContentProtection`: the scheme with `cenc:default_KID`,
//! Clear Key with its license URL (`dashif:Laurl`, DASH-IF IOP 7.6.2.4),
//! and the common system with its `pssh`.

use std::fmt::Write;

use base64::Engine;

use crate::cenc::{self, keys::uuid, CLEAR_KEY_DASH_UUID};
use crate::mp4::TrackKind;
use crate::rendition::{Protection, Rendition, INIT_FILE};
use crate::text::TextRendition;

pub fn mpd(renditions: &[Rendition], extras: &crate::package::Manifested, target_secs: f64) -> String {
    let duration = renditions.iter().map(|r| r.duration_secs()).fold(0.0, f64::max);
    let namespaces = if renditions.iter().any(|r| r.protection.is_some()) {
        " xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\""
    } else {
        ""
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"{namespaces} profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">\n  <Period id=\"0\" start=\"PT0S\">\n",
        iso_duration(duration),
        iso_duration(target_secs)
    );
    let mut set_id = 0;
    let video: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Video).collect();
    if !video.is_empty() {
        video_set(&mut out, set_id, &video);
        if let Some(v) = video.iter().find(|v| !v.trick.is_empty()) {
            trick_set(&mut out, set_id + 1, set_id, v);
            set_id += 1;
        }
        set_id += 1;
    }
    let audio: Vec<&Rendition> = renditions.iter().filter(|r| r.kind == TrackKind::Audio).collect();
    for a in &audio {
        // The first audio language is `main`, in every codec.
        audio_set(&mut out, set_id, a, a.language == audio[0].language);
        set_id += 1;
    }
    for t in extras.texts {
        text_set(&mut out, set_id, t);
        set_id += 1;
    }
    if let Some(t) = extras.thumbs {
        image_set(&mut out, set_id, t);
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// The video adaptation set. Its `ContentProtection` is the set's when
/// every rung has the one key, else each representation's (a key per
/// rung group).
fn video_set(out: &mut String, set_id: usize, video: &[&Rendition]) {
    let max_w = video.iter().map(|v| v.codec.width).max().unwrap_or(0);
    let max_h = video.iter().map(|v| v.codec.height).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{set_id}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\" maxWidth=\"{max_w}\" maxHeight=\"{max_h}\">"
    );
    let kids: Vec<Option<[u8; 16]>> = video.iter().map(|v| v.protection.as_ref().map(|p| p.kid)).collect();
    let shared = kids.windows(2).all(|w| w[0] == w[1]);
    if let (true, Some(p)) = (shared, &video[0].protection) {
        content_protection(out, p);
    }
    for v in video {
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\" width=\"{}\" height=\"{}\" frameRate=\"{}\" sar=\"1:1\">",
            v.name,
            v.peak_bandwidth(),
            v.codec.string,
            v.codec.width,
            v.codec.height,
            frame_rate(v.frame_rate)
        );
        if let (false, Some(p)) = (shared, &v.protection) {
            content_protection(out, p);
        }
        template(out, v);
        out.push_str("      </Representation>\n");
    }
    out.push_str("    </AdaptationSet>\n");
}

/// The trick-mode set (DASH-IF IOP: `EssentialProperty` trickmode naming
/// the main video set): the lowest rung's keyframes, each a segment of
/// its own lasting until the next (`trick-NNNNN.m4s`).
fn trick_set(out: &mut String, set_id: usize, main_id: usize, v: &Rendition) {
    let longest = v.trick.iter().map(|t| t.duration).max().unwrap_or(1).max(1);
    let bandwidth = v
        .trick
        .iter()
        .filter(|t| t.duration > 0)
        .map(|t| (t.bytes as f64 * 8.0 / v.secs(t.duration)).ceil() as u64)
        .max()
        .unwrap_or(1);
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{set_id}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      \
         <EssentialProperty schemeIdUri=\"http://dashif.org/guidelines/trickmode\" value=\"{main_id}\"/>"
    );
    if let Some(p) = &v.protection {
        content_protection(out, p);
    }
    let _ = writeln!(
        out,
        "      <Representation id=\"{}-trick\" bandwidth=\"{bandwidth}\" codecs=\"{}\" width=\"{}\" height=\"{}\" sar=\"1:1\" maxPlayoutRate=\"{}\" codingDependency=\"false\">",
        v.name,
        v.codec.string,
        v.codec.width,
        v.codec.height,
        (v.secs(longest) * v.frame_rate).round().max(1.0),
    );
    let segments: Vec<(u64, u64)> = v.trick.iter().map(|t| (t.start, t.duration)).collect();
    timeline_of(out, &v.name, "trick", v.timescale, &segments);
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
}

/// An audio rendition's adaptation set: its language (BCP 47 where we
/// know it), `Label`, `Role` (`main` or `alternate`) and channels.
fn audio_set(out: &mut String, set_id: usize, a: &Rendition, main: bool) {
    let (tag, label) = match crate::language::parse(&a.language) {
        Ok(l) => (l.tag, l.name),
        Err(_) => (a.language.clone(), a.name.clone()),
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{set_id}\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"{tag}\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      \
         <Label>{label}</Label>\n      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"{}\"/>",
        if main { "main" } else { "alternate" }
    );
    if let Some(p) = &a.protection {
        content_protection(out, p);
    }
    let _ = writeln!(
        out,
        "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\" audioSamplingRate=\"{}\">\n        \
         <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
        a.name,
        a.peak_bandwidth(),
        a.codec.string,
        a.codec.sample_rate,
        a.codec.channels
    );
    template(out, a);
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
}

/// A text rendition's adaptation set: WebVTT in CMAF (`wvtt`), its role
/// (`subtitle`, `caption` for SDH, `forced-subtitle`; DASH-IF IOP) and a
/// `main` role on the default one.
fn text_set(out: &mut String, set_id: usize, t: &TextRendition) {
    let role = match (t.roles.forced, t.roles.sdh) {
        (true, _) => "forced-subtitle",
        (false, true) => "caption",
        (false, false) => "subtitle",
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{set_id}\" contentType=\"text\" mimeType=\"application/mp4\" lang=\"{}\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      \
         <Label>{}</Label>\n      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"{role}\"/>",
        t.language.tag,
        t.label()
    );
    if t.roles.default {
        out.push_str("      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"main\"/>\n");
    }
    let _ = writeln!(
        out,
        "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"wvtt\">",
        t.name,
        t.bandwidth()
    );
    let starts: Vec<(u64, u64)> = t.segments.iter().map(|s| (s.start, s.duration)).collect();
    timeline(out, &t.name, crate::text::cmaf::TIMESCALE, &starts);
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
}

/// The thumbnails: JPEG tiles as DASH-IF IOP's thumbnail adaptation set
/// (`EssentialProperty` thumbnail_tile with the grid; each tile a
/// "segment" of the grid's pictures times the interval).
fn image_set(out: &mut String, set_id: usize, t: &crate::thumbs::Thumbnails) {
    let (w, h) = t.tile_size();
    let _ = write!(
        out,
        "    <AdaptationSet id=\"{set_id}\" contentType=\"image\" mimeType=\"image/jpeg\">\n      \
         <SegmentTemplate timescale=\"1000\" media=\"{folder}/tile-$Number%05d$.jpg\" duration=\"{}\" startNumber=\"1\"/>\n      \
         <Representation id=\"{folder}\" bandwidth=\"{}\" width=\"{w}\" height=\"{h}\">\n        \
         <EssentialProperty schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"{}x{}\"/>\n      \
         </Representation>\n    </AdaptationSet>\n",
        (t.tile_secs() * 1000.0).round() as u64,
        t.bandwidth(),
        t.opts.cols,
        t.opts.rows,
        folder = crate::thumbs::FOLDER,
    );
}

/// The set's `ContentProtection` elements.
pub(crate) fn content_protection(out: &mut String, p: &Protection) {
    let pssh = base64::engine::general_purpose::STANDARD.encode(cenc::pssh(&p.kid));
    let _ = write!(
        out,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"{}\" cenc:default_KID=\"{}\"/>\n\
         \x20     <ContentProtection schemeIdUri=\"urn:uuid:{CLEAR_KEY_DASH_UUID}\" value=\"ClearKey1.0\">\n\
         \x20       <dashif:Laurl>{}</dashif:Laurl>\n      </ContentProtection>\n\
         \x20     <ContentProtection schemeIdUri=\"urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b\">\n\
         \x20       <cenc:pssh>{pssh}</cenc:pssh>\n      </ContentProtection>\n",
        p.scheme.as_str(),
        uuid(&p.kid),
        p.license_url
    );
    for d in p.systems.iter().filter_map(|s| s.dash.as_ref()) {
        let _ = writeln!(out, "      {d}");
    }
}

fn template(out: &mut String, r: &Rendition) {
    let segments: Vec<(u64, u64)> = r.segments.iter().map(|s| (s.start, s.duration)).collect();
    timeline(out, &r.name, r.timescale, &segments);
}

/// A `SegmentTemplate` over `name/seg-NNNNN.m4s` with the timeline of
/// `segments` (start, duration).
fn timeline(out: &mut String, name: &str, timescale: u32, segments: &[(u64, u64)]) {
    timeline_of(out, name, "seg", timescale, segments);
}

/// A `SegmentTemplate` over `name/{prefix}-NNNNN.m4s`; runs of equal
/// durations become one `<S>` with a repeat count.
fn timeline_of(out: &mut String, name: &str, prefix: &str, timescale: u32, segments: &[(u64, u64)]) {
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{timescale}\" initialization=\"{name}/{INIT_FILE}\" media=\"{name}/{prefix}-$Number%05d$.m4s\" startNumber=\"1\">\n          <SegmentTimeline>"
    );
    let mut i = 0;
    while i < segments.len() {
        let (start, duration) = segments[i];
        let mut repeat = 0;
        while i + repeat + 1 < segments.len() && segments[i + repeat + 1].1 == duration {
            repeat += 1;
        }
        let t = if i == 0 {
            format!(" t=\"{start}\"")
        } else {
            String::new()
        };
        let r_attr = if repeat > 0 {
            format!(" r=\"{repeat}\"")
        } else {
            String::new()
        };
        let _ = writeln!(out, "            <S{t} d=\"{duration}\"{r_attr}/>");
        i += repeat + 1;
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
}

fn iso_duration(secs: f64) -> String {
    format!("PT{secs:.3}S")
}

/// `25`, or a fraction like `30000/1001` for NTSC rates.
fn frame_rate(fps: f64) -> String {
    for base in [24.0, 30.0, 60.0] {
        if (fps - base * 1000.0 / 1001.0).abs() < 0.005 {
            return format!("{}/1001", base as u32 * 1000);
        }
    }
    if (fps - fps.round()).abs() < 0.005 {
        format!("{}", fps.round() as u32)
    } else {
        format!("{}/1000", (fps * 1000.0).round() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(frame_rate(25.0), "25");
        assert_eq!(frame_rate(29.97), "30000/1001");
        assert_eq!(frame_rate(12.5), "12500/1000");
        assert_eq!(iso_duration(30.0), "PT30.000S");
    }
}
