//! What the packager's player tests share: inputs made by ffmpeg, the
//! packager binary run on them, and the checks with ffprobe and ffmpeg.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use nearcast_packager::index::{sha256_hex, TitleIndex};
use nearcast_testkit::TempDir;

pub fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("pkg-{name}"))
}

/// Runs ffmpeg with `args` (quiet, overwrite) and asserts it worked.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn video_src(fps: &str, secs: u32) -> String {
    format!("testsrc2=size=320x180:rate={fps}:duration={secs}")
}

pub fn audio_src(secs: u32, freq: u32) -> String {
    format!("sine=frequency={freq}:sample_rate=48000:duration={secs}")
}

/// An H.264 + AAC input of `secs` seconds at 25 fps with a keyframe every
/// `gop` frames; `extra` options go before the output file.
pub fn h264_aac(path: &Path, secs: u32, gop: u32, extra: &[&str]) {
    let (v, a, g) = (video_src("25", secs), audio_src(secs, 440), gop.to_string());
    let mut args = vec![
        "-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a, "-c:v", "libx264", "-g", &g, "-c:a", "aac",
    ];
    args.extend_from_slice(extra);
    let out = path.to_str().unwrap();
    args.push(out);
    ffmpeg(&args);
}

/// (frames, duration seconds) of stream `nth` of `kind` ("v"/"a").
pub fn probe(file: &Path, kind: &str, nth: usize) -> (u64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            &format!("{kind}:{nth}"),
            "-count_frames",
        ])
        .args([
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {text}"))
            .to_string()
    };
    // The stream's own duration when it has one: the format's is the end
    // of the longest stream, which counts a source's start offset.
    let stream = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:{nth}")])
        .args(["-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let secs = String::from_utf8_lossy(&stream.stdout).trim().parse::<f64>().ok();
    (
        field("nb_read_frames=").parse().unwrap(),
        secs.unwrap_or_else(|| field("duration=").parse().unwrap()),
    )
}

pub fn package(store: &Path, title: &str, target: &str, inputs: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", title, "--store"])
        .arg(store)
        .args(["--target", target])
        .args(inputs)
        .output()
        .unwrap()
}

/// No error line when ffmpeg decodes the whole title through `manifest`.
pub fn plays(manifest: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(manifest)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: {err}",
        manifest.display()
    );
}

/// Checks one packaged title against its single source file: the n-th
/// rendition of a kind against the n-th stream of that kind.
pub fn check(store: &Path, title: &str, source: &Path, target: f64, gop: f64) -> TitleIndex {
    let dir = store.join(title);
    let index: TitleIndex = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for f in &index.files {
        let data = std::fs::read(dir.join(&f.path)).unwrap();
        assert_eq!(
            (data.len() as u64, sha256_hex(&data)),
            (f.size, f.sha256.clone()),
            "{}",
            f.path
        );
    }
    let mut seen = [0usize; 2];
    for r in &index.renditions {
        let (kind, slot) = if r.kind == "video" { ("v", 0) } else { ("a", 1) };
        let nth = seen[slot];
        seen[slot] += 1;
        let rdir = dir.join(&r.name);
        let mut whole = std::fs::read(rdir.join("init.mp4")).unwrap();
        let playlist = std::fs::read_to_string(rdir.join("index.m3u8")).unwrap();
        let segs: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".m4s")).collect();
        assert_eq!(segs.len(), r.segments);
        for s in &segs {
            whole.extend(std::fs::read(rdir.join(s)).unwrap());
        }
        let joined = dir.join(format!("{}-joined.mp4", r.name));
        std::fs::write(&joined, whole).unwrap();
        let (frames, secs) = probe(&joined, kind, 0);
        std::fs::remove_file(&joined).unwrap();
        let (src_frames, src_secs) = probe(source, kind, nth);
        let frame = src_secs / src_frames as f64;
        assert!(
            frames.abs_diff(src_frames) <= 1,
            "{title}/{}: {frames} frames, source {src_frames}",
            r.name
        );
        assert!(
            (secs - src_secs).abs() <= frame * 1.01 + 0.001,
            "{title}/{}: {secs} s, source {src_secs}",
            r.name
        );
        // Segment durations within one GOP of the target (the last may be short).
        let durs: Vec<f64> = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(',').parse().unwrap())
            .collect();
        for d in &durs[..durs.len() - 1] {
            assert!(
                (d - target).abs() <= gop + 0.05,
                "{title}/{}: segment of {d} s, target {target}, GOP {gop}",
                r.name
            );
        }
    }
    plays(&dir.join("master.m3u8"));
    plays(&dir.join("manifest.mpd"));
    index
}
