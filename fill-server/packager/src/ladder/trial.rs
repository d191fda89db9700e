//! The per-title ladder's trials: a few clips sampled across the title,
//! each encoded at every rung's size at a few CRF values with the
//! ladder's own encoder settings, and each trial's PSNR measured by
//! ffmpeg against the source clip scaled the same way. `curve.rs` turns
//! the points into rates.

use std::path::Path;
use std::process::Command;

use super::curve::Point;
use super::{run, video_args, LadderError, Rate, Rung, VideoCodec};

/// How the per-title trials sample a title.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Clips spread evenly over the title.
    pub clips: usize,
    /// Seconds per clip.
    pub clip_secs: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            clips: 3,
            clip_secs: 2.0,
        }
    }
}

/// The CRF values tried, from high quality to low. SVT-AV1's scale runs
/// to 63, x264's and x265's to 51. A clip below the target at the first
/// one while still under the rung's rate gets one more, `EXTRA_STEP`
/// better (detailed content the fixed rate can still serve well).
pub fn crf_points(codec: VideoCodec) -> [f64; 4] {
    match codec {
        VideoCodec::H264 | VideoCodec::Hevc => [20.0, 26.0, 32.0, 38.0],
        VideoCodec::Av1 => [25.0, 35.0, 45.0, 55.0],
    }
}

/// How much better than the best of `crf_points` the extra trial is.
pub const EXTRA_STEP: f64 = 6.0;

/// (start, length) of each sampled clip: centred in equal parts of the
/// title; the whole title once when it is shorter than the clips together.
pub fn clips(duration: f64, s: &Sampling) -> Vec<(f64, f64)> {
    let n = s.clips.max(1);
    if duration <= s.clip_secs * n as f64 {
        return vec![(0.0, duration)];
    }
    let part = duration / n as f64;
    (0..n)
        .map(|i| ((i as f64 + 0.5) * part - s.clip_secs / 2.0, s.clip_secs))
        .collect()
}

/// The trial encodes one run makes at least (extra trials add to it), for
/// a progress bar.
pub fn count(rungs: usize, duration: f64, s: &Sampling, codec: VideoCodec) -> usize {
    rungs * clips(duration, s).len() * crf_points(codec).len()
}

/// What the trials need to know about the ladder.
pub struct Trial<'a> {
    pub mezzanine: &'a Path,
    pub duration: f64,
    pub codec: VideoCodec,
    pub gop_frames: u32,
    /// The quality aimed at (dB of PSNR): whether a clip needs the extra trial.
    pub target_psnr: f64,
    /// Scratch file for each trial encode (overwritten, then removed).
    pub scratch: &'a Path,
}

/// Every rung's curves, one per clip: `result[rung][clip]`.
pub fn run_trials(
    t: &Trial,
    rungs: &[Rung],
    sampling: &Sampling,
    mut on_trial: impl FnMut(),
) -> Result<Vec<Vec<Vec<Point>>>, LadderError> {
    let spans = clips(t.duration, sampling);
    let mut out = Vec::with_capacity(rungs.len());
    for rung in rungs {
        let mut per_clip = Vec::with_capacity(spans.len());
        for &(start, len) in &spans {
            let mut curve = Vec::new();
            for crf in crf_points(t.codec) {
                curve.push(trial(t, rung.height, start, len, crf)?);
                on_trial();
            }
            let best = curve[0];
            if best.psnr < t.target_psnr && best.kbps < f64::from(rung.kbps) {
                curve.push(trial(t, rung.height, start, len, best.crf - EXTRA_STEP)?);
                on_trial();
            }
            per_clip.push(curve);
        }
        out.push(per_clip);
    }
    let _ = std::fs::remove_file(t.scratch);
    Ok(out)
}

/// One encode of one clip at one CRF, and its PSNR.
fn trial(t: &Trial, height: u32, start: f64, len: f64, crf: f64) -> Result<Point, LadderError> {
    let (ss, dur) = (format!("{start:.3}"), format!("{len:.3}"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-y", "-v", "error", "-ss", &ss, "-t", &dur, "-i"]);
    cmd.arg(t.mezzanine).args(["-map", "0:v:0", "-an"]);
    video_args(&mut cmd, t.codec, height, Rate::Crf(crf));
    let g = t.gop_frames.to_string();
    cmd.args(["-g", &g, "-keyint_min", &g, "-f", "mp4"]).arg(t.scratch);
    run(cmd, "ffmpeg", t.mezzanine)?;
    let size = std::fs::metadata(t.scratch)
        .map_err(|error| LadderError::Io {
            path: t.scratch.to_path_buf(),
            error,
        })?
        .len();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-nostats", "-v", "info", "-i"]).arg(t.scratch);
    cmd.args(["-ss", &ss, "-t", &dur, "-i"]).arg(t.mezzanine);
    // Both clips start at their first frame: the encode's first frame
    // can sit a frame's length after zero.
    let graph =
        format!("[0:v]setpts=PTS-STARTPTS[e];[1:v]setpts=PTS-STARTPTS,scale=-2:{height},format=yuv420p[r];[e][r]psnr");
    cmd.args(["-lavfi", &graph, "-f", "null", "-"]);
    let log = run(cmd, "ffmpeg", t.mezzanine)?.stderr;
    let psnr = measured_psnr(&String::from_utf8_lossy(&log)).ok_or_else(|| LadderError::Failed {
        tool: "ffmpeg",
        input: t.mezzanine.to_path_buf(),
        stderr: "the psnr filter printed no average".into(),
    })?;
    Ok(Point {
        crf,
        kbps: size as f64 * 8.0 / len / 1000.0,
        psnr,
    })
}

/// ffmpeg's psnr summary line: `PSNR y:… u:… v:… average:48.1 min:…`;
/// identical pictures print `inf`, taken as 100 dB.
pub fn measured_psnr(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("PSNR") && l.contains("average:"))?;
    let value = line.split("average:").nth(1)?.split_whitespace().next()?;
    let db: f64 = value.parse().ok()?;
    Some(if db.is_infinite() { 100.0 } else { db })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_spread_over_the_title() {
        let s = Sampling::default();
        assert_eq!(clips(5.0, &s), vec![(0.0, 5.0)]);
        let c = clips(60.0, &s);
        assert_eq!(c, vec![(9.0, 2.0), (29.0, 2.0), (49.0, 2.0)]);
        assert_eq!(count(4, 60.0, &s, VideoCodec::H264), 48);
    }

    #[test]
    fn reads_the_psnr_summary() {
        let log = "frame=  50 ...\n[Parsed_psnr_2 @ 0x5] PSNR y:47.1 u:50.2 v:51.0 average:48.123 min:44.0 max:52.0\n";
        assert_eq!(measured_psnr(log), Some(48.123));
        let same = "[Parsed_psnr_2 @ 0x5] PSNR y:inf u:inf v:inf average:inf min:inf max:inf\n";
        assert_eq!(measured_psnr(same), Some(100.0));
        assert_eq!(measured_psnr("no summary"), None);
    }
}
