//! The ladder step: one mezzanine file → several renditions made by ffmpeg,
//! with keyframes every `gop` seconds in every rung (no scene-cut extras)
//! so segment boundaries line up across renditions. Audio is encoded once,
//! into the first rung.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

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
}

/// Encodes every rung; returns the rendition files, highest first.
pub fn make_ladder(
    mezzanine: &Path,
    opts: &LadderOptions,
    mut on_rung: impl FnMut(usize),
) -> Result<Vec<PathBuf>, LadderError> {
    std::fs::create_dir_all(&opts.work).map_err(|error| LadderError::Io {
        path: opts.work.clone(),
        error,
    })?;
    let fps = frame_rate(mezzanine)?;
    let gop_frames = ((fps * opts.gop).round() as u32).max(1).to_string();
    let mut outputs = Vec::new();
    for (i, rung) in opts.rungs.iter().enumerate() {
        let out = opts.work.join(format!("{}p.mp4", rung.height));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-y", "-v", "error", "-i"]).arg(mezzanine);
        cmd.args(["-map", "0:v:0"]);
        if i == 0 {
            cmd.args([
                "-map",
                "0:a:0?",
                "-c:a",
                "aac",
                "-b:a",
                &format!("{}k", opts.audio_kbps),
            ]);
        }
        cmd.args(["-vf", &format!("scale=-2:{}", rung.height), "-pix_fmt", "yuv420p"]);
        let (rate, max, buf) = (
            format!("{}k", rung.kbps),
            format!("{}k", rung.kbps * 6 / 5),
            format!("{}k", rung.kbps * 2),
        );
        match opts.codec {
            VideoCodec::H264 => cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0"]),
            VideoCodec::Hevc => cmd
                .args(["-c:v", "libx265", "-preset", "veryfast", "-tag:v", "hvc1"])
                .args(["-x265-params", "scenecut=0:log-level=error"]),
            VideoCodec::Av1 => cmd.args(["-c:v", "libsvtav1", "-preset", "10", "-svtav1-params", "scd=0"]),
        };
        cmd.args(["-b:v", &rate, "-maxrate", &max, "-bufsize", &buf]);
        cmd.args(["-g", &gop_frames, "-keyint_min", &gop_frames, "-movflags", "+faststart"]);
        cmd.arg(&out);
        run(cmd, "ffmpeg", mezzanine)?;
        on_rung(i);
        outputs.push(out);
    }
    Ok(outputs)
}

/// The first video stream's average frame rate, from ffprobe.
pub fn frame_rate(input: &Path) -> Result<f64, LadderError> {
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=avg_frame_rate",
        "-of",
        "csv=p=0",
    ]);
    cmd.arg(input);
    let out = run(cmd, "ffprobe", input)?;
    let text = String::from_utf8_lossy(&out);
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

fn run(mut cmd: Command, tool: &'static str, input: &Path) -> Result<Vec<u8>, LadderError> {
    let out = cmd.output().map_err(|error| LadderError::Spawn { tool, error })?;
    if !out.status.success() {
        return Err(LadderError::Failed {
            tool,
            input: input.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
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
