//! The low-latency DASH manifest of a live event (ISO/IEC 23009-1 with
//! the DASH-IF low-latency guidelines): a dynamic MPD whose
//! `SegmentTemplate` numbers segments (`$Number$`, a fixed `@duration`)
//! as the HLS playlists do, `availabilityTimeOffset` so players ask for a
//! segment one part after it starts and read it as it is written
//! (`availabilityTimeComplete="false"`), `UTCTiming` for the players'
//! clocks and a `ServiceDescription` with the latency to aim for.
//!
//! One period from segment 0: an encoder restart with new timing is not
//! yet a new period (HLS marks it; see docs/live.md).

use std::fmt::Write;

use nearcast_common::clock::{iso8601_millis, millis_of};

use super::track::LiveTrack;
use crate::mp4::TrackKind;

/// What to render.
pub struct Mpd<'a> {
    /// (rendition name, track) of every rendition.
    pub tracks: &'a [(&'a str, &'a LiveTrack)],
    /// The encoder's segment length, seconds.
    pub segment_secs: f64,
    /// The part (chunk) length, seconds.
    pub part_target: f64,
    /// How far back players may seek, seconds.
    pub window_secs: f64,
    /// Where players read the time (`urn:mpeg:dash:utc:http-iso:2014`).
    pub utc_timing: &'a str,
    /// A query every URL carries (`token=…`), or empty.
    pub query: &'a str,
    /// Where the segments are, best first, when not beside the MPD
    /// (`<BaseURL>`s).
    pub base_urls: &'a [String],
    /// Latency players should aim for, seconds.
    pub target_latency: f64,
    /// Wall clock now, Unix seconds (`publishTime`).
    pub now: f64,
    /// The archived event as a VOD title: a static MPD of the segments in
    /// the window, numbered from the first.
    pub vod: bool,
}

/// Renders the MPD; `None` until some rendition has its first segment.
pub fn mpd(m: &Mpd) -> Option<String> {
    let anchor = m
        .tracks
        .iter()
        .filter_map(|(_, t)| t.origin().map(|o| (t.init().track.kind, o)))
        .min_by_key(|(kind, _)| *kind != TrackKind::Video)?;
    let (ast, _) = anchor.1;
    let q = if m.query.is_empty() {
        String::new()
    } else {
        format!("?{}", m.query)
    };
    let (_, anchor_track) = m.tracks.iter().find(|(_, t)| t.init().track.kind == anchor.0)?;
    if m.vod {
        return Some(vod(m, &q, anchor_track));
    }
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"dynamic\" \
         availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"PT{:.1}S\" \
         timeShiftBufferDepth=\"PT{:.0}S\" maxSegmentDuration=\"PT{:.1}S\" minBufferTime=\"PT{:.1}S\">\n",
        iso8601_millis(millis_of(ast)),
        iso8601_millis(millis_of(m.now)),
        m.segment_secs,
        m.window_secs,
        m.segment_secs,
        m.part_target * 2.0,
    );
    let target = (m.target_latency * 1000.0) as u64;
    let _ = writeln!(
        out,
        "  <ServiceDescription id=\"0\">\n    <Latency referenceId=\"0\" target=\"{target}\" min=\"{}\" max=\"{}\"/>\n    \
         <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>",
        target / 2,
        target * 2
    );
    // Several: the player's pathways in order (Shaka and dash.js move to
    // the next when one fails).
    for (i, base) in m.base_urls.iter().enumerate() {
        let _ = writeln!(out, "  <BaseURL serviceLocation=\"{i}\">{base}</BaseURL>");
    }
    periods(&mut out, m, &q, anchor_track, ast);
    let _ = write!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>\n</MPD>\n",
        m.utc_timing
    );
    Some(out)
}

/// The archived event's static MPD: a period per run of continuous
/// timing, back to back (the silences between are left out), each
/// rendition's segments in it as a timeline.
fn vod(m: &Mpd, q: &str, anchor_track: &LiveTrack) -> String {
    let media_secs = |t: &LiveTrack, p: u64| {
        t.secs(
            t.segments()
                .iter()
                .filter(|s| !s.gap && s.period == p)
                .map(|s| s.duration)
                .sum(),
        )
    };
    let runs: Vec<(u64, f64)> = anchor_track
        .periods()
        .iter()
        .map(|p| {
            let longest = m
                .tracks
                .iter()
                .map(|(_, t)| media_secs(t, p.period))
                .fold(0.0, f64::max);
            (p.period, longest)
        })
        .collect();
    let mut out = String::with_capacity(2048);
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"static\" \
         mediaPresentationDuration=\"PT{:.3}S\" maxSegmentDuration=\"PT{:.1}S\" minBufferTime=\"PT{:.1}S\">",
        runs.iter().map(|(_, d)| d).sum::<f64>(),
        m.segment_secs,
        m.segment_secs
    );
    let mut start = 0.0;
    for (period, secs) in runs {
        let _ = writeln!(
            out,
            "  <Period id=\"p{period}\" start=\"PT{start:.3}S\" duration=\"PT{secs:.3}S\">"
        );
        adaptation_sets(&mut out, m, q, Some(period));
        out.push_str("  </Period>\n");
        start += secs;
    }
    out.push_str("</MPD>\n");
    out
}

/// A period per run of continuous timing (an encoder restart starts one),
/// its start and numbering where the run began (`ast`: the MPD's
/// availability start); a closed one ends with its media, before the
/// silence the HLS playlists mark as gaps.
fn periods(out: &mut String, m: &Mpd, q: &str, anchor_track: &LiveTrack, ast: f64) {
    let starts = anchor_track.periods();
    // The encoder is a whole segment late: the period ends with what it
    // has, so players stop asking for segments that may never come (when
    // the encoder is back, its segments open the next period).
    let stalled = anchor_track
        .segments()
        .iter()
        .rev()
        .find(|s| !s.gap)
        .is_some_and(|s| s.complete && m.now > s.wall + anchor_track.secs(s.duration) + m.segment_secs);
    for (i, p) in starts.iter().enumerate() {
        let _ = write!(
            out,
            "  <Period id=\"p{}\" start=\"PT{:.3}S\"",
            p.period,
            (p.wall - ast).max(0.0)
        );
        if starts.get(i + 1).is_some() || stalled {
            let media = anchor_track
                .segments()
                .iter()
                .filter(|s| s.period == p.period && !s.gap);
            let _ = write!(
                out,
                " duration=\"PT{:.3}S\"",
                anchor_track.secs(media.map(|s| s.duration).sum())
            );
        }
        out.push_str(">\n");
        adaptation_sets(out, m, q, Some(p.period));
        out.push_str("  </Period>\n");
    }
}

/// A period's adaptation sets: video, then audio (live: the renditions
/// with media in `period`).
fn adaptation_sets(out: &mut String, m: &Mpd, q: &str, period: Option<u64>) {
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let of_kind: Vec<_> = m
            .tracks
            .iter()
            .filter(|(_, t)| t.init().track.kind == kind)
            .filter(|(_, t)| period.is_none_or(|p| t.periods().iter().any(|s| s.period == p)))
            .collect();
        if !of_kind.is_empty() {
            adaptation_set(out, m, kind, &of_kind, q, period);
        }
    }
}

fn adaptation_set(
    out: &mut String,
    m: &Mpd,
    kind: TrackKind,
    tracks: &[&(&str, &LiveTrack)],
    q: &str,
    period: Option<u64>,
) {
    let (content, id) = match kind {
        TrackKind::Video => ("video", 0),
        TrackKind::Audio => ("audio", 1),
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{id}\" contentType=\"{content}\" mimeType=\"{content}/mp4\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    if let Some(p) = tracks.first().and_then(|(_, t)| t.protection()) {
        crate::manifest::dash::content_protection(out, &p);
    }
    for (name, t) in tracks {
        let c = &t.init().track.codec;
        let size = match kind {
            TrackKind::Video => format!(" width=\"{}\" height=\"{}\"", c.width, c.height),
            TrackKind::Audio => format!(" audioSamplingRate=\"{}\"", c.sample_rate),
        };
        let _ = writeln!(
            out,
            "      <Representation id=\"{name}\" bandwidth=\"{}\" codecs=\"{}\"{size}>",
            t.peak_bitrate(),
            c.string
        );
        let timescale = t.timescale();
        // The init of the period's segments (of the newest, in VOD).
        let in_period = t.segments().iter().find(|s| period.is_some_and(|p| s.period == p));
        let epoch = in_period.or(t.segments().back()).map_or(0, |s| s.epoch);
        let names = format!(
            "initialization=\"$RepresentationID$/init-{epoch}.mp4{q}\" media=\"$RepresentationID$/$Number$.m4s{q}\""
        );
        let in_run = |s: &&super::track::Segment| !s.gap && period.is_none_or(|p| s.period == p);
        match t.segments().iter().find(in_run) {
            // VOD: the period's segments kept, each as it is (a rendition
            // may end a segment earlier than another).
            Some(first) if m.vod => {
                let _ = writeln!(
                    out,
                    "        <SegmentTemplate timescale=\"{timescale}\" startNumber=\"{}\" presentationTimeOffset=\"{}\" {names}>\n\
                     {}        </SegmentTemplate>\n      </Representation>",
                    first.msn,
                    first.base,
                    timeline(t.segments().iter().filter(in_run))
                );
            }
            // Live: numbered from the period's first segment and its
            // decode time.
            _ => {
                let start = t.periods().iter().find(|s| Some(s.period) == period);
                let _ = writeln!(
                    out,
                    "        <SegmentTemplate timescale=\"{timescale}\" duration=\"{}\" startNumber=\"{}\" \
                     presentationTimeOffset=\"{}\" {names} availabilityTimeOffset=\"{:.3}\" \
                     availabilityTimeComplete=\"false\"/>\n      </Representation>",
                    (m.segment_secs * f64::from(timescale)).round() as u64,
                    start.map_or(0, |s| s.msn),
                    start.map_or(0, |s| s.base),
                    m.segment_secs - m.part_target
                );
            }
        }
    }
    out.push_str("    </AdaptationSet>\n");
}

/// A `SegmentTimeline` of the track's segments, equal durations run
/// together (`@r`).
fn timeline<'a>(segments: impl Iterator<Item = &'a super::track::Segment>) -> String {
    let mut runs: Vec<(u64, u64, u32)> = Vec::new(); // (t, d, repeats)
    let mut next = None;
    for s in segments {
        match runs.last_mut() {
            Some((_, d, r)) if *d == s.duration && next == Some(s.base) => *r += 1,
            _ => runs.push((s.base, s.duration, 0)),
        }
        next = Some(s.base + s.duration);
    }
    let mut out = String::from("          <SegmentTimeline>\n");
    for (start, d, r) in runs {
        let r = if r > 0 { format!(" r=\"{r}\"") } else { String::new() };
        let _ = writeln!(out, "            <S t=\"{start}\" d=\"{d}\"{r}/>");
    }
    out.push_str("          </SegmentTimeline>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::track::tests::{init, segment};
    use super::super::track::{LiveTrack, TrackOptions};
    use super::*;

    #[test]
    fn a_dynamic_mpd_numbers_segments_from_the_first() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        let m = |t: &LiveTrack| {
            mpd(&Mpd {
                tracks: &[("video", t)],
                segment_secs: 2.0,
                part_target: 0.5,
                window_secs: 7200.0,
                utc_timing: "http://o/time",
                query: "token=t",
                base_urls: &[],
                target_latency: 3.0,
                now: 1_796_130_010.0,
                vod: false,
            })
        };
        assert!(m(&t).is_none(), "nothing to play yet");
        for k in 0..3 {
            segment(&mut t, 500 + 2000 * k, 1_796_130_000.0 + 2.0 * k as f64);
        }
        let text = m(&t).unwrap();
        for want in [
            "type=\"dynamic\" availabilityStartTime=\"2026-12-01T12:59:59.500Z\" publishTime=\"2026-12-01T13:00:10.000Z\"",
            "<Latency referenceId=\"0\" target=\"3000\" min=\"1500\" max=\"6000\"/>",
            "<Representation id=\"video\" bandwidth=\"",
            " codecs=\"avc1.64001f\" width=\"320\" height=\"180\">",
            "<SegmentTemplate timescale=\"1000\" duration=\"2000\" startNumber=\"0\" presentationTimeOffset=\"500\" \
             initialization=\"$RepresentationID$/init-0.mp4?token=t\" media=\"$RepresentationID$/$Number$.m4s?token=t\" \
             availabilityTimeOffset=\"1.500\" availabilityTimeComplete=\"false\"/>",
            "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"http://o/time\"/>",
        ] {
            assert!(text.contains(want), "{want}\nnot in\n{text}");
        }
        assert!(!text.contains("contentType=\"audio\""));
    }

    #[test]
    fn the_archive_mpd_is_static_with_a_period_per_run_and_no_gaps() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        segment(&mut t, 0, 100.0);
        t.set_init(init("avc1.64001f")).unwrap();
        segment(&mut t, 0, 107.5); // two gap segments before it
        assert_eq!(t.segments().iter().filter(|s| s.gap).count(), 2);
        let text = mpd(&Mpd {
            tracks: &[("video", &t)],
            segment_secs: 2.0,
            part_target: 0.5,
            window_secs: 0.0,
            utc_timing: "",
            query: "",
            base_urls: &[],
            target_latency: 0.0,
            now: 0.0,
            vod: true,
        })
        .unwrap();
        assert!(
            text.contains("type=\"static\" mediaPresentationDuration=\"PT4.000S\""),
            "{text}"
        );
        assert!(
            text.contains("<Period id=\"p0\" start=\"PT0.000S\" duration=\"PT2.000S\">"),
            "{text}"
        );
        assert!(
            text.contains("<Period id=\"p1\" start=\"PT2.000S\" duration=\"PT2.000S\">"),
            "{text}"
        );
        // Segment 0, then (after gap segments 1 and 2) segment 3.
        assert!(
            text.contains("startNumber=\"0\" presentationTimeOffset=\"0\""),
            "{text}"
        );
        assert!(
            text.contains("startNumber=\"3\" presentationTimeOffset=\"0\""),
            "{text}"
        );
        assert_eq!(text.matches("<S t=").count(), 2, "{text}");
        assert!(!text.contains("availabilityTimeOffset"), "{text}");
    }

    #[test]
    fn an_encoder_restart_starts_a_period() {
        let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
        segment(&mut t, 0, 100.0);
        segment(&mut t, 2000, 102.0);
        let mut again = init("avc1.64001f");
        again.bytes.push(1);
        t.set_init(again).unwrap();
        // Back 6 s after its last segment ended, its clock at 0.
        segment(&mut t, 0, 109.5);
        let text = mpd(&Mpd {
            tracks: &[("video", &t)],
            segment_secs: 2.0,
            part_target: 0.5,
            window_secs: 7200.0,
            utc_timing: "http://o/time",
            query: "",
            base_urls: &[],
            target_latency: 3.0,
            now: 110.0,
            vod: false,
        })
        .unwrap();
        let periods: Vec<&str> = text.lines().filter(|l| l.contains("<Period")).collect();
        assert_eq!(
            periods,
            [
                "  <Period id=\"p0\" start=\"PT0.000S\" duration=\"PT4.000S\">",
                "  <Period id=\"p1\" start=\"PT9.500S\">"
            ],
            "{text}"
        );
        // The gap segments (msn 2, 3) are in no period; the restart's
        // numbering and decode time start the second.
        assert!(
            text.contains(
                "startNumber=\"0\" presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init-0.mp4\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "startNumber=\"4\" presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init-1.mp4\""
            ),
            "{text}"
        );
    }
}
