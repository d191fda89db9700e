//! Packaged output read by real tools: inputs made by ffmpeg here, the
//! packager binary run on them, then ffprobe counts frames and durations
//! per track, and ffmpeg reads the whole title through master.m3u8 and
//! manifest.mpd without an error line.

use std::path::Path;
use std::process::Command;

use nearcast_packager::index::{sha256_hex, TitleIndex};
use nearcast_testkit::TempDir;

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("pkg-{name}"))
}

/// Runs ffmpeg with `args` (quiet, overwrite) and asserts it worked.
fn ffmpeg(args: &[&str]) {
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

fn video_src(fps: &str, secs: u32) -> String {
    format!("testsrc2=size=320x180:rate={fps}:duration={secs}")
}

fn audio_src(secs: u32, freq: u32) -> String {
    format!("sine=frequency={freq}:sample_rate=48000:duration={secs}")
}

/// An H.264 + AAC input of `secs` seconds at 25 fps with a keyframe every
/// `gop` frames; `extra` options go before the output file.
fn h264_aac(path: &Path, secs: u32, gop: u32, extra: &[&str]) {
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
fn probe(file: &Path, kind: &str, nth: usize) -> (u64, f64) {
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

fn package(store: &Path, title: &str, target: &str, inputs: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", title, "--store"])
        .arg(store)
        .args(["--target", target])
        .args(inputs)
        .output()
        .unwrap()
}

/// No error line when ffmpeg decodes the whole title through `manifest`.
fn plays(manifest: &Path) {
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
fn check(store: &Path, title: &str, source: &Path, target: f64, gop: f64) -> TitleIndex {
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

#[test]
fn h264_with_b_frames_and_audio_25fps() {
    let dir = temp_dir("h264");
    let src = dir.join("in.mp4");
    // moov after mdat (ffmpeg's default without +faststart), B-frames, 1 s GOP.
    h264_aac(&src, 12, 25, &["-bf", "3"]);
    let out = package(&dir.join("store"), "h264", "4", &[&src]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = check(&dir.join("store"), "h264", &src, 4.0, 1.0);
    assert_eq!(index.renditions.len(), 2);
    assert!(index.renditions[0].codecs.starts_with("avc1.64"));
    assert_eq!(index.renditions[1].codecs, "mp4a.40.2");
    let master = std::fs::read_to_string(dir.join("store/h264/master.m3u8")).unwrap();
    assert!(
        master.contains("RESOLUTION=320x180")
            && master.contains("FRAME-RATE=25.000")
            && master.contains("AUDIO=\"audio\"")
    );
}

#[test]
fn ntsc_rate_long_gop_faststart_video_only() {
    let dir = temp_dir("ntsc");
    let src = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video_src("30000/1001", 20),
        "-c:v",
        "libx264",
        "-g",
        "180",
        "-keyint_min",
        "180",
        "-sc_threshold",
        "0",
        "-movflags",
        "+faststart",
        src.to_str().unwrap(),
    ]);
    let out = package(&dir.join("store"), "ntsc", "4", &[&src]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = check(&dir.join("store"), "ntsc", &src, 4.0, 6.006);
    assert_eq!(index.renditions.len(), 1);
    let mpd = std::fs::read_to_string(dir.join("store/ntsc/manifest.mpd")).unwrap();
    assert!(mpd.contains("frameRate=\"30000/1001\""));
}

#[test]
fn av1_video() {
    let dir = temp_dir("av1");
    let src = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video_src("25", 8),
        "-c:v",
        "libsvtav1",
        "-preset",
        "12",
        "-g",
        "50",
        "-pix_fmt",
        "yuv420p",
        src.to_str().unwrap(),
    ]);
    let out = package(&dir.join("store"), "av1", "2", &[&src]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = check(&dir.join("store"), "av1", &src, 2.0, 2.0);
    assert!(
        index.renditions[0].codecs.starts_with("av01.0."),
        "{}",
        index.renditions[0].codecs
    );
}

#[test]
fn audio_only_with_two_languages_and_opus() {
    let dir = temp_dir("audio");
    let src = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &audio_src(10, 440),
        "-f",
        "lavfi",
        "-i",
        &audio_src(10, 660),
        "-map",
        "0",
        "-map",
        "1",
        "-c:a:0",
        "aac",
        "-c:a:1",
        "libopus",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        src.to_str().unwrap(),
    ]);
    let out = package(&dir.join("store"), "audio", "4", &[&src]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = check(&dir.join("store"), "audio", &src, 4.0, 0.1);
    let names: Vec<&str> = index.renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["audio-eng", "audio-fra"]);
    assert_eq!(index.renditions[1].codecs, "opus");
    let master = std::fs::read_to_string(dir.join("store/audio/master.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"opus\"") && master.contains("CODECS=\"mp4a.40.2\""));
}

/// HEVC in both sample entries: `hvc1` (parameter sets in `hvcC`) and
/// `hev1` (in band too). Chromium here has no HEVC decoder, so the
/// output is checked with ffprobe and ffmpeg only (`check`: frame counts
/// and durations per rendition, both manifests decoded without an error).
#[test]
fn hevc_as_hvc1_and_hev1() {
    for tag in ["hvc1", "hev1"] {
        let dir = temp_dir(&format!("hevc-{tag}"));
        let src = dir.join("in.mp4");
        let (v, a) = (video_src("25", 8), audio_src(8, 440));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &v,
            "-f",
            "lavfi",
            "-i",
            &a,
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-x265-params",
            "keyint=50:min-keyint=50:scenecut=0:log-level=error",
            "-tag:v",
            tag,
            "-c:a",
            "aac",
            src.to_str().unwrap(),
        ]);
        let out = package(&dir.join("store"), "hevc", "4", &[&src]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let index = check(&dir.join("store"), "hevc", &src, 4.0, 2.0);
        // Main profile, level from the stream: hvc1.1.6.L<level>.<constraints>
        let codecs = &index.renditions[0].codecs;
        assert!(codecs.starts_with(&format!("{tag}.1.6.L")), "{codecs}");
        let master = std::fs::read_to_string(dir.join("store/hevc/master.m3u8")).unwrap();
        assert!(master.contains(&format!("CODECS=\"{codecs},mp4a.40.2\"")), "{master}");
        let mpd = std::fs::read_to_string(dir.join("store/hevc/manifest.mpd")).unwrap();
        assert!(mpd.contains(&format!("codecs=\"{codecs}\"")), "{mpd}");
    }
}

#[test]
fn two_languages_in_two_codecs_get_a_group_per_codec() {
    let dir = temp_dir("langs");
    let src = dir.join("in.mp4");
    let (v, a) = (video_src("25", 8), [440, 550, 660, 770].map(|f| audio_src(8, f)));
    let mut args = vec!["-f", "lavfi", "-i", &v];
    for a in &a {
        args.extend(["-f", "lavfi", "-i", a]);
    }
    args.extend([
        "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-c:v", "libx264", "-g", "50",
    ]);
    args.extend([
        "-c:a:0", "aac", "-c:a:1", "aac", "-c:a:2", "libopus", "-c:a:3", "libopus",
    ]);
    args.extend(["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra"]);
    args.extend(["-metadata:s:a:2", "language=eng", "-metadata:s:a:3", "language=fra"]);
    args.push(src.to_str().unwrap());
    ffmpeg(&args);
    let out = package(&dir.join("store"), "langs", "4", &[&src]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(&dir.join("store"), "langs", &src, 4.0, 2.0);
    let master = std::fs::read_to_string(dir.join("store/langs/master.m3u8")).unwrap();
    for want in [
        "GROUP-ID=\"audio-aac\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"1\",URI=\"audio-eng/index.m3u8\"",
        "GROUP-ID=\"audio-aac\",NAME=\"French\",LANGUAGE=\"fr\",DEFAULT=NO",
        "GROUP-ID=\"audio-opus\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES",
        "GROUP-ID=\"audio-opus\",NAME=\"French\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"1\",URI=\"audio-fra-2/index.m3u8\"",
    ] {
        assert!(master.contains(want), "{want}\n{master}");
    }
    // The one video rung once per audio codec, each naming its group.
    let variants: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")).collect();
    assert_eq!(variants.len(), 2, "{master}");
    assert!(variants[0].contains(",mp4a.40.2\"") && variants[0].contains("AUDIO=\"audio-aac\""));
    assert!(variants[1].contains(",opus\"") && variants[1].contains("AUDIO=\"audio-opus\""));
    let mpd = std::fs::read_to_string(dir.join("store/langs/manifest.mpd")).unwrap();
    let sets: Vec<(&str, &str)> = mpd
        .split("<AdaptationSet")
        .filter(|s| s.contains("contentType=\"audio\""))
        .map(|s| {
            let lang = s.split("lang=\"").nth(1).and_then(|l| l.split('"').next()).unwrap();
            let role = s
                .split("role:2011\" value=\"")
                .nth(1)
                .and_then(|l| l.split('"').next())
                .unwrap();
            (lang, role)
        })
        .collect();
    assert_eq!(
        sets,
        [("en", "main"), ("fr", "alternate"), ("en", "main"), ("fr", "alternate")]
    );
    assert_eq!(mpd.matches("<AudioChannelConfiguration").count(), 4);
}

#[test]
fn ladder_command_makes_a_playable_three_rung_title() {
    let dir = temp_dir("ladder");
    let mezz = dir.join("mezz.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video_src("25", 8),
        "-f",
        "lavfi",
        "-i",
        &audio_src(8, 440),
        "-s",
        "640x360",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        mezz.to_str().unwrap(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["ladder", "--title", "lad", "--store"])
        .arg(dir.join("store"))
        .args(["--rungs", "360:800,240:400,180:200", "--gop", "2", "--target", "4"])
        .arg(&mezz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = std::fs::read_to_string(dir.join("store/lad/master.m3u8")).unwrap();
    for h in ["360", "240", "180"] {
        assert!(master.contains(&format!("{h}p/index.m3u8")), "{master}");
    }
    // One audio rendition, not one per rung.
    assert_eq!(master.matches("TYPE=AUDIO").count(), 1);
    // Segment boundaries line up across rungs.
    let lists: Vec<String> = ["360p", "240p", "180p"]
        .iter()
        .map(|r| std::fs::read_to_string(dir.join("store/lad").join(r).join("index.m3u8")).unwrap())
        .collect();
    let extinf = |l: &str| {
        l.lines()
            .filter(|x| x.starts_with("#EXTINF"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(extinf(&lists[0]), extinf(&lists[1]));
    assert_eq!(extinf(&lists[0]), extinf(&lists[2]));
    plays(&dir.join("store/lad/master.m3u8"));
    plays(&dir.join("store/lad/manifest.mpd"));
}

#[test]
fn ladder_command_encodes_hevc_rungs() {
    let dir = temp_dir("ladder-hevc");
    let mezz = dir.join("mezz.mp4");
    let (v, a) = (video_src("25", 4), audio_src(4, 440));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &v,
        "-f",
        "lavfi",
        "-i",
        &a,
        "-s",
        "640x360",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        mezz.to_str().unwrap(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["ladder", "--title", "lad", "--codec", "hevc", "--store"])
        .arg(dir.join("store"))
        .args(["--rungs", "360:400,180:150", "--gop", "2", "--target", "4"])
        .arg(&mezz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = std::fs::read_to_string(dir.join("store/lad/master.m3u8")).unwrap();
    let variants = master.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF:"));
    assert_eq!(
        variants.filter(|l| l.contains("CODECS=\"hvc1.1.6.")).count(),
        2,
        "{master}"
    );
    plays(&dir.join("store/lad/master.m3u8"));
}

#[test]
fn variable_frame_rate_and_non_zero_start() {
    let dir = temp_dir("vfr");
    let vfr = dir.join("vfr.mp4");
    // Drops 4 of every 10 frames: uneven sample durations.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video_src("25", 10),
        "-vf",
        "select='lt(mod(n\\,10)\\,6)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-g",
        "25",
        vfr.to_str().unwrap(),
    ]);
    let out = package(&dir.join("store"), "vfr", "2", &[&vfr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(&dir.join("store"), "vfr", &vfr, 2.0, 1.0);
    // A source that starts at 3 s (an empty edit): the title starts at 0.
    let late = dir.join("late.mp4");
    h264_aac(&late, 6, 25, &["-output_ts_offset", "3"]);
    let out = package(&dir.join("store"), "late", "2", &[&late]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(&dir.join("store"), "late", &late, 2.0, 1.0);
}

/// Rewrites every `stco` of a moov-at-end MP4 as `co64` (what files over
/// 4 GiB carry), fixing the sizes of the boxes around them.
fn to_co64(data: &[u8]) -> Vec<u8> {
    fn walk(data: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i + 8 <= data.len() {
            let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
            let kind = &data[i + 4..i + 8];
            let body = &data[i + 8..i + size];
            let start = out.len();
            match kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => {
                    out.extend([0, 0, 0, 0]);
                    out.extend(kind);
                    walk(body, out);
                }
                b"stco" => {
                    out.extend([0, 0, 0, 0]);
                    out.extend(b"co64");
                    out.extend(&body[..8]);
                    for c in body[8..].chunks(4) {
                        out.extend(u64::from(u32::from_be_bytes(c.try_into().unwrap())).to_be_bytes());
                    }
                }
                _ => out.extend(&data[i..i + size]),
            }
            let len = (out.len() - start) as u32;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            i += size;
        }
    }
    let mut out = Vec::new();
    walk(data, &mut out);
    out
}

#[test]
fn sixty_four_bit_chunk_offsets() {
    let dir = temp_dir("co64");
    let src = dir.join("in.mp4");
    h264_aac(&src, 6, 25, &[]);
    let original = std::fs::read(&src).unwrap();
    let converted = to_co64(&original);
    assert!(converted.windows(4).any(|w| w == b"co64") && !converted.windows(4).any(|w| w == b"stco"));
    let co64 = dir.join("co64.mp4");
    std::fs::write(&co64, converted).unwrap();
    let out = package(&dir.join("store"), "co64", "2", &[&co64]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(&dir.join("store"), "co64", &src, 2.0, 1.0);
    // Same samples, same segments as from the 32-bit original.
    let out = package(&dir.join("store"), "stco", "2", &[&src]);
    assert!(out.status.success());
    for r in ["180p/seg-00001.m4s", "audio-und/seg-00002.m4s"] {
        assert_eq!(
            std::fs::read(dir.join("store/co64").join(r)).unwrap(),
            std::fs::read(dir.join("store/stco").join(r)).unwrap(),
            "{r}"
        );
    }
}

#[test]
fn audio_in_its_own_file() {
    let dir = temp_dir("separate");
    let (video, audio) = (dir.join("video.mp4"), dir.join("audio.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video_src("25", 8),
        "-c:v",
        "libx264",
        "-g",
        "50",
        video.to_str().unwrap(),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &audio_src(8, 440),
        "-c:a",
        "aac",
        "-metadata:s:a:0",
        "language=spa",
        audio.to_str().unwrap(),
    ]);
    let out = package(&dir.join("store"), "sep", "4", &[&video, &audio]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = std::fs::read_to_string(dir.join("store/sep/master.m3u8")).unwrap();
    assert!(
        // The mdhd's `spa` as BCP 47, with the language's name.
        master.contains("NAME=\"Spanish\",LANGUAGE=\"es\"") && master.contains(",mp4a.40.2\",RESOLUTION=320x180"),
        "{master}"
    );
    plays(&dir.join("store/sep/master.m3u8"));
    plays(&dir.join("store/sep/manifest.mpd"));
}
