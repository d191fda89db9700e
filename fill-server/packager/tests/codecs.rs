//! Codecs and languages: HEVC in both sample entries and from the ladder,
//! and audio in two languages × two codecs grouped so each player picks
//! what it can decode; read back with ffprobe and ffmpeg (`support`).

mod support;

use std::process::Command;

use support::*;

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
