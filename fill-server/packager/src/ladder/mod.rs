//! The ladder step: one mezzanine file → several renditions made by ffmpeg,
//! with keyframes every `gop` seconds in every rung (no scene-cut extras)
//! so segment boundaries line up across renditions. Audio is encoded once,
//! into the first rung. With `per_title`, trial encodes first measure how
//! many bits this title needs per rung (`trial.rs`, `curve.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

pub mod curve;
pub mod trial;

pub use curve::{Choice, Policy};
pub use trial::Sampling;
use trial::{run_trials, Trial};

#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    #[error("cannot run {tool}: {error} (install ffmpeg)")]
    Spawn { tool: &'static str, error: std::io::Error },
    #[error("{tool} failed on {input}: {stderr}")]
    Failed {
        tool: &'static str,
        input: PathBuf,
        stderr: String,
    },
    #[error("{input}: no video stream with a frame rate")]
    NoVideo { input: PathBuf },
    #[error("{input}: no duration")]
    NoDuration { input: PathBuf },
    #[error("rung '{0}' must look like HEIGHT:KBPS, e.g. 720:3000")]
    BadRung(String),
    #[error("cannot create {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub height: u32,
    pub kbps: u32,
}

impl FromStr for Rung {
    type Err = LadderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LadderError::BadRung(s.to_string());
        let (h, k) = s.split_once(':').ok_or_else(bad)?;
        let height: u32 = h.parse().map_err(|_| bad())?;
        let kbps: u32 = k.parse().map_err(|_| bad())?;
        if height < 32 || !height.is_multiple_of(2) || kbps == 0 {
            return Err(bad());
        }
        Ok(Rung { height, kbps })
    }
}

/// The default ladder: 1080p down to 360p.
pub const DEFAULT_RUNGS: &str = "1080:4500,720:2500,480:1200,360:700";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VideoCodec {
    H264,
    /// HEVC as `hvc1` (parameter sets in the sample entry, what HLS asks).
    Hevc,
    Av1,
}

pub struct LadderOptions {
    pub rungs: Vec<Rung>,
    pub codec: VideoCodec,
    /// Seconds between keyframes.
    pub gop: f64,
    pub audio_kbps: u32,
    /// Where the rendition MP4s are written.
    pub work: PathBuf,
    /// Pick each rung's bitrate for this title from trial encodes
    /// (`rungs` are then the caps); `None` encodes `rungs` as they are.
    pub per_title: Option<PerTitle>,
}

/// The per-title ladder's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerTitle {
    pub policy: Policy,
    pub sampling: Sampling,
}

/// What `make_ladder` made.
pub struct Ladder {
    /// The rendition files, highest first.
    pub files: Vec<PathBuf>,
    /// The per-title decision per rung, when asked for.
    pub choices: Option<Vec<Choice>>,
}

/// Progress through the trials and encodes: `done` of `total` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// Encodes every rung, after the per-title trials when asked for.
pub fn make_ladder(
    mezzanine: &Path,
    opts: &LadderOptions,
    mut on_step: impl FnMut(Progress),
) -> Result<Ladder, LadderError> {
    std::fs::create_dir_all(&opts.work).map_err(|error| LadderError::Io {
        path: opts.work.clone(),
        error,
    })?;
    let fps = frame_rate(mezzanine)?;
    let gop_frames = ((fps * opts.gop).round() as u32).max(1);
    let mut p = Progress {
        done: 0,
        total: opts.rungs.len(),
    };
    let (rates, choices): (Vec<(u32, Rate)>, _) = match &opts.per_title {
        None => (
            opts.rungs.iter().map(|r| (r.height, Rate::Kbps(r.kbps))).collect(),
            None,
        ),
        Some(pt) => {
            let duration = duration(mezzanine)?;
            p.total += trial::count(opts.rungs.len(), duration, &pt.sampling, opts.codec);
            let scratch = opts.work.join("trial.mp4");
            let t = Trial {
                mezzanine,
                duration,
                codec: opts.codec,
                gop_frames,
                target_psnr: pt.policy.target_psnr,
                scratch: &scratch,
            };
            let points = run_trials(&t, &opts.rungs, &pt.sampling, || {
                p.done += 1;
                // Extra trials (see `trial::EXTRA_STEP`) lengthen the run.
                p.total = p.total.max(p.done + opts.rungs.len());
                on_step(p);
            })?;
            let choices = curve::choose(&opts.rungs, &points, &pt.policy);
            (choices.iter().map(|c| (c.height, c.rate)).collect(), Some(choices))
        }
    };
    let mut files = Vec::new();
    for (i, &(height, rate)) in rates.iter().enumerate() {
        files.push(encode_rung(mezzanine, opts, height, rate, i == 0, gop_frames)?);
        p.done += 1;
        on_step(p);
    }
    Ok(Ladder { files, choices })
}

/// One rendition; the first one carries the audio.
fn encode_rung(
    mezzanine: &Path,
    opts: &LadderOptions,
    height: u32,
    rate: Rate,
    with_audio: bool,
    gop_frames: u32,
) -> Result<PathBuf, LadderError> {
    let out = opts.work.join(format!("{height}p.mp4"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-y", "-v", "error", "-i"]).arg(mezzanine);
    cmd.args(["-map", "0:v:0"]);
    if with_audio {
        let kbps = format!("{}k", opts.audio_kbps);
        cmd.args(["-map", "0:a:0?", "-c:a", "aac", "-b:a", &kbps]);
    }
    video_args(&mut cmd, opts.codec, height, rate);
    let g = gop_frames.to_string();
    cmd.args(["-g", &g, "-keyint_min", &g, "-movflags", "+faststart"]);
    cmd.arg(&out);
    run(cmd, "ffmpeg", mezzanine)?;
    Ok(out)
}

/// How an encode spends its bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// An average bitrate, with a peak of 1.2× over a 2-second buffer.
    Kbps(u32),
    /// Constant quality (the per-title trials).
    Crf(f64),
    /// Constant quality with the peak of `Kbps(max_kbps)` (per-title rungs).
    CappedCrf { crf: f64, max_kbps: u32 },
}

/// The scaling and encoder options of a rung, shared by the ladder's
/// encodes and the per-title trials so both measure the same encoder.
/// Keyframes are placed by the caller; scene cuts never add any.
pub(crate) fn video_args(cmd: &mut Command, codec: VideoCodec, height: u32, rate: Rate) {
    cmd.args(["-vf", &format!("scale=-2:{height}"), "-pix_fmt", "yuv420p"]);
    match codec {
        VideoCodec::H264 => cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0"]),
        VideoCodec::Hevc => cmd
            .args(["-c:v", "libx265", "-preset", "veryfast", "-tag:v", "hvc1"])
            .args(["-x265-params", "scenecut=0:log-level=error"]),
        VideoCodec::Av1 => cmd.args(["-c:v", "libsvtav1", "-preset", "10", "-svtav1-params", "scd=0"]),
    };
    // SVT-AV1 takes whole CRF values only.
    let crf = |q: f64| match codec {
        VideoCodec::Av1 => format!("{}", q.floor()),
        _ => format!("{q:.1}"),
    };
    let peak = |k: u32| [format!("{}k", k * 6 / 5), format!("{}k", k * 2)];
    match rate {
        Rate::Kbps(k) => {
            let [max, buf] = peak(k);
            cmd.args(["-b:v", &format!("{k}k"), "-maxrate", &max, "-bufsize", &buf])
        }
        Rate::Crf(q) => cmd.args(["-crf", &crf(q)]),
        Rate::CappedCrf { crf: q, max_kbps } => {
            let [max, buf] = peak(max_kbps);
            cmd.args(["-crf", &crf(q), "-maxrate", &max, "-bufsize", &buf])
        }
    };
}

/// The first video stream's average frame rate, from ffprobe.
pub fn frame_rate(input: &Path) -> Result<f64, LadderError> {
    let text = probe(
        input,
        &["-select_streams", "v:0", "-show_entries", "stream=avg_frame_rate"],
    )?;
    let no_video = || LadderError::NoVideo {
        input: input.to_path_buf(),
    };
    let (n, d) = text.trim().split_once('/').ok_or_else(no_video)?;
    let (n, d): (f64, f64) = (n.parse().map_err(|_| no_video())?, d.parse().map_err(|_| no_video())?);
    if n <= 0.0 || d <= 0.0 {
        return Err(no_video());
    }
    Ok(n / d)
}

/// The file's duration in seconds, from ffprobe.
pub fn duration(input: &Path) -> Result<f64, LadderError> {
    let text = probe(input, &["-show_entries", "format=duration"])?;
    match text.trim().parse::<f64>() {
        Ok(d) if d > 0.0 && d.is_finite() => Ok(d),
        _ => Err(LadderError::NoDuration {
            input: input.to_path_buf(),
        }),
    }
}

/// ffprobe's answer for `entries`, values only.
fn probe(input: &Path, entries: &[&str]) -> Result<String, LadderError> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"])
        .args(entries)
        .args(["-of", "csv=p=0"])
        .arg(input);
    let out = run(cmd, "ffprobe", input)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a tool; its output when it exits 0, its stderr in the error otherwise.
fn run(mut cmd: Command, tool: &'static str, input: &Path) -> Result<Output, LadderError> {
    let out = cmd.output().map_err(|error| LadderError::Spawn { tool, error })?;
    if !out.status.success() {
        return Err(LadderError::Failed {
            tool,
            input: input.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_parse() {
        assert_eq!(
            "720:2500".parse::<Rung>().unwrap(),
            Rung {
                height: 720,
                kbps: 2500
            }
        );
        for bad in ["720", "x:1", "721:100", "720:0", "16:100"] {
            assert!(bad.parse::<Rung>().is_err(), "{bad}");
        }
        assert_eq!(
            DEFAULT_RUNGS.split(',').filter_map(|r| r.parse::<Rung>().ok()).count(),
            4
        );
    }
}
