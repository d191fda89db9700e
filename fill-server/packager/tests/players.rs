//! Packaged output read by real tools: inputs made by ffmpeg here, the
//! packager binary run on them, then ffprobe counts frames and durations
//! per track, and ffmpeg reads the whole title through master.m3u8 and
//! manifest.mpd without an error line.

mod support;

use std::process::Command;

use support::*;

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
