//! `nearcast-packager`: package a title for the origin store.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nearcast_packager::ladder::{
    make_ladder, Choice, LadderOptions, PerTitle, Policy, Rate, Rung, Sampling, VideoCodec, DEFAULT_RUNGS,
};
use nearcast_packager::{package, Options};

/// Package video titles into CMAF segments with HLS and DASH manifests.
///
/// The title is written to STORE/TITLE/ (renditions in sub-folders,
/// master.m3u8, manifest.mpd, and index.json with the size and SHA-256 of
/// every file). It appears only when complete; on error nothing is left.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug)]
struct Common {
    /// The title's name (its folder and its URL segment): A-Z a-z 0-9 . _ -
    #[arg(long)]
    title: nearcast_common::Name,
    /// The origin store folder.
    #[arg(long)]
    store: PathBuf,
    /// Target segment duration in seconds (1-10); segments are cut at the
    /// keyframe nearest each target boundary.
    #[arg(long, default_value_t = 4.0)]
    target: f64,
    /// Encrypt with Common Encryption: cenc (AES-CTR) or cbcs (AES-CBC,
    /// 1:9 pattern). Keys go to --key-store, never to the origin store.
    #[arg(long, requires_all = ["key_store", "license_url"])]
    encrypt: Option<nearcast_packager::cenc::Scheme>,
    /// The key store folder: STORE/TITLE.json per title (mode 0600). A
    /// title packaged again keeps its keys.
    #[arg(long)]
    key_store: Option<PathBuf>,
    /// The license service players reach, e.g.
    /// https://fill.example/v1/license (in the manifests).
    #[arg(long)]
    license_url: Option<String>,
    /// Take the keys, and other DRM systems' pssh and signalling, from
    /// this DASH-IF CPIX document (a multi-DRM service's).
    #[arg(long, requires = "encrypt")]
    cpix: Option<PathBuf>,
    /// A key per video rung group (SD below 720p, HD below 2160p, UHD)
    /// instead of one for all video.
    #[arg(long, requires = "encrypt")]
    key_per_rung_group: bool,
    /// A WebVTT subtitles file as LANG[:default][:forced][:sdh]=FILE
    /// (LANG an ISO 639 code: en, fr, pt-BR); repeat for more. Packaged
    /// as WebVTT for HLS and CMAF wvtt for DASH.
    #[arg(long = "subtitles", value_name = "LANG=FILE")]
    subtitles: Vec<nearcast_packager::text::SubtitleArg>,
    /// Leave out the inputs' own text tracks (mov_text, wvtt).
    #[arg(long)]
    no_embedded_text: bool,
    /// Thumbnail tiles for scrubbing as WIDTH:INTERVAL:COLSxROWS, e.g.
    /// 160:2:5x5 (a 160 px picture every 2 s, 25 per JPEG tile), made
    /// with ffmpeg from the largest video rendition.
    #[arg(long, value_name = "W:S:CxR")]
    thumbnails: Option<nearcast_packager::thumbs::ThumbOptions>,
}

#[derive(Args, Debug)]
struct LadderArgs {
    /// Rungs as HEIGHT:KBPS, comma-separated (with --per-title, the most
    /// each rung may spend).
    #[arg(long, default_value = DEFAULT_RUNGS, value_delimiter = ',')]
    rungs: Vec<Rung>,
    /// Video codec of the renditions.
    #[arg(long, value_enum, default_value = "h264")]
    codec: VideoCodec,
    /// Seconds between keyframes in every rung.
    #[arg(long, default_value_t = 2.0)]
    gop: f64,
    /// AAC audio bitrate in kbit/s.
    #[arg(long, default_value_t = 128)]
    audio_kbps: u32,
    /// Where to keep the rendition MP4s (default: a temporary folder,
    /// removed afterwards).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Pick each rung's bitrate for this title: trial encodes of sampled
    /// clips at a few CRF values find the rate that reaches
    /// --target-psnr, never above the rung's own rate.
    #[arg(long)]
    per_title: bool,
    /// The quality the per-title ladder aims at, in dB of PSNR against
    /// the source scaled to the rung.
    #[arg(long, default_value_t = Policy::default().target_psnr, requires = "per_title")]
    target_psnr: f64,
    /// Clips the per-title trials sample, spread over the title.
    #[arg(long, default_value_t = Sampling::default().clips, requires = "per_title")]
    trial_clips: usize,
    /// Seconds per sampled clip.
    #[arg(long, default_value_t = Sampling::default().clip_secs, requires = "per_title")]
    trial_secs: f64,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Package existing MP4 renditions (H.264/HEVC/AV1 video, AAC/Opus
    /// audio; audio may be muxed or in its own file).
    Package {
        #[command(flatten)]
        common: Common,
        /// The renditions, one MP4 file each.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Make a ladder of renditions from one mezzanine file with ffmpeg,
    /// then package them.
    Ladder {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        ladder: LadderArgs,
        /// The source file.
        mezzanine: PathBuf,
    },
    /// Print an encrypted title's keys as a DASH-IF CPIX document (for a
    /// multi-DRM service), from the key store.
    Cpix {
        #[arg(long)]
        title: nearcast_common::Name,
        #[arg(long)]
        key_store: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (common, inputs, cleanup) = match cli.command {
        Cmd::Cpix { title, key_store } => return export_cpix(&title, &key_store),
        Cmd::Package { common, inputs } => (common, inputs, None),
        Cmd::Ladder {
            common,
            ladder,
            mezzanine,
        } => {
            let (made, cleanup) = ladder_step(&mezzanine, ladder, progress)?;
            (common, made, cleanup)
        }
    };
    let opts = options(common, progress);
    let result = package(&inputs, &opts);
    if let Some(dir) = cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    let index = result.context("packaging failed")?;
    let bytes: u64 = index.files.iter().map(|f| f.size).sum();
    println!(
        "packaged '{}'{}: {} renditions, {:.1} s, {} files, {:.1} MB in {}",
        index.title,
        match &index.protection {
            Some(p) => format!(" ({}, key IDs {})", p.scheme.as_str(), p.kids.join(" ")),
            None => String::new(),
        },
        index.renditions.len(),
        index.duration_secs,
        index.files.len(),
        bytes as f64 / 1e6,
        opts.store.join(&index.title).display()
    );
    Ok(())
}

/// Runs the ladder step; the renditions and the folder to remove after.
fn ladder_step(mezzanine: &Path, a: LadderArgs, progress: bool) -> anyhow::Result<(Vec<PathBuf>, Option<PathBuf>)> {
    if a.per_title && !(a.trial_secs >= 0.5 && a.trial_clips >= 1 && (20.0..=100.0).contains(&a.target_psnr)) {
        anyhow::bail!("--per-title needs --trial-secs of 0.5 or more, --trial-clips of 1 or more and --target-psnr between 20 and 100 dB");
    }
    let (work, cleanup) = match a.work {
        Some(w) => (w, None),
        None => {
            let w = std::env::temp_dir().join(format!("nearcast-ladder-{}", std::process::id()));
            (w.clone(), Some(w))
        }
    };
    let bar = if progress {
        ProgressBar::new(a.rungs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} encodes, {elapsed}",
    )?);
    bar.set_message("encoding");
    let per_title = a.per_title.then(|| PerTitle {
        policy: Policy {
            target_psnr: a.target_psnr,
            ..Policy::default()
        },
        sampling: Sampling {
            clips: a.trial_clips,
            clip_secs: a.trial_secs,
        },
    });
    let opts = LadderOptions {
        rungs: a.rungs,
        codec: a.codec,
        gop: a.gop,
        audio_kbps: a.audio_kbps,
        work,
        per_title,
    };
    let made = make_ladder(mezzanine, &opts, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    });
    bar.finish_and_clear();
    let made = made.with_context(|| format!("making the ladder from {}", mezzanine.display()))?;
    if let Some(choices) = &made.choices {
        println!("{}", per_title_summary(choices, a.target_psnr));
    }
    Ok((made.files, cleanup))
}

/// `per-title ladder (45 dB PSNR): 1080p CRF 31.2 capped at 4500 (needs 270), 720p fixed 2500 (target not reached), …`
fn per_title_summary(choices: &[Choice], target: f64) -> String {
    let rungs: Vec<String> = choices
        .iter()
        .map(|c| {
            let needs = match c.needed_kbps {
                Some(n) => format!("needs {n}"),
                None => "target not reached".to_string(),
            };
            let how = match c.rate {
                Rate::CappedCrf { crf, .. } => format!("CRF {crf:.1} capped at {}", c.fixed_kbps),
                _ => format!("fixed {}", c.fixed_kbps),
            };
            format!("{}p {how} ({needs})", c.height)
        })
        .collect();
    format!("per-title ladder ({target} dB PSNR): {}", rungs.join(", "))
}

/// What to package, from the command line.
fn options(common: Common, progress: bool) -> Options {
    Options {
        title: common.title,
        store: common.store,
        target: common.target,
        progress,
        encrypt: common.encrypt.map(|scheme| nearcast_packager::package::Encryption {
            scheme,
            key_store: common.key_store.unwrap_or_default(),
            license_url: common.license_url.unwrap_or_default(),
            cpix: common.cpix,
            key_per_rung_group: common.key_per_rung_group,
        }),
        extras: nearcast_packager::package::Extras {
            subtitles: common.subtitles,
            embedded_text: !common.no_embedded_text,
            thumbnails: common.thumbnails,
        },
    }
}

/// `cpix`: the title's keys from the key store, as CPIX on stdout.
fn export_cpix(title: &str, key_store: &std::path::Path) -> anyhow::Result<()> {
    let keys = nearcast_packager::cenc::KeyStore::new(key_store)
        .load(title)?
        .with_context(|| format!("no keys for '{title}' in {}", key_store.display()))?;
    let doc = nearcast_packager::cenc::cpix::write(title, keys.key("video")?, keys.key("audio")?, &keys.systems);
    print!("{doc}");
    Ok(())
}
