//! Packaging one title: inputs → CMAF tracks, playlists, MPD and the title
//! index, written into a hidden temporary folder of the origin store and
//! renamed into place only when all of it is on disk. Any error removes
//! the temporary folder, so the store holds the old title or the new one,
//! never a part.

use std::path::{Path, PathBuf};

use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cenc::keys::{uuid, KeyStoreError};
use crate::cenc::{CencError, KeyStore, Scheme, TitleKeys, TrackCrypto};
use crate::cmaf::{init_segment, media_segment, plan, plan_segments, SegmentPlan};
use crate::index::{FileEntry, IndexProtection, RenditionEntry, TitleIndex};
use crate::manifest::{dash, hls};
use crate::mp4::{Movie, Mp4Error, Track, TrackKind};
use crate::rendition::{
    segment_file, KeyRange, Protection, Rendition, SegmentInfo, IFRAME_PLAYLIST, INIT_FILE, MEDIA_PLAYLIST,
};
pub use crate::store::{write_file, write_index, write_title_dir};
use crate::text::{TextError, TextSource};

mod extras;
pub use crate::rendition::Manifested;
use extras::{segment_error, write_text, write_thumbs, write_trick};

pub const MASTER_PLAYLIST: &str = "master.m3u8";
pub const DASH_MANIFEST: &str = "manifest.mpd";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {problem}")]
    Input { path: PathBuf, problem: Mp4Error },
    #[error("{0}: every file of a title is named rendition/file, each a plain name")]
    BadName(#[from] nearcast_common::NameError),
    #[error("target segment duration {0} s is outside 1-10 s")]
    BadTarget(f64),
    #[error("no inputs given")]
    NoInputs,
    #[error("writing {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{path}: {source}")]
    Encrypt { path: PathBuf, source: CencError },
    #[error("key store: {0}")]
    KeyStore(#[from] KeyStoreError),
    #[error("the key store {0} is inside the origin store: keys must never reach a box")]
    KeyStoreInOrigin(PathBuf),
    #[error("license URL '{0}' is not an absolute http(s) URL (players fetch keys from it)")]
    BadLicenseUrl(String),
    #[error("CPIX document {path}: {source}")]
    Cpix {
        path: PathBuf,
        source: crate::cenc::cpix::CpixError,
    },
    #[error("reading {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("--key-per-rung-group takes its keys from the key store, not from a CPIX document")]
    CpixGroups,
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Thumbs(#[from] crate::thumbs::ThumbError),
}

pub struct Options {
    pub title: nearcast_common::Name,
    /// The origin store: the title lands in `store/{title}/`.
    pub store: PathBuf,
    /// Target segment duration in seconds (1-10).
    pub target: f64,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Encrypt the title (None: in the clear).
    pub encrypt: Option<Encryption>,
    /// Subtitles and thumbnails.
    pub extras: Extras,
}

/// What a title carries besides video and audio.
#[derive(Clone, Debug)]
pub struct Extras {
    /// WebVTT sidecar files.
    pub subtitles: Vec<crate::text::SubtitleArg>,
    /// Also package the inputs' own text tracks (`tx3g`, `wvtt`).
    pub embedded_text: bool,
    /// Thumbnail tiles for scrubbing (made with ffmpeg).
    pub thumbnails: Option<crate::thumbs::ThumbOptions>,
}

impl Default for Extras {
    fn default() -> Self {
        Extras {
            subtitles: Vec::new(),
            embedded_text: true,
            thumbnails: None,
        }
    }
}

/// How to encrypt a title.
#[derive(Clone, Debug)]
pub struct Encryption {
    pub scheme: Scheme,
    /// The key store folder (never inside the origin store).
    pub key_store: PathBuf,
    /// The license service players reach (absolute URL).
    pub license_url: String,
    /// Keys and other systems' signalling from this CPIX document
    /// (instead of the stored or new keys).
    pub cpix: Option<PathBuf>,
    /// A key per video rung group (SD < 720p ≤ HD < 2160p ≤ UHD) instead
    /// of one for all video.
    pub key_per_rung_group: bool,
}

/// A title's keys and each chosen track's encryption.
struct Crypto {
    keys: TitleKeys,
    tracks: Vec<TrackCrypto>,
    license_url: String,
}

/// Packages `inputs` (one or more MP4 renditions of one title).
pub fn package(inputs: &[PathBuf], opts: &Options) -> Result<TitleIndex, PackageError> {
    if !(1.0..=10.0).contains(&opts.target) {
        return Err(PackageError::BadTarget(opts.target));
    }
    if inputs.is_empty() {
        return Err(PackageError::NoInputs);
    }
    let movies: Vec<Movie> = inputs
        .iter()
        .map(|p| {
            Movie::open(p).map_err(|source| PackageError::Input {
                path: p.clone(),
                problem: source,
            })
        })
        .collect::<Result<_, _>>()?;
    let chosen = choose_tracks(&movies);
    let texts = crate::text::sources(&opts.extras.subtitles, &movies, opts.extras.embedded_text)?;
    let crypto = match &opts.encrypt {
        Some(e) => Some(prepare_crypto(e, opts, &movies, &chosen)?),
        None => None,
    };
    write_title_dir(&opts.store, &opts.title, |tmp| {
        let index = write_title(&movies, &chosen, &texts, tmp, opts, crypto.as_ref())?;
        if let (Some(c), Some(e)) = (&crypto, &opts.encrypt) {
            // Before the title appears: a published encrypted title
            // always has its keys.
            KeyStore::new(&e.key_store).save(&c.keys)?;
        }
        Ok(index)
    })
}

/// A CPIX document from `path` (at most `cpix::MAX_LEN` bytes).
fn read_cpix(path: &Path) -> Result<crate::cenc::cpix::Cpix, PackageError> {
    let read = |error| PackageError::Read {
        path: path.to_path_buf(),
        error,
    };
    let cpix_err = |source| PackageError::Cpix {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).map_err(read)?.len() > crate::cenc::cpix::MAX_LEN as u64 {
        return Err(cpix_err(crate::cenc::cpix::CpixError::TooLarge));
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    crate::cenc::cpix::parse(&text).map_err(cpix_err)
}

/// Checks the encryption options and makes each chosen track's
/// encryption (the title's stored keys, or new ones), before anything is
/// written.
fn prepare_crypto(
    e: &Encryption,
    opts: &Options,
    movies: &[Movie],
    chosen: &[(usize, usize, String)],
) -> Result<Crypto, PackageError> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if absolute(&e.key_store).starts_with(absolute(&opts.store)) {
        return Err(PackageError::KeyStoreInOrigin(e.key_store.clone()));
    }
    let url = &e.license_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(['"', '<', '>', ' ', '\n']) {
        return Err(PackageError::BadLicenseUrl(url.clone()));
    }
    let mut keys = match &e.cpix {
        Some(_) if e.key_per_rung_group => return Err(PackageError::CpixGroups),
        Some(path) => TitleKeys::from_cpix(&opts.title, e.scheme, &read_cpix(path)?),
        None => KeyStore::new(&e.key_store).keys_for(&opts.title, e.scheme)?,
    };
    let group = |track: &Track| match track.kind {
        TrackKind::Audio => "audio",
        TrackKind::Video if e.key_per_rung_group => crate::cenc::keys::rung_group(track.codec.height),
        TrackKind::Video => "video",
    };
    for (m, t, _) in chosen {
        keys.ensure(group(&movies[*m].tracks[*t]));
    }
    let tracks = chosen
        .iter()
        .map(|(m, t, _)| {
            let (movie, track) = (&movies[*m], &movies[*m].tracks[*t]);
            let key = keys.key(group(track))?;
            let mut c = TrackCrypto::new(e.scheme, key, track).map_err(|source| PackageError::Encrypt {
                path: movie.path.clone(),
                source,
            })?;
            c.extra_pssh = keys
                .systems_of(&key.kid)
                .iter()
                .filter_map(|s| s.pssh.as_ref())
                .filter_map(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
                .collect();
            Ok(c)
        })
        .collect::<Result<_, PackageError>>()?;
    Ok(Crypto {
        keys,
        tracks,
        license_url: url.trim_end_matches('/').to_string(),
    })
}

/// (movie index, track index, rendition name): every video track, and the
/// audio tracks without the copies that every rung of a ladder carries.
fn choose_tracks(movies: &[Movie]) -> Vec<(usize, usize, String)> {
    let mut out: Vec<(usize, usize, String)> = Vec::new();
    let mut seen_audio: Vec<(&[u8], usize, u64)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for kind in [TrackKind::Video, TrackKind::Audio] {
        for (m, movie) in movies.iter().enumerate() {
            for (t, track) in movie.tracks.iter().enumerate().filter(|(_, t)| t.kind == kind) {
                if kind == TrackKind::Audio {
                    let key = (
                        track.sample_entry.1.as_slice(),
                        track.samples.len(),
                        track.samples.iter().map(|s| u64::from(s.size)).sum(),
                    );
                    if seen_audio.contains(&key) {
                        continue;
                    }
                    seen_audio.push(key);
                }
                let base = match kind {
                    TrackKind::Video => format!("{}p", track.codec.height),
                    TrackKind::Audio => format!("audio-{}", track.language),
                };
                let mut name = base.clone();
                let mut n = 2;
                while names.contains(&name) {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                names.push(name.clone());
                out.push((m, t, name));
            }
        }
    }
    out
}

fn write_title(
    movies: &[Movie],
    chosen: &[(usize, usize, String)],
    texts: &[TextSource],
    dir: &Path,
    opts: &Options,
    crypto: Option<&Crypto>,
) -> Result<TitleIndex, PackageError> {
    let total: u64 = chosen
        .iter()
        .map(|(m, t, _)| movies[*m].tracks[*t].samples.len() as u64)
        .sum();
    let bar = progress_bar(total, opts.progress);
    // Video first: audio follows the first video track's boundaries.
    let mut follow: Option<Vec<f64>> = None;
    let mut files: Vec<FileEntry> = Vec::new();
    let mut renditions: Vec<Rendition> = Vec::new();
    for (i, (m, t, name)) in chosen.iter().enumerate() {
        let (movie, track) = (&movies[*m], &movies[*m].tracks[*t]);
        bar.set_message(name.clone());
        let segments = plan_segments(track, opts.target, follow.as_deref());
        if track.kind == TrackKind::Video && follow.is_none() {
            follow = Some(plan::boundaries(track, &segments));
        }
        let track_crypto = crypto.map(|c| &c.tracks[i]);
        let out = Out {
            dir,
            files: &mut files,
            bar: &bar,
        };
        let infos = write_segments(movie, track, name, &segments, track_crypto, out)?;
        let protection = crypto.zip(track_crypto).map(|(c, tc)| Protection {
            scheme: tc.scheme,
            kid: tc.key.kid,
            license_url: c.license_url.clone(),
            systems: c.keys.systems_of(&tc.key.kid),
        });
        renditions.push(rendition(track, name, infos, protection));
    }
    bar.finish_and_clear();
    let lowest = (0..renditions.len())
        .filter(|&i| renditions[i].kind == TrackKind::Video)
        .min_by_key(|&i| renditions[i].peak_bandwidth());
    if let Some(i) = lowest {
        let (m, t, name) = &chosen[i];
        let track_crypto = crypto.map(|c| &c.tracks[i]);
        let out = Out {
            dir,
            files: &mut files,
            bar: &bar,
        };
        renditions[i].trick = write_trick(
            &movies[*m],
            &movies[*m].tracks[*t],
            name,
            &renditions[i],
            track_crypto,
            out,
        )?;
    }
    let duration_secs = renditions.iter().map(|r| r.duration_secs()).fold(0.0, f64::max);
    let grid = crate::text::grid(
        follow.as_deref().unwrap_or(&[]),
        opts.target,
        (duration_secs * 1000.0).ceil() as u64,
    );
    let mut taken: Vec<String> = chosen.iter().map(|(_, _, n)| n.clone()).collect();
    let mut text_renditions = Vec::with_capacity(texts.len());
    for src in texts {
        let name = crate::text::folder_name(src, &taken);
        text_renditions.push(write_text(src, &name, &grid, dir, &mut files)?);
        taken.push(name);
    }
    let thumbs = match &opts.extras.thumbnails {
        Some(t) => Some(write_thumbs(movies, chosen, t, duration_secs, dir, &mut files)?),
        None => None,
    };
    let extras = Manifested {
        texts: &text_renditions,
        thumbs: thumbs.as_ref(),
    };
    write_manifests(&renditions, &extras, dir, opts.target, &mut files)?;
    let mut entries: Vec<RenditionEntry> = renditions.iter().map(RenditionEntry::from).collect();
    entries.extend(text_renditions.iter().map(RenditionEntry::from));
    entries.extend(thumbs.iter().map(RenditionEntry::from));
    let index = TitleIndex {
        title: opts.title.clone(),
        version: 1,
        duration_secs,
        target_duration_secs: opts.target,
        renditions: entries,
        files,
        protection: crypto.map(index_protection),
    };
    write_index(dir, index)
}

fn index_protection(c: &Crypto) -> IndexProtection {
    let mut kids: Vec<String> = c.tracks.iter().map(|t| uuid(&t.key.kid)).collect();
    kids.sort();
    kids.dedup();
    IndexProtection {
        scheme: c.keys.scheme,
        license_url: c.license_url.clone(),
        kids,
    }
}

/// A bar on the terminal over `total` samples, or a hidden one.
fn progress_bar(total: u64, shown: bool) -> ProgressBar {
    let bar = if shown {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {percent:>3}% {pos}/{len} samples, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Where a rendition's files go: the title folder, its index entries,
/// the progress bar.
struct Out<'a> {
    dir: &'a Path,
    files: &'a mut Vec<FileEntry>,
    bar: &'a ProgressBar,
}

/// One rendition's init segment and media segments (encrypted by
/// `crypto` if given), written under `dir/name/` (each added to
/// `files`); what the playlists need of them.
fn write_segments(
    movie: &Movie,
    track: &Track,
    name: &str,
    segments: &SegmentPlan,
    crypto: Option<&TrackCrypto>,
    out: Out,
) -> Result<Vec<SegmentInfo>, PackageError> {
    let Out { dir, files, bar } = out;
    let rdir = dir.join(name);
    std::fs::create_dir_all(&rdir).map_err(|source| PackageError::Write {
        path: rdir.clone(),
        error: source,
    })?;
    files.push(write_file(
        dir,
        &format!("{name}/{INIT_FILE}"),
        &init_segment(track, crypto),
    )?);
    let mut infos = Vec::with_capacity(segments.len());
    let mut fragments = 1;
    let video = track.kind == TrackKind::Video;
    for (i, range) in segments.iter().enumerate() {
        let samples = &track.samples[range.clone()];
        let encrypt = crypto.map(|c| (c, range.start as u64));
        let data =
            media_segment(movie, &mut fragments, samples, encrypt, video).map_err(|e| segment_error(movie, e))?;
        let file = segment_file(i + 1);
        let entry = write_file(dir, &format!("{name}/{file}"), &data.bytes)?;
        infos.push(SegmentInfo {
            file,
            start: samples[0].dts,
            duration: samples.iter().map(|s| u64::from(s.duration)).sum(),
            bytes: entry.size,
            keys: data
                .keys
                .iter()
                .map(|&(offset, len, k)| KeyRange {
                    offset,
                    len,
                    dts: samples[k].dts,
                    sample: range.start + k,
                })
                .collect(),
        });
        files.push(entry);
        bar.inc(samples.len() as u64);
    }
    Ok(infos)
}

/// The media playlists, the multivariant playlist and the MPD.
fn write_manifests(
    renditions: &[Rendition],
    extras: &Manifested,
    dir: &Path,
    target: f64,
    files: &mut Vec<FileEntry>,
) -> Result<(), PackageError> {
    for r in renditions {
        files.push(write_file(
            dir,
            &format!("{}/{MEDIA_PLAYLIST}", r.name),
            hls::media_playlist(r).as_bytes(),
        )?);
        if r.kind == TrackKind::Video {
            files.push(write_file(
                dir,
                &format!("{}/{IFRAME_PLAYLIST}", r.name),
                hls::iframe_playlist(r).as_bytes(),
            )?);
        }
    }
    for t in extras.texts {
        files.push(write_file(
            dir,
            &format!("{}/{MEDIA_PLAYLIST}", t.name),
            hls::text_playlist(t).as_bytes(),
        )?);
    }
    if let Some(t) = extras.thumbs {
        files.push(write_file(
            dir,
            &format!("{}/{MEDIA_PLAYLIST}", crate::thumbs::FOLDER),
            hls::image_playlist(t).as_bytes(),
        )?);
    }
    files.push(write_file(
        dir,
        MASTER_PLAYLIST,
        hls::multivariant_playlist(renditions, extras).as_bytes(),
    )?);
    files.push(write_file(
        dir,
        DASH_MANIFEST,
        dash::mpd(renditions, extras, target).as_bytes(),
    )?);
    Ok(())
}

fn rendition(track: &Track, name: &str, segments: Vec<SegmentInfo>, protection: Option<Protection>) -> Rendition {
    Rendition {
        name: name.to_string(),
        kind: track.kind,
        codec: track.codec.clone(),
        timescale: track.timescale,
        language: track.language.clone(),
        frame_rate: track.frame_rate(),
        segments,
        protection,
        trick: Vec::new(),
    }
}
