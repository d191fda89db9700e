//! LL-HLS media playlists for a live track (RFC 8216bis: §4.4.4.9 parts,
//! §4.4.5.2 rendition reports, §6.2.5.1 blocking reload, §6.2.5.2 delta
//! updates), and the blocking-reload decision. URIs are relative to the
//! playlist: `init-{epoch}.mp4`, `{msn}.m4s`, `{msn}.{part}.m4s`.

use std::fmt::Write;

use nearcast_common::clock::{iso8601_millis, millis_of};

use super::track::{LiveTrack, Segment};
use crate::mp4::TrackKind;

/// Another rendition's newest part, for `EXT-X-RENDITION-REPORT`.
pub struct Report {
    /// Its playlist, relative to this one (`../audio/index.m3u8`).
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<usize>,
}

/// What to render.
pub struct Playlist<'a> {
    pub track: &'a LiveTrack,
    /// The encoder's segment length, seconds (the target duration's floor).
    pub segment_target: f64,
    /// The client asked for a delta update (`_HLS_skip=YES`).
    pub skip: bool,
    pub reports: &'a [Report],
    /// The event is over: `EXT-X-ENDLIST`, no preload hint.
    pub ended: bool,
    /// A query string every URI carries (`token=…`), or empty.
    pub query: &'a str,
    /// The archived event as a VOD title: `EXT-X-PLAYLIST-TYPE:VOD`, no
    /// parts, no low-latency tags (implies `ended`).
    pub vod: bool,
}

/// What a blocking reload (`_HLS_msn`, `_HLS_part`) should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// The playlist has it: answer.
    Ready,
    /// Hold the request until the track changes.
    Wait,
    /// More than two segments ahead: 400 (§6.2.5.2).
    TooFar,
}

/// The newest segment and its newest complete part (None: no part yet).
pub fn position(track: &LiveTrack) -> Option<(u64, Option<usize>)> {
    let s = track.segments().back()?;
    Some((s.msn, s.parts.iter().rposition(|p| p.complete)))
}

/// Whether a reload asking for segment `msn` (part `part`) can be
/// answered.
pub fn block(track: &LiveTrack, msn: u64, part: Option<usize>) -> Block {
    let Some((last, _)) = position(track) else {
        return if msn > 1 { Block::TooFar } else { Block::Wait };
    };
    if msn > last + 2 {
        return Block::TooFar;
    }
    if msn < last {
        return Block::Ready;
    }
    let Some(seg) = track.segment(msn) else {
        return Block::Wait;
    };
    let ready = match part {
        _ if seg.complete => true,
        None => false,
        Some(p) => seg.parts.get(p).is_some_and(|p| p.complete),
    };
    if ready {
        Block::Ready
    } else {
        Block::Wait
    }
}

/// `EXT-X-TARGETDURATION`: the longest segment, rounded up, never below
/// the encoder's segment length.
pub fn target_duration(track: &LiveTrack, segment_target: f64) -> u64 {
    let longest = track
        .segments()
        .iter()
        .map(|s| track.secs(s.duration))
        .fold(segment_target, f64::max);
    (longest - 1e-3).ceil().max(1.0) as u64
}

/// `PART-TARGET`: the configured target, or the longest part if the
/// encoder's fragments are longer (a part is never cut inside one).
pub fn part_target(track: &LiveTrack) -> f64 {
    let longest = track
        .segments()
        .iter()
        .flat_map(|s| s.parts.iter())
        .map(|p| track.secs(p.duration))
        .fold(track.options().part_target, f64::max);
    (longest * 1000.0).ceil() / 1000.0
}

/// The multivariant playlist of an event's `tracks` (rendition name,
/// track): every video rendition with all audio ones as its group; audio
/// renditions as variants when there is no video. Playlist URIs are
/// `{base}{rendition}/index.m3u8?{query}`. `None` before any track exists.
pub fn multivariant(tracks: &[(&str, &LiveTrack)], base: &str, query: &str) -> Option<String> {
    if tracks.is_empty() {
        return None;
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let (mut video, audio): (Vec<_>, Vec<_>) = tracks
        .iter()
        .partition(|(_, t)| t.init().track.kind == TrackKind::Video);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut kids = Vec::new();
    for p in tracks.iter().filter_map(|(_, t)| t.protection()) {
        if !kids.contains(&p.kid) {
            kids.push(p.kid);
            let [clear_key, _] = crate::manifest::hls::key_tags(&p, "EXT-X-SESSION-KEY");
            let _ = writeln!(out, "{clear_key}");
        }
    }
    for (i, (name, _)) in audio.iter().enumerate() {
        let default = if i == 0 { "YES" } else { "NO" };
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{name}\",DEFAULT={default},AUTOSELECT=YES,URI=\"{base}{name}/index.m3u8{q}\""
        );
    }
    let audio_bw = audio.iter().map(|(_, t)| t.peak_bitrate()).max().unwrap_or(0);
    let audio_codec = audio.first().map(|(_, t)| t.init().codec());
    video.sort_by_key(|(_, t)| std::cmp::Reverse(t.peak_bitrate()));
    for (name, t) in &video {
        let c = &t.init().track.codec;
        let codecs = match audio_codec {
            Some(a) => format!("{},{a}", c.string),
            None => c.string.clone(),
        };
        let group = if audio.is_empty() { "" } else { ",AUDIO=\"audio\"" };
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={}x{}{group}\n{base}{name}/index.m3u8{q}",
            t.peak_bitrate() + audio_bw,
            c.width,
            c.height
        );
    }
    if video.is_empty() {
        for (name, t) in &audio {
            let _ = writeln!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"\n{base}{name}/index.m3u8{q}",
                t.peak_bitrate(),
                t.init().codec()
            );
        }
    }
    Some(out)
}

/// How many segments a delta update leaves out: those older than
/// CAN-SKIP-UNTIL (`skip_until` seconds) before the end, whole segments
/// only, never the last one.
fn skippable(track: &LiveTrack, skip_until: f64) -> usize {
    let segs = track.segments();
    let mut left: f64 = segs.iter().map(|s| track.secs(s.duration)).sum();
    let mut skipped = 0;
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if left - track.secs(s.duration) < skip_until || !s.complete {
            break;
        }
        left -= track.secs(s.duration);
        skipped += 1;
    }
    skipped
}

/// Renders the media playlist.
pub fn media_playlist(p: &Playlist) -> String {
    let track = p.track;
    let td = target_duration(track, p.segment_target);
    let pt = part_target(track);
    let skip_until = 6.0 * td as f64;
    let segs = track.segments();
    let span: f64 = segs.iter().map(|s| track.secs(s.duration)).sum();
    let skipped = if p.skip { skippable(track, skip_until) } else { 0 };
    let mut out = String::with_capacity(256 + 160 * segs.len());
    let version = if skipped > 0 { 9 } else { 6 };
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{td}");
    if p.vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    } else {
        let _ = write!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until:.1},PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={pt:.3}\n",
            3.0 * pt
        );
    }
    let q = if p.query.is_empty() {
        String::new()
    } else {
        format!("?{}", p.query)
    };
    let first = segs.front().map_or(0, |s| s.msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", track.discontinuity_sequence());
    if let Some(p) = track.protection() {
        for line in crate::manifest::hls::key_tags(&p, "EXT-X-KEY") {
            let _ = writeln!(out, "{line}");
        }
    }
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    // Parts are listed for the last three target durations (§4.4.4.9).
    let parts_from = if p.vod { f64::INFINITY } else { span - 3.0 * td as f64 };
    let mut at = 0.0;
    let mut epoch = None;
    for (i, s) in segs.iter().enumerate() {
        let listed = i >= skipped;
        if listed {
            if s.discontinuity && i > 0 {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if epoch != Some(s.epoch) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"init-{}.mp4{q}\"", s.epoch);
                epoch = Some(s.epoch);
            }
            segment_lines(&mut out, track, s, at + track.secs(s.duration) > parts_from, &q);
        }
        at += track.secs(s.duration);
    }
    if p.ended || p.vod {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        let hint = match segs.back() {
            Some(s) if !s.complete => format!("{}.{}.m4s", s.msn, s.parts.iter().filter(|p| p.complete).count()),
            Some(s) => format!("{}.0.m4s", s.msn + 1),
            None => "0.0.m4s".to_string(),
        };
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}{q}\"");
    }
    for r in p.reports.iter().filter(|_| !p.ended && !p.vod) {
        let _ = write!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"{}{q}\",LAST-MSN={}",
            r.uri, r.last_msn
        );
        if let Some(part) = r.last_part {
            let _ = write!(out, ",LAST-PART={part}");
        }
        out.push('\n');
    }
    out
}

/// One segment's lines: date, parts (when `with_parts`), and `EXTINF`
/// once it is whole.
fn segment_lines(out: &mut String, track: &LiveTrack, s: &Segment, with_parts: bool, q: &str) {
    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_millis(millis_of(s.wall)));
    if with_parts || !s.complete {
        for (k, part) in s.parts.iter().enumerate().filter(|(_, p)| p.complete) {
            let _ = write!(
                out,
                "#EXT-X-PART:DURATION={:.5},URI=\"{}.{k}.m4s{q}\"",
                track.secs(part.duration),
                s.msn
            );
            if part.independent {
                out.push_str(",INDEPENDENT=YES");
            }
            out.push('\n');
        }
    }
    if s.gap {
        out.push_str("#EXT-X-GAP\n");
    }
    if s.complete {
        let _ = writeln!(out, "#EXTINF:{:.5},\n{}.m4s{q}", track.secs(s.duration), s.msn);
    }
}

#[cfg(test)]
mod tests {
    use super::super::track::tests::{fragment, init, segment};
    use super::super::track::{LiveTrack, TrackOptions};
    use super::*;

    fn render(t: &LiveTrack, skip: bool) -> String {
        media_playlist(&Playlist {
            track: t,
            segment_target: 2.0,
            skip,
            reports: &[Report {
                uri: "../audio/index.m3u8".into(),
                last_msn: 4,
                last_part: Some(1),
            }],
            ended: false,
            query: "",
            vod: false,
        })
    }

    #[test]
    fn a_playlist_lists_recent_parts_and_hints_the_next() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        for k in 0..4 {
            segment(&mut t, 2000 * k, 1_796_130_000.0 + 2.0 * k as f64);
        }
        t.begin_segment();
        fragment(&mut t, 8000, true, 1_796_130_008.5).unwrap();
        let text = render(&t, false);
        let want_head = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.500\n\
            #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
            #EXT-X-MAP:URI=\"init-0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:59:59.500Z\n#EXTINF:2.00000,\n0.m4s\n";
        assert!(text.starts_with(want_head), "{text}");
        // Parts for the last three target durations only: segments 1..=4.
        assert!(!text.contains("URI=\"0.0.m4s\""), "{text}");
        assert!(text.contains("#EXT-X-PART:DURATION=0.50000,URI=\"1.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.50000,URI=\"1.1.m4s\"\n"));
        assert!(text.ends_with(
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T13:00:07.500Z\n#EXT-X-PART:DURATION=0.50000,URI=\"4.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"4.1.m4s\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=4,LAST-PART=1\n"
        ), "{text}");
    }

    #[test]
    fn delta_updates_skip_what_the_client_has() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        for k in 0..10 {
            segment(&mut t, 2000 * k, 100.0 + 2.0 * k as f64);
        }
        assert!(!render(&t, false).contains("SKIP:"));
        let delta = render(&t, true);
        // 20 s listed, 12 s may not be skipped: the first four go.
        assert!(delta.contains("#EXT-X-VERSION:9\n"), "{delta}");
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"), "{delta}");
        assert!(!delta.contains("\n3.m4s\n") && delta.contains("\n4.m4s\n"), "{delta}");
    }

    #[test]
    fn a_restart_is_a_discontinuity_with_its_own_map() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        segment(&mut t, 0, 10.0);
        let mut again = init("avc1.64001f");
        again.bytes.push(1);
        t.set_init(again).unwrap();
        segment(&mut t, 0, 12.5);
        let text = render(&t, false);
        assert!(
            text.contains("0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:12.000Z\n"),
            "{text}"
        );
    }

    #[test]
    fn gaps_are_marked_and_a_restart_is_a_discontinuity() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        segment(&mut t, 0, 10.0);
        t.set_init(init("avc1.64001f")).unwrap();
        segment(&mut t, 0, 20.0);
        let text = render(&t, false);
        assert_eq!(text.matches("#EXT-X-GAP\n#EXTINF:2.00000,\n").count(), 4, "{text}");
        assert!(
            text.contains("#EXT-X-GAP\n#EXTINF:2.00000,\n4.m4s\n#EXT-X-DISCONTINUITY\n"),
            "{text}"
        );
    }

    #[test]
    fn blocking_reload_waits_for_the_part_and_refuses_the_far_future() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        assert_eq!(block(&t, 0, Some(0)), Block::Wait);
        assert_eq!(block(&t, 2, None), Block::TooFar);
        segment(&mut t, 0, 10.0);
        t.begin_segment();
        fragment(&mut t, 2000, true, 11.0).unwrap();
        assert_eq!(position(&t), Some((1, Some(0))));
        assert_eq!(block(&t, 0, None), Block::Ready);
        assert_eq!(
            block(&t, 0, Some(9)),
            Block::Ready,
            "past the last part of a whole segment"
        );
        assert_eq!(block(&t, 1, Some(0)), Block::Ready);
        assert_eq!(block(&t, 1, Some(1)), Block::Wait);
        assert_eq!(block(&t, 1, None), Block::Wait);
        assert_eq!(block(&t, 2, Some(0)), Block::Wait);
        assert_eq!(block(&t, 3, Some(0)), Block::Wait);
        assert_eq!(block(&t, 4, Some(0)), Block::TooFar);
        fragment(&mut t, 2500, false, 11.5).unwrap();
        assert_eq!(block(&t, 1, Some(1)), Block::Ready);
    }
}
