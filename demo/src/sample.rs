//! The committed sample title (`fill-server/packager/sample/`): its
//! renditions and what it is packaged with besides them.

use std::path::PathBuf;

/// The committed sample title's renditions (three H.264 rungs, AAC in the
/// first).
pub fn sample_inputs() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fill-server/packager/sample");
    ["360p.mp4", "240p.mp4", "144p.mp4"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

/// The sample title's extras: English and French WebVTT subtitles, and
/// thumbnails (160 px wide, every 2 s, 5×5 per tile) where ffmpeg, which
/// makes them, is installed (the demo runs without it).
pub fn sample_extras() -> nearcast_packager::package::Extras {
    let ffmpeg = std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ffmpeg {
        tracing::warn!("no ffmpeg on PATH: the sample title gets no thumbnails");
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fill-server/packager/sample");
    let arg = |lang: &str| nearcast_packager::text::SubtitleArg {
        language: lang.into(),
        roles: Default::default(),
        file: dir.join(format!("{lang}.vtt")),
    };
    nearcast_packager::package::Extras {
        subtitles: vec![arg("en"), arg("fr")],
        embedded_text: true,
        thumbnails: ffmpeg.then_some(nearcast_packager::thumbs::ThumbOptions {
            width: 160,
            interval: 2.0,
            cols: 5,
            rows: 5,
        }),
    }
}
