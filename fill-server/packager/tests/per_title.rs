//! Per-title ladders (`ladder --per-title`): a still source gets far fewer
//! bits than the fixed ladder and still meets the quality target, measured
//! by ffmpeg's psnr filter on the renditions; a noisy source that cannot
//! reach the target keeps the fixed rates. Small pictures keep the trials
//! quick; `benches/ladder/` measures 1080p sources.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const RUNGS: &str = "180:600,90:250";

/// Runs `ladder --per-title` on `mezz`; returns its summary line.
fn per_title(dir: &Path, mezz: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["ladder", "--title", "pt", "--per-title", "--rungs", RUNGS, "--store"])
        .arg(dir.join("store"))
        .arg("--work")
        .arg(dir.join("work"))
        .arg(mezz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("per-title ladder"))
        .unwrap_or_default();
    assert!(!line.is_empty(), "{stdout}");
    line.to_string()
}

/// The BANDWIDTH of each variant in the master playlist, highest first.
fn bandwidths(master: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(master).unwrap();
    let mut b: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .filter_map(|l| l.split("BANDWIDTH=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse().ok())
        .collect();
    b.sort_unstable_by(|x, y| y.cmp(x));
    b
}

/// PSNR (dB) of `enc` against `src` scaled to `height`.
fn psnr(enc: &Path, src: &Path, height: u32) -> f64 {
    let graph = format!("[1:v]scale=-2:{height},format=yuv420p[r];[0:v][r]psnr");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-nostats", "-i"])
        .arg(enc)
        .arg("-i")
        .arg(src)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    nearcast_packager::ladder::trial::measured_psnr(&log).unwrap_or_else(|| panic!("{log}"))
}

#[test]
fn a_still_title_gets_fewer_bits_at_the_target_quality() {
    let dir = temp_dir("per-title-still");
    let mezz = dir.join("still.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=25:duration=4",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        mezz.to_str().unwrap(),
    ]);
    let line = per_title(&dir, &mezz);
    let master = dir.join("store/pt/master.m3u8");
    let b = bandwidths(&master);
    // The fixed ladder would advertise ≥ 600 and ≥ 250 kbit/s.
    assert_eq!(b.len(), 2, "{line}");
    assert!(b[0] < 300_000 && b[1] < b[0], "{line}: {b:?}");
    assert!(line.starts_with("per-title ladder (45 dB PSNR): 180p CRF "), "{line}");
    assert!(line.contains("capped at 600 (needs "), "{line}");
    for (file, height) in [("180p.mp4", 180), ("90p.mp4", 90)] {
        let db = psnr(&dir.join("work").join(file), &mezz, height);
        assert!(db >= 44.5, "{file}: {db:.2} dB, {line}");
    }
    plays(&master);
}

#[test]
fn a_noisy_title_keeps_the_fixed_rates() {
    let dir = temp_dir("per-title-noise");
    let mezz = dir.join("noise.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25:duration=4,noise=alls=40:allf=t+u",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        mezz.to_str().unwrap(),
    ]);
    let line = per_title(&dir, &mezz);
    assert_eq!(
        line,
        "per-title ladder (45 dB PSNR): 180p fixed 600 (target not reached), \
         90p fixed 250 (target not reached)"
    );
    plays(&dir.join("store/pt/master.m3u8"));
}

#[test]
fn per_title_options_need_per_title() {
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args([
            "ladder",
            "--title",
            "x",
            "--store",
            "/nonexistent",
            "--target-psnr",
            "40",
            "in.mp4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--per-title"));
    for bad in [["--trial-secs", "0"], ["--trial-clips", "0"], ["--target-psnr", "5"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
            .args(["ladder", "--title", "x", "--store", "/nonexistent", "--per-title"])
            .args(bad)
            .arg("in.mp4")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--per-title needs"),
            "{bad:?}: {err}"
        );
    }
}
