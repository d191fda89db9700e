//! A title's extras written beside its renditions: text renditions and
//! thumbnail tiles, with what the manifests need of them.

use std::path::Path;

use super::{write_file, PackageError};
use crate::index::FileEntry;
use crate::mp4::{Movie, TrackKind};
use crate::text::{TextRendition, TextSource};

/// A text rendition's files (both forms) under `dir/name/`.
pub(super) fn write_text(
    src: &TextSource,
    name: &str,
    grid: &[u64],
    dir: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<TextRendition, PackageError> {
    let (rendition, data) = crate::text::render(src, name, grid)?;
    let rdir = dir.join(name);
    std::fs::create_dir_all(&rdir).map_err(|error| PackageError::Write { path: rdir, error })?;
    for (rel, bytes) in data {
        files.push(write_file(dir, &rel, &bytes)?);
    }
    Ok(rendition)
}

/// Thumbnail tiles from the largest video rendition, under `dir/thumbs/`.
pub(super) fn write_thumbs(
    movies: &[Movie],
    chosen: &[(usize, usize, String)],
    opts: &crate::thumbs::ThumbOptions,
    duration: f64,
    dir: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<crate::thumbs::Thumbnails, PackageError> {
    let largest = chosen
        .iter()
        .map(|(m, t, _)| (&movies[*m], &movies[*m].tracks[*t]))
        .filter(|(_, t)| t.kind == TrackKind::Video)
        .max_by_key(|(_, t)| t.codec.height)
        .ok_or(crate::thumbs::ThumbError::NoVideo)?;
    let (movie, track) = largest;
    let work = std::env::temp_dir().join(format!("nearcast-thumbs-{}", std::process::id()));
    let made = crate::thumbs::make(
        &movie.path,
        (track.codec.width, track.codec.height),
        duration,
        opts,
        &work,
    );
    let _ = std::fs::remove_dir_all(&work);
    let (thumbs, data) = made?;
    let tdir = dir.join(crate::thumbs::FOLDER);
    std::fs::create_dir_all(&tdir).map_err(|error| PackageError::Write { path: tdir, error })?;
    for (rel, bytes) in data {
        files.push(write_file(dir, &rel, &bytes)?);
    }
    Ok(thumbs)
}

/// What the manifests list besides video and audio.
pub struct Manifested<'a> {
    pub texts: &'a [TextRendition],
    pub thumbs: Option<&'a crate::thumbs::Thumbnails>,
}
