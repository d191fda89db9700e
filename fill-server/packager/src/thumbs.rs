//! Thumbnails for scrubbing: one picture every `interval` seconds, laid
//! out `cols`×`rows` per JPEG tile, made by ffmpeg from the title's
//! largest video rendition. Published as a DASH image adaptation set
//! (DASH-IF thumbnail tiles: `EssentialProperty` thumbnail_tile) and an
//! HLS image playlist (`EXT-X-IMAGE-STREAM-INF`, `EXT-X-TILES`, the form
//! Roku and Shaka Player read), in the folder `thumbs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// The folder of a title's tiles.
pub const FOLDER: &str = "thumbs";

#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("--thumbnails takes WIDTH:INTERVAL:COLSxROWS (e.g. 160:2:5x5), got '{0}'")]
    BadArg(String),
    #[error("thumbnails: width {0} is outside 32-1920, interval outside 0.5-60 s, or a grid outside 1-20 a side")]
    OutOfRange(String),
    #[error("thumbnails need a video rendition")]
    NoVideo,
    #[error("running ffmpeg for thumbnails of {path}: {error}")]
    Ffmpeg { path: PathBuf, error: String },
    #[error("reading the tiles in {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
}

/// `--thumbnails WIDTH:INTERVAL:COLSxROWS`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThumbOptions {
    /// Width of one picture (its height keeps the video's aspect).
    pub width: u16,
    /// Seconds between pictures.
    pub interval: f64,
    pub cols: u32,
    pub rows: u32,
}

impl FromStr for ThumbOptions {
    type Err = ThumbError;

    fn from_str(s: &str) -> Result<Self, ThumbError> {
        let bad = || ThumbError::BadArg(s.to_string());
        let mut parts = s.split(':');
        let (w, i, grid) = (parts.next(), parts.next(), parts.next());
        let (Some(w), Some(i), Some(grid), None) = (w, i, grid, parts.next()) else {
            return Err(bad());
        };
        let (c, r) = grid.split_once('x').ok_or_else(bad)?;
        let o = ThumbOptions {
            width: w.parse().map_err(|_| bad())?,
            interval: i.parse().map_err(|_| bad())?,
            cols: c.parse().map_err(|_| bad())?,
            rows: r.parse().map_err(|_| bad())?,
        };
        let grid_ok = |n: u32| (1..=20).contains(&n);
        if !(32..=1920).contains(&o.width)
            || !(0.5..=60.0).contains(&o.interval)
            || !grid_ok(o.cols)
            || !grid_ok(o.rows)
        {
            return Err(ThumbError::OutOfRange(s.to_string()));
        }
        Ok(o)
    }
}

/// What the manifests need of a title's tiles.
#[derive(Clone, Debug)]
pub struct Thumbnails {
    pub opts: ThumbOptions,
    /// One picture's size (even numbers).
    pub width: u16,
    pub height: u16,
    /// Tile files, in order (`tile-NNNNN.jpg`), with their sizes.
    pub tiles: Vec<(String, u64)>,
    /// The title's duration, seconds.
    pub duration: f64,
}

impl Thumbnails {
    /// Seconds one tile covers.
    pub fn tile_secs(&self) -> f64 {
        self.opts.interval * f64::from(self.opts.cols * self.opts.rows)
    }

    /// Highest tile bitrate, bits/s.
    pub fn bandwidth(&self) -> u64 {
        let max = self.tiles.iter().map(|t| t.1).max().unwrap_or(0);
        ((max * 8) as f64 / self.tile_secs()).ceil().max(1.0) as u64
    }

    /// A tile's size in pixels.
    pub fn tile_size(&self) -> (u32, u32) {
        (
            u32::from(self.width) * self.opts.cols,
            u32::from(self.height) * self.opts.rows,
        )
    }
}

/// Makes the tiles of `source` (a video file of `width`×`height`, the
/// title lasting `duration` s) in `work`; returns them with their files.
pub fn make(
    source: &Path,
    (width, height): (u16, u16),
    duration: f64,
    opts: &ThumbOptions,
    work: &Path,
) -> Result<(Thumbnails, Vec<crate::store::TitleFile>), ThumbError> {
    if width == 0 || height == 0 {
        return Err(ThumbError::NoVideo);
    }
    let ffmpeg_err = |error: String| ThumbError::Ffmpeg {
        path: source.to_path_buf(),
        error,
    };
    let w = opts.width & !1;
    let h = ((f64::from(w) * f64::from(height) / f64::from(width) / 2.0).round() as u16 * 2).max(2);
    // A folder of its own: every tile-*.jpg in it is read back.
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| ffmpeg_err(e.to_string()))?;
    let filter = format!("fps=1/{},scale={w}:{h},tile={}x{}", opts.interval, opts.cols, opts.rows);
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(source)
        .args(["-map", "0:v:0", "-vf", &filter, "-q:v", "5", "-f", "image2"])
        .arg(work.join("tile-%05d.jpg"))
        .output()
        .map_err(|e| ffmpeg_err(e.to_string()))?;
    if !out.status.success() {
        return Err(ffmpeg_err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    // As many tiles as ffmpeg made (the last one partly filled).
    let read_err = |error| ThumbError::Read {
        path: work.to_path_buf(),
        error,
    };
    let mut names: Vec<String> = std::fs::read_dir(work)
        .map_err(read_err)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("tile-") && n.ends_with(".jpg"))
        .collect();
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = work.join(&name);
        let bytes = std::fs::read(&path).map_err(|error| ThumbError::Read { path, error })?;
        files.push((format!("{FOLDER}/{name}"), bytes));
    }
    let thumbs = Thumbnails {
        opts: *opts,
        width: w,
        height: h,
        tiles: files
            .iter()
            .map(|(p, b)| (p.trim_start_matches(&format!("{FOLDER}/")).to_string(), b.len() as u64))
            .collect(),
        duration,
    };
    Ok((thumbs, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o: ThumbOptions = "160:2:5x4".parse().unwrap();
        assert_eq!((o.width, o.interval, o.cols, o.rows), (160, 2.0, 5, 4));
        for bad in [
            "160:2",
            "160:2:5",
            "x:2:5x5",
            "160:2:5x5:1",
            "16:2:5x5",
            "160:0.1:5x5",
            "160:2:50x5",
        ] {
            assert!(bad.parse::<ThumbOptions>().is_err(), "{bad}");
        }
    }
}
