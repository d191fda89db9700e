//! LiveTrack's tests, and the track helpers other modules' tests use.

use super::super::fragment::tests::{bx, moof};
use super::super::init::Defaults;
use super::*;
use crate::mp4::{Codec, Track, TrackKind};

/// A video init for track 1 at timescale 1000 (30 ms samples below).
pub(crate) fn init(codec: &str) -> LiveInit {
    LiveInit {
        track: Track {
            id: 1,
            kind: TrackKind::Video,
            timescale: 1000,
            language: "und".into(),
            codec: Codec {
                fourcc: *b"avc1",
                string: codec.into(),
                width: 320,
                height: 180,
                channels: 0,
                sample_rate: 0,
            },
            sample_entry: (*b"avc1", Vec::new()),
            media_time: 0,
            samples: Vec::new(),
        },
        defaults: Defaults::default(),
        bytes: codec.as_bytes().to_vec(),
    }
}

/// Pushes one fragment (moof + mdat) of 5 samples of 100 ms from
/// `base`: half a second.
pub(crate) fn fragment(t: &mut LiveTrack, base: u64, sync: bool, now: f64) -> Result<Published, IngestError> {
    let m = moof(base, 5, 100, 4, sync);
    t.push(
        TopBox {
            kind: *b"moof",
            bytes: m,
        },
        now,
    )?;
    t.push(
        TopBox {
            kind: *b"mdat",
            bytes: bx(b"mdat", &[1; 20]),
        },
        now,
    )
}

/// Pushes a 2 s segment of four half-second fragments from `base`.
pub(crate) fn segment(t: &mut LiveTrack, base: u64, now: f64) {
    t.begin_segment();
    t.push(
        TopBox {
            kind: *b"styp",
            bytes: bx(b"styp", b"cmfs"),
        },
        now,
    )
    .unwrap();
    for k in 0..4 {
        fragment(t, base + 500 * k, k == 0, now).unwrap();
    }
    t.end_segment().unwrap();
}

#[test]
fn fragments_become_parts_and_segments_keep_the_bytes_sent() {
    let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
    segment(&mut t, 0, 100.0);
    t.begin_segment();
    assert_eq!(
        fragment(&mut t, 2000, true, 101.0).unwrap(),
        Published::Fragment { msn: 1 }
    );
    let s0 = t.segment(0).unwrap();
    assert!(s0.complete);
    assert_eq!(s0.duration, 2000);
    assert_eq!(s0.parts.len(), 4);
    assert!(s0.parts.iter().all(|p| p.complete && p.duration == 500));
    assert!(s0.parts[0].independent && !s0.parts[1].independent);
    // Parts tile the segment, the styp in the first.
    assert_eq!(s0.parts[0].start, 0);
    assert!(s0.parts.windows(2).all(|w| w[0].end == w[1].start));
    assert_eq!(s0.parts[3].end, s0.data.len());
    assert_eq!(&s0.data[4..8], b"styp");
    // The program date time: the first sample was captured one
    // fragment before it arrived.
    assert!((s0.wall - 99.5).abs() < 1e-9);
    let s1 = t.segment(1).unwrap();
    assert!(!s1.complete && s1.parts[0].complete);
    assert!((s1.wall - 101.5).abs() < 1e-9);
}

#[test]
fn repeats_time_travel_and_jumps_are_refused_and_change_nothing() {
    let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
    segment(&mut t, 0, 10.0);
    t.begin_segment();
    fragment(&mut t, 2000, true, 11.0).unwrap();
    let before = t.segment(1).unwrap().data.len();
    assert!(matches!(
        fragment(&mut t, 2000, false, 11.0),
        Err(IngestError::Duplicate { at: 2000 })
    ));
    t.abort();
    t.begin_segment();
    assert!(matches!(
        fragment(&mut t, 1000, true, 11.0),
        Err(IngestError::BackInTime {
            at: 1000,
            expected: 2500
        })
    ));
    t.abort();
    t.begin_segment();
    fragment(&mut t, 2500, true, 11.0).unwrap();
    assert!(matches!(
        fragment(&mut t, 9000, false, 11.0),
        Err(IngestError::JumpInSegment { at: 9000, .. })
    ));
    assert_eq!(t.segment(1).unwrap().data.len(), before, "segment 1 kept what it had");
    assert_eq!(t.segment(2).unwrap().parts.len(), 1);
    // A segment must open on a keyframe; an mdat needs its moof and
    // enough bytes; no moov inside a segment.
    t.abort();
    t.begin_segment();
    assert!(matches!(
        fragment(&mut t, 3000, false, 12.0),
        Err(IngestError::NoKeyframe { at: 3000 })
    ));
    t.abort();
    t.begin_segment();
    let mdat = || TopBox {
        kind: *b"mdat",
        bytes: bx(b"mdat", &[0; 4]),
    };
    assert!(matches!(t.push(mdat(), 12.0), Err(IngestError::Unpaired(_))));
    t.push(
        TopBox {
            kind: *b"moof",
            bytes: moof(3000, 5, 100, 4, true),
        },
        12.0,
    )
    .unwrap();
    assert!(matches!(
        t.push(mdat(), 12.0),
        Err(IngestError::ShortMdat { have: 4, need: 20 })
    ));
    t.abort();
    let moov = TopBox {
        kind: *b"moov",
        bytes: bx(b"moov", &[]),
    };
    assert!(matches!(t.push(moov, 12.0), Err(IngestError::Unpaired(_))));
    assert_eq!(t.segments().len(), 3);
}

#[test]
fn a_new_encoder_may_restart_time_with_a_discontinuity_but_not_change_codec() {
    let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
    segment(&mut t, 0, 10.0);
    assert!(matches!(
        t.set_init(init("avc1.640028")),
        Err(IngestError::CodecChanged { .. })
    ));
    let mut same = init("avc1.64001f");
    same.bytes.push(0); // new parameter sets, same codec
    t.set_init(same).unwrap();
    segment(&mut t, 0, 12.5);
    let s = t.segment(1).unwrap();
    assert!(s.discontinuity);
    assert_eq!(s.epoch, 1);
    assert!((s.wall - 12.0).abs() < 1e-9, "re-anchored at the restart");
    assert!(t.init_of(0).is_some() && t.init_of(1).is_some());
    // Without a new init, time cannot restart.
    t.begin_segment();
    assert!(matches!(
        fragment(&mut t, 0, true, 31.0),
        Err(IngestError::BackInTime { .. })
    ));
}

#[test]
fn the_window_drops_old_segments_by_time_and_bytes() {
    let opts = TrackOptions {
        window_secs: 6.0,
        ..TrackOptions::default()
    };
    let mut t = LiveTrack::new(init("avc1.64001f"), opts);
    for k in 0..10 {
        segment(&mut t, 2000 * k, 10.0 + 2.0 * k as f64);
    }
    assert_eq!(t.segments().front().unwrap().msn, 6, "6 s behind the newest");
    let per = t.segment(9).unwrap().data.len();
    let opts = TrackOptions {
        max_window_bytes: 3 * per,
        ..TrackOptions::default()
    };
    let mut t = LiveTrack::new(init("avc1.64001f"), opts);
    for k in 0..10 {
        segment(&mut t, 2000 * k, 10.0 + 2.0 * k as f64);
    }
    assert_eq!(t.segments().len(), 3);
    assert!(t.segments().iter().map(|s| s.data.len()).sum::<usize>() <= 3 * per);
}

#[test]
fn a_silent_encoder_leaves_gap_segments_then_a_discontinuity() {
    let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
    segment(&mut t, 0, 10.0);
    // The encoder dies; 8 s later it is back, its clock at 0 again.
    t.set_init(init("avc1.64001f")).unwrap();
    segment(&mut t, 0, 20.0);
    let segs: Vec<(u64, bool, bool)> = t.segments().iter().map(|s| (s.msn, s.gap, s.discontinuity)).collect();
    assert_eq!(
        segs,
        [
            (0, false, false),
            (1, true, false),
            (2, true, false),
            (3, true, false),
            (4, true, false),
            (5, false, true)
        ]
    );
    assert!(t
        .segments()
        .iter()
        .filter(|s| s.gap)
        .all(|s| s.data.is_empty() && s.complete));
    assert!((t.segment(5).unwrap().wall - 19.5).abs() < 1e-9);
    // A restart with no silence (a backup encoder) has no gap.
    t.set_init(init("avc1.64001f")).unwrap();
    segment(&mut t, 0, 21.6);
    assert!(!t.segment(6).unwrap().gap && t.segment(6).unwrap().discontinuity);
}

#[test]
fn while_the_encoder_is_silent_the_clock_adds_gap_segments() {
    let mut t = LiveTrack::new(init("avc1.64001f"), TrackOptions::default());
    segment(&mut t, 0, 10.0); // 9.5 .. 11.5
    assert!(!t.tick(12.0) && !t.tick(13.4), "not a whole segment late yet");
    assert!(t.tick(15.6), "a gap segment for 11.5 .. 13.5");
    assert_eq!(t.segments().len(), 2);
    assert!(t.segment(1).unwrap().gap);
    assert!(!t.tick(15.7));
    assert!(t.tick(17.5));
    // The encoder comes back with its clock going on as if nothing
    // happened: still a discontinuity, after the gaps.
    segment(&mut t, 2000, 18.0);
    let back = t.segments().back().unwrap();
    assert!(back.discontinuity && !back.gap, "{back:?}");
    assert!(t.segments().iter().filter(|s| s.gap).count() >= 2);
}
