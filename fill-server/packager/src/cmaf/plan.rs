//! Where segments start. Video is cut at the keyframe nearest each target
//! boundary (measured from the previous cut), so segments respect the
//! target within one GOP. Audio (every sample a sync sample) is cut at the
//! video's boundaries so renditions switch cleanly; audio-only titles are
//! cut at the target directly.

use std::ops::Range;

use crate::mp4::Track;

/// Sample ranges, one per segment, in order and covering every sample.
pub type SegmentPlan = Vec<Range<usize>>;

/// Plans `track` with `target` seconds; `follow` gives boundary times (in
/// seconds of presentation) to cut at instead, for tracks that follow
/// another.
pub fn plan_segments(track: &Track, target: f64, follow: Option<&[f64]>) -> SegmentPlan {
    let n = track.samples.len();
    let cuts = match follow {
        Some(bounds) => follow_cuts(track, bounds),
        None => keyframe_cuts(track, target),
    };
    let mut plan = Vec::with_capacity(cuts.len());
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(n);
        if start < end {
            plan.push(start..end);
        }
    }
    plan
}

/// Presentation time of the first sample of each segment, in seconds.
pub fn boundaries(track: &Track, plan: &SegmentPlan) -> Vec<f64> {
    plan.iter().map(|r| presentation_secs(track, r.start)).collect()
}

fn decode_secs(track: &Track, i: usize) -> f64 {
    track
        .samples
        .get(i)
        .map_or_else(|| track.duration_secs(), |s| s.dts as f64 / f64::from(track.timescale))
}

fn presentation_secs(track: &Track, i: usize) -> f64 {
    let s = &track.samples[i];
    (s.dts as f64 + f64::from(s.cts_offset) - track.media_time as f64) / f64::from(track.timescale)
}

fn keyframe_cuts(track: &Track, target: f64) -> Vec<usize> {
    let syncs: Vec<usize> = (1..track.samples.len()).filter(|&i| track.samples[i].sync).collect();
    let end = track.duration_secs();
    let mut cuts = vec![0];
    let mut k = 0;
    while k < syncs.len() {
        let ideal = decode_secs(track, *cuts.last().unwrap_or(&0)) + target;
        let mut j = k;
        while j < syncs.len() && decode_secs(track, syncs[j]) < ideal {
            j += 1;
        }
        let pick = if j < syncs.len() {
            // The keyframe at or after the ideal point, or the one before it if nearer.
            if j > k && ideal - decode_secs(track, syncs[j - 1]) <= decode_secs(track, syncs[j]) - ideal {
                j - 1
            } else {
                j
            }
        } else if j > k && end > ideal && ideal - decode_secs(track, syncs[j - 1]) < end - ideal {
            // No keyframe past the ideal point: cut at the last one if that
            // is nearer than running on to the end.
            j - 1
        } else {
            break;
        };
        cuts.push(syncs[pick]);
        k = pick + 1;
    }
    cuts
}

fn follow_cuts(track: &Track, bounds: &[f64]) -> Vec<usize> {
    let mut cuts = vec![0];
    let half_frame = track
        .samples
        .first()
        .map_or(0.0, |s| f64::from(s.duration) / f64::from(track.timescale) / 2.0);
    let mut i = 0;
    for &b in bounds.iter().skip(1) {
        while i < track.samples.len() && presentation_secs(track, i) < b - half_frame {
            i += 1;
        }
        if i >= track.samples.len() {
            break;
        }
        if i > *cuts.last().unwrap_or(&0) {
            cuts.push(i);
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{Codec, Sample, TrackKind};

    fn track(kind: TrackKind, n: usize, duration: u32, gop: usize) -> Track {
        Track {
            id: 1,
            kind,
            timescale: 1000,
            language: "und".into(),
            codec: Codec {
                fourcc: *b"avc1",
                string: String::new(),
                width: 0,
                height: 0,
                channels: 0,
                sample_rate: 0,
            },
            sample_entry: (*b"avc1", Vec::new()),
            media_time: 0,
            samples: (0..n)
                .map(|i| Sample {
                    offset: 0,
                    size: 1,
                    dts: (i as u64) * u64::from(duration),
                    duration,
                    cts_offset: 0,
                    sync: i % gop == 0,
                })
                .collect(),
        }
    }

    #[test]
    fn cuts_at_keyframes_near_the_target() {
        // 25 fps, 30 s, GOP 1 s: 4 s segments exactly, last one 2 s.
        let t = track(TrackKind::Video, 750, 40, 25);
        let plan = plan_segments(&t, 4.0, None);
        assert_eq!(plan.len(), 8);
        assert!(plan[..7].iter().all(|r| r.len() == 100));
        assert_eq!(plan[7], 700..750);
        // GOP 3 s, target 4 s: keyframes at 0,3,6,9,...; nearest to 4 is 3, then 6 (≈7), ...
        let t = track(TrackKind::Video, 750, 40, 75);
        let plan = plan_segments(&t, 4.0, None);
        let starts: Vec<usize> = plan.iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![0, 75, 150, 225, 300, 375, 450, 525, 600, 675]);
        // Every sample is in exactly one segment, in order.
        assert_eq!(plan.iter().map(|r| r.len()).sum::<usize>(), 750);
        assert!(plan.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn long_gops_give_one_segment_per_gop() {
        let t = track(TrackKind::Video, 300, 40, 150); // GOP 6 s, target 2 s
        let plan = plan_segments(&t, 2.0, None);
        assert_eq!(plan, vec![0..150, 150..300]);
    }

    #[test]
    fn audio_follows_video_boundaries() {
        let v = track(TrackKind::Video, 750, 40, 50);
        let vp = plan_segments(&v, 4.0, None);
        let bounds = boundaries(&v, &vp);
        let a = track(TrackKind::Audio, 1407, 21, 1); // ~21.3 ms AAC frames
        let ap = plan_segments(&a, 4.0, Some(&bounds));
        assert_eq!(ap.len(), vp.len());
        for (r, b) in ap.iter().zip(&bounds) {
            let t = a.samples[r.start].dts as f64 / 1000.0;
            assert!((t - b).abs() <= 0.011, "audio cut {t} vs video {b}");
        }
    }
}
