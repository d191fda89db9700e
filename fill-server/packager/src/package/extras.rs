//! A title's extras written beside its renditions: text renditions,
//! thumbnail tiles and DASH trick-mode segments, with what the manifests
//! need of them.

use std::path::Path;

use super::{write_file, Out, PackageError};
use crate::cenc::TrackCrypto;
use crate::cmaf::{media_segment, SegmentError};
use crate::index::FileEntry;
use crate::mp4::{Movie, Track, TrackKind};
use crate::rendition::{trick_file, Rendition, TrickSegment};
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
    // Beside the title's own temporary folder, so unique to it.
    let work = dir.with_file_name(format!(
        "{}-thumbs",
        dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
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

/// The DASH trick-mode segments of rendition `r` (track `track` of
/// `movie`): each keyframe alone, lasting until the next one.
pub(super) fn write_trick(
    movie: &Movie,
    track: &Track,
    name: &str,
    r: &Rendition,
    crypto: Option<&TrackCrypto>,
    out: Out,
) -> Result<Vec<TrickSegment>, PackageError> {
    let mut fragments = 1;
    let mut trick = Vec::new();
    for (n, (_, k, duration)) in r.keyframes().into_iter().enumerate() {
        let sample = crate::mp4::Sample {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            ..track.samples[k.sample]
        };
        let encrypt = crypto.map(|c| (c, k.sample as u64));
        let data =
            media_segment(movie, &mut fragments, &[sample], encrypt, false).map_err(|e| segment_error(movie, e))?;
        let entry = write_file(out.dir, &format!("{name}/{}", trick_file(n + 1)), &data.bytes)?;
        trick.push(TrickSegment {
            start: k.dts,
            duration,
            bytes: entry.size,
        });
        out.files.push(entry);
    }
    Ok(trick)
}

pub(super) fn segment_error(movie: &Movie, e: SegmentError) -> PackageError {
    match e {
        SegmentError::Read(problem) => PackageError::Input {
            path: movie.path.clone(),
            problem,
        },
        SegmentError::Encrypt(source) => PackageError::Encrypt {
            path: movie.path.clone(),
            source,
        },
    }
}
