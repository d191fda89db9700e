//! The encoder command we document, and the demo and tests run: Debian's
//! ffmpeg pushing a live test ladder into the ingest, with its DASH muxer
//! (low-latency streaming: each segment one chunked PUT, a fragment every
//! part target) or its HLS muxer (fMP4 segments, each PUT when done).
//! Streams are named `stream{N}` in ffmpeg's order: the video rungs first,
//! then the audio.

use std::path::Path;
use std::process::{Command, Stdio};

/// One video rung of the test ladder.
#[derive(Clone, Copy, Debug)]
pub struct Rung {
    pub height: u32,
    pub kbps: u32,
}

/// The codecs: H.264 with AAC, or AV1 (SVT-AV1) with Opus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codecs {
    H264Aac,
    Av1Opus,
}

/// Which of ffmpeg's muxers pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Muxer {
    /// `-f dash -streaming 1 -ldash 1`: parts as they are encoded.
    Dash,
    /// `-f hls -hls_segment_type fmp4`: whole segments.
    Hls,
}

/// What to push.
pub struct Push<'a> {
    pub codecs: Codecs,
    pub muxer: Muxer,
    /// `http://{live}/ingest/{event}/{secret}`.
    pub ingest: &'a str,
    /// Highest first.
    pub rungs: &'a [Rung],
    /// Stop after this long; `None` runs until killed.
    pub secs: Option<u32>,
    /// Burn the wall clock into the picture (needs a font ffmpeg finds).
    pub clock: bool,
    /// Also write the very same output to files here (ffmpeg's tee; DASH
    /// muxer only).
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
    cmd.args(["-map", "1:a"]);
    match p.codecs {
        Codecs::H264Aac => cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]),
        // SVT-AV1 prints its own banner unless told to log errors only.
        Codecs::Av1Opus => cmd.args(["-c:v", "libsvtav1", "-preset", "12"]).env("SVT_LOG", "1"),
    };
    let gop = (30.0 * p.segment_secs).round().to_string();
    cmd.args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
    for (i, r) in p.rungs.iter().enumerate() {
        cmd.args([format!("-b:v:{i}"), format!("{}k", r.kbps)]);
    }
    match p.codecs {
        Codecs::H264Aac => cmd.args(["-c:a", "aac", "-b:a", "64k"]),
        Codecs::Av1Opus => cmd.args(["-c:a", "libopus", "-b:a", "64k"]),
    };
    match p.muxer {
        Muxer::Dash => dash_output(&mut cmd, p),
        Muxer::Hls => hls_output(&mut cmd, p),
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

fn dash_output(cmd: &mut Command, p: &Push) {
    let (seg, frag) = (p.segment_secs.to_string(), p.part_secs.to_string());
    let push = format!("{}/manifest.mpd", p.ingest);
    let Some(dir) = p.copy_to else {
        // Not through tee when nothing is copied: tee writes the init
        // segments before the encoders' headers exist (SVT-AV1's av1C
        // comes out empty).
        cmd.args(["-f", "dash", "-streaming", "1", "-ldash", "1", "-seg_duration", &seg]);
        cmd.args(["-frag_type", "duration", "-frag_duration", &frag, "-use_template", "1"]);
        cmd.args(["-use_timeline", "0", "-dash_segment_type", "mp4"]);
        cmd.args(["-adaptation_sets", "id=0,streams=v id=1,streams=a"]);
        cmd.args(["-method", "PUT", "-http_persistent", "1", &push]);
        return;
    };
    let dash = format!(
        "f=dash:streaming=1:ldash=1:seg_duration={seg}:frag_type=duration:frag_duration={frag}:use_template=1:\
         use_timeline=0:dash_segment_type=mp4:adaptation_sets=id=0\\,streams=v id=1\\,streams=a"
    );
    let outputs = format!(
        "[{dash}:method=PUT:http_persistent=1]{push}|[{dash}]{}/manifest.mpd",
        dir.display()
    );
    cmd.args(["-f", "tee", &outputs]);
}

/// One variant per stream, named like the DASH muxer's (`stream{N}`):
/// `{ingest}/stream{N}/init.mp4` and `{ingest}/stream{N}/{n}.m4s`.
fn hls_output(cmd: &mut Command, p: &Push) {
    let n = p.rungs.len();
    let mut map: Vec<String> = (0..n).map(|i| format!("v:{i},name:stream{i}")).collect();
    map.push(format!("a:0,name:stream{n}"));
    let secs = p.segment_secs.to_string();
    cmd.args([
        "-f",
        "hls",
        "-hls_time",
        &secs,
        "-hls_segment_type",
        "fmp4",
        "-method",
        "PUT",
    ]);
    cmd.args(["-http_persistent", "1", "-var_stream_map", &map.join(" ")]);
    cmd.args(["-hls_fmp4_init_filename", "init.mp4"]);
    cmd.args(["-hls_segment_filename", &format!("{}/%v/%d.m4s", p.ingest)]);
    cmd.arg(format!("{}/%v/index.m3u8", p.ingest));
}
