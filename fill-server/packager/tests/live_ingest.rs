//! Live packaging on what Debian's ffmpeg really writes: its DASH muxer
//! in low-latency streaming mode (2 s segments, 0.5 s fragments), H.264 +
//! AAC and AV1 + Opus, written to files here and fed to the live track in
//! uneven slices as the ingest would receive them. Every segment keeps the
//! encoder's bytes, every part is a whole fragment of about 0.5 s, and the
//! playlist names them all.

use std::path::Path;
use std::process::Command;

use nearcast_packager::cenc::{ContentKey, Scheme};
use nearcast_packager::live::hls::{media_playlist, Playlist};
use nearcast_packager::live::protect::LiveProtection;
use nearcast_packager::live::{LiveInit, LiveTrack, Splitter, TrackOptions};
use nearcast_testkit::TempDir;

/// Runs ffmpeg's DASH muxer into `dir` (file output, the same muxer
/// options as a push to the ingest) for `secs` seconds.
fn dash_ladder(dir: &Path, secs: u32, video: &[&str], audio: &[&str]) {
    let v = format!("testsrc2=size=320x180:rate=30:duration={secs}");
    let a = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let mut args = vec![
        "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a,
    ];
    args.extend_from_slice(&["-map", "0:v", "-map", "1:a"]);
    args.extend_from_slice(video);
    args.extend_from_slice(&["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"]);
    args.extend_from_slice(audio);
    args.extend_from_slice(&[
        "-f",
        "dash",
        "-streaming",
        "1",
        "-ldash",
        "1",
        "-seg_duration",
        "2",
        "-frag_type",
        "duration",
        "-frag_duration",
        "0.5",
        "-use_template",
        "1",
        "-use_timeline",
        "0",
        "-adaptation_sets",
        "id=0,streams=v id=1,streams=a",
        // Opus would go into WebM otherwise.
        "-dash_segment_type",
        "mp4",
    ]);
    let manifest = dir.join("manifest.mpd");
    args.push(manifest.to_str().unwrap());
    let out = Command::new("ffmpeg").args(&args).output().expect("ffmpeg installed");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

/// Feeds stream `n`'s init and segments to a live track, each body in
/// slices of `step` bytes; returns the track and the segment files' bytes.
fn ingest(dir: &Path, n: u32, step: usize) -> (LiveTrack, Vec<Vec<u8>>) {
    ingest_protected(dir, n, step, None)
}

/// `ingest`, the track encrypted with `protect` (scheme, key) if given.
fn ingest_protected(
    dir: &Path,
    n: u32,
    step: usize,
    protect: Option<(Scheme, ContentKey)>,
) -> (LiveTrack, Vec<Vec<u8>>) {
    let init = std::fs::read(dir.join(format!("init-stream{n}.m4s"))).unwrap();
    let init = LiveInit::parse(init).unwrap();
    let protection =
        protect.map(|(scheme, key)| LiveProtection::new(scheme, key, &init, "http://license.test/v1/license").unwrap());
    let mut track = LiveTrack::new(init, TrackOptions::default());
    if let Some(p) = protection {
        track.protect(p).unwrap();
    }
    let mut files = Vec::new();
    for k in 1.. {
        let Ok(body) = std::fs::read(dir.join(format!("chunk-stream{n}-{k:05}.m4s"))) else {
            break;
        };
        track.begin_segment();
        let mut split = Splitter::new(16 << 20);
        for slice in body.chunks(step) {
            for b in split.push(slice).unwrap() {
                track.push(b, 1000.0 + f64::from(k)).unwrap();
            }
        }
        split.finish().unwrap();
        track.end_segment().unwrap();
        files.push(body);
    }
    (track, files)
}

fn check_ladder(name: &str, video: &[&str], audio: &[&str], codecs: [&str; 2]) {
    let dir = TempDir::new(&format!("live-{name}"));
    dash_ladder(&dir, 9, video, audio);
    for (n, codec) in codecs.iter().enumerate() {
        let (track, files) = ingest(&dir, n as u32, 1000 + 777 * n);
        assert!(track.init().codec().starts_with(codec), "{}", track.init().codec());
        let segs = track.segments();
        assert!(files.len() >= 4, "{name}: {} segments", files.len());
        assert_eq!(segs.len(), files.len());
        for (s, file) in segs.iter().zip(&files) {
            assert_eq!(
                &s.data, file,
                "{name} stream {n} segment {}: the encoder's bytes",
                s.msn
            );
            assert!(s.complete && !s.discontinuity);
            assert!(s
                .parts
                .windows(2)
                .all(|w| w[0].end == w[1].start && w[1].base > w[0].base));
            assert_eq!((s.parts[0].start, s.parts.last().unwrap().end), (0, file.len()));
        }
        // Whole segments (not the last, cut by the end of the input) are
        // 2 s in four parts of about half a second.
        for s in segs.iter().take(segs.len() - 1) {
            let secs = track.secs(s.duration);
            assert!((secs - 2.0).abs() < 0.03, "{name} stream {n}: a segment of {secs} s");
            assert_eq!(s.parts.len(), 4, "{name} stream {n} segment {}", s.msn);
            // The last part of a segment may be shorter (audio frames do
            // not divide 2 s).
            for (k, p) in s.parts.iter().enumerate() {
                let secs = track.secs(p.duration);
                let shortest = if k + 1 == s.parts.len() { 0.3 } else { 0.45 };
                assert!(
                    (shortest..=0.55).contains(&secs),
                    "{name} stream {n}: part {k} of {secs} s"
                );
            }
            assert!(s.parts[0].independent);
        }
        let text = media_playlist(&Playlist {
            track: &track,
            segment_target: 2.0,
            skip: false,
            reports: &[],
            ended: true,
            query: "token=t",
            vod: false,
        });
        for s in segs {
            assert!(text.contains(&format!("\n{}.m4s?token=t\n", s.msn)), "{text}");
        }
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }
}

#[test]
fn ffmpeg_ldash_h264_aac_becomes_parts_and_segments() {
    check_ladder(
        "h264",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-b:v",
            "300k",
        ],
        &["-c:a", "aac", "-b:a", "64k"],
        ["avc1.", "mp4a.40.2"],
    );
}

#[test]
fn ffmpeg_ldash_av1_opus_becomes_parts_and_segments() {
    check_ladder(
        "av1",
        &["-c:v", "libsvtav1", "-preset", "12", "-b:v", "300k"],
        &["-c:a", "libopus", "-b:a", "64k"],
        ["av01.", "opus"],
    );
}

/// The MD5 of what ffmpeg decodes from `bytes` (with `key`), and whether
/// it said nothing. On a pipe: Debian's ffmpeg 5.1 decrypts a seekable
/// fragmented file with its last fragment's `senc` (see
/// `tests/encryption.rs`).
fn decoded(dir: &Path, name: &str, bytes: &[u8], key: Option<&str>) -> (String, bool) {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let o = cmd
        .args(["-i", "pipe:0", "-f", "md5", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        o.status.success() && o.stderr.is_empty(),
    )
}

#[test]
fn an_encrypted_live_track_decrypts_to_the_encoders_frames() {
    let dir = TempDir::new("live-encrypted");
    dash_ladder(
        &dir,
        5,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-b:v",
            "300k",
        ],
        &["-c:a", "aac", "-b:a", "64k"],
    );
    let key = ContentKey {
        kid: [0x5a; 16],
        key: [0x3c; 16],
    };
    let hex = nearcast_packager::cenc::keys::hex(&key.key);
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        for n in 0..2u32 {
            let (clear, files) = ingest(&dir, n, 4096);
            let clear_bytes = [clear.init().bytes.clone(), files.concat()].concat();
            let want = decoded(&dir, "clear.mp4", &clear_bytes, None);
            let (track, _) = ingest_protected(&dir, n, 3001, Some((scheme, key)));
            let mut enc = track.init().bytes.clone();
            for s in track.segments() {
                enc.extend_from_slice(&s.data);
                assert_eq!(
                    s.parts.last().unwrap().end,
                    s.data.len(),
                    "parts cover the encrypted segment"
                );
            }
            let got = decoded(&dir, "enc.mp4", &enc, Some(&hex));
            assert_eq!(
                got, want,
                "{scheme:?} stream {n}: decrypted frames differ from the encoder's"
            );
            let without = decoded(&dir, "enc.mp4", &enc, None);
            assert!(
                !without.1 || without.0 != want.0,
                "{scheme:?} stream {n} decodes without the key"
            );
            assert_eq!(track.segments().len(), clear.segments().len());
        }
    }
}
