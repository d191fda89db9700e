//! Helpers the end-to-end tests share (the tests themselves are in
//! `tests/`).

use std::path::PathBuf;
use std::process::Command;

/// The committed sample title's renditions (three H.264 rungs, AAC in the
/// first).
pub fn sample_inputs() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fill-server/packager/sample");
    ["360p.mp4", "240p.mp4", "144p.mp4"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

/// A real player (ffmpeg) decodes the whole title at `url` without an
/// error line.
pub fn assert_plays(url: &str) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url, "-f", "null", "-"])
        .output()
        .expect("ffmpeg installed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{url}: {err}");
}
