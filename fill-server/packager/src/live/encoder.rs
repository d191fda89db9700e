//! The encoder command we document, and the demo and tests run: Debian's
//! ffmpeg pushing a live test ladder into the ingest with its DASH muxer
//! (low-latency streaming: each segment one chunked PUT, a fragment every
//! part target). Streams are named `stream{N}` in ffmpeg's order: the video
//! rungs first, then the audio.

use std::path::Path;
use std::process::{Command, Stdio};

/// One video rung of the test ladder.
#[derive(Clone, Copy, Debug)]
pub struct Rung {
    pub height: u32,
    pub kbps: u32,
}

/// What to push.
pub struct Push<'a> {
    /// `http://{live}/ingest/{event}/{secret}`.
    pub ingest: &'a str,
    /// Highest first.
    pub rungs: &'a [Rung],
    /// Stop after this long; `None` runs until killed.
    pub secs: Option<u32>,
    /// Burn the wall clock into the picture (needs a font ffmpeg finds).
    pub clock: bool,
    /// Also write the very same output to files here (ffmpeg's tee).
    pub copy_to: Option<&'a Path>,
    pub segment_secs: f64,
    pub part_secs: f64,
}

/// The ffmpeg command for `p` (stdout and stdin closed, errors only on
/// stderr, piped).
pub fn command(p: &Push) -> Command {
    let top = p.rungs.first().map_or(360, |r| r.height);
    let secs = p.secs.map(|s| format!(":duration={s}")).unwrap_or_default();
    let video = format!("testsrc2=size={}x{top}:rate=30{secs}", top * 16 / 9);
    let audio = format!("sine=frequency=440:sample_rate=48000{secs}");
    let clock = if p.clock {
        "drawtext=text='%{localtime\\:%T}':fontsize=h/8:fontcolor=white:box=1:boxcolor=black@0.6:x=w/20:y=h/20,"
    } else {
        ""
    };
    let n = p.rungs.len();
    let outs: String = (0..n).map(|i| format!("[v{i}]")).collect();
    let mut graph = format!("[0:v]{clock}split={n}{outs}");
    for (i, r) in p.rungs.iter().enumerate() {
        graph.push_str(&format!(";[v{i}]scale=-2:{}[o{i}]", r.height));
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio,
    ]);
    cmd.args(["-filter_complex", &graph]);
    for i in 0..n {
        cmd.args(["-map", &format!("[o{i}]")]);
    }
    cmd.args([
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
    ]);
    let gop = (30.0 * p.segment_secs).round().to_string();
    cmd.args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
    for (i, r) in p.rungs.iter().enumerate() {
        cmd.args([format!("-b:v:{i}"), format!("{}k", r.kbps)]);
    }
    cmd.args(["-c:a", "aac", "-b:a", "64k"]);
    let dash = format!(
        "f=dash:streaming=1:ldash=1:seg_duration={}:frag_type=duration:frag_duration={}:use_template=1:\
         use_timeline=0:dash_segment_type=mp4:adaptation_sets=id=0\\,streams=v id=1\\,streams=a",
        p.segment_secs, p.part_secs
    );
    let push = format!("[{dash}:method=PUT:http_persistent=1]{}/manifest.mpd", p.ingest);
    let outputs = match p.copy_to {
        Some(dir) => format!("{push}|[{dash}]{}/manifest.mpd", dir.display()),
        None => push,
    };
    cmd.args(["-f", "tee", &outputs]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}
