//! Subtitles packaged and read back by ffmpeg: two sidecar WebVTT files
//! and a mov_text track inside the input become text renditions listed
//! in master.m3u8 and manifest.mpd; ffmpeg reads each HLS rendition and
//! gets the cues back with their times; bad files and unknown languages
//! are refused with nothing written.

use std::path::Path;
use std::process::Command;

use nearcast_packager::index::TitleIndex;
use nearcast_testkit::TempDir;

const EN: &str = "WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\nFirst line\n\n\
                  00:00:03.000 --> 00:00:05.500 line:0\nAcross the <i>boundary</i>\n\n\
                  00:00:09.000 --> 00:00:09.800\nLast\n\n\
                  00:00:12.000 --> 00:00:13.000\nPast the end\n";
const FR: &str = "WEBVTT\n\n00:00:06.000 --> 00:00:07.000\nForcé\n";
const DE_SRT: &str = "1\n00:00:01,000 --> 00:00:02,500\nHallo\n\n2\n00:00:07,000 --> 00:00:08,000\nWelt\n";

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

/// 10 s of H.264 (2 s GOP) + AAC, with a German mov_text track.
fn source(dir: &Path) -> std::path::PathBuf {
    let srt = dir.join("de.srt");
    std::fs::write(&srt, DE_SRT).unwrap();
    let src = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25:duration=10",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=10",
        "-i",
        srt.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-g",
        "50",
        "-c:a",
        "aac",
        "-c:s",
        "mov_text",
        "-metadata:s:s:0",
        "language=ger",
        src.to_str().unwrap(),
    ]);
    src
}

fn package(store: &Path, title: &str, input: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", title, "--target", "4", "--store"])
        .arg(store)
        .args(extra)
        .arg(input)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// (start, end, text) of every cue ffmpeg reads from `playlist`.
fn ffmpeg_cues(playlist: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(playlist)
        .args(["-f", "webvtt", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: {err}",
        playlist.display()
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut cues: Vec<(String, String, String)> = text
        .split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
            let (a, b) = lines.next()?.split_once(" --> ")?;
            let b = b.split(' ').next().unwrap_or(b);
            Some((a.to_string(), b.to_string(), lines.collect::<Vec<_>>().join("\n")))
        })
        .collect();
    // A cue over a segment boundary is in both segments.
    cues.dedup();
    cues
}

#[test]
fn sidecar_and_embedded_subtitles_reach_hls_and_dash() {
    let dir = TempDir::new("pkg-subs");
    let src = source(&dir);
    let (en, fr) = (dir.join("en.vtt"), dir.join("fr.vtt"));
    std::fs::write(&en, EN).unwrap();
    std::fs::write(&fr, FR).unwrap();
    let store = dir.join("store");
    let en_arg = format!("en:default={}", en.display());
    let fr_arg = format!("fr:forced={}", fr.display());
    let (ok, err) = package(&store, "subs", &src, &["--subtitles", &en_arg, "--subtitles", &fr_arg]);
    assert!(ok, "{err}");
    let title = store.join("subs");
    let index: TitleIndex = serde_json::from_slice(&std::fs::read(title.join("index.json")).unwrap()).unwrap();
    let texts: Vec<&str> = index
        .renditions
        .iter()
        .filter(|r| r.kind == "text")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(texts, ["text-en", "text-fr-forced", "text-de"]);
    // Every file of every text rendition is in the index (boxes fill them).
    for name in &texts {
        let on_disk = std::fs::read_dir(title.join(name)).unwrap().count();
        let listed = index
            .files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{name}/")))
            .count();
        assert_eq!(on_disk, listed, "{name}");
    }
    let master = std::fs::read_to_string(title.join("master.m3u8")).unwrap();
    for want in [
        "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"text-en/index.m3u8\"",
        "NAME=\"French (forced)\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,FORCED=YES,URI=\"text-fr-forced/index.m3u8\"",
        "NAME=\"German\",LANGUAGE=\"de\"",
    ] {
        assert!(master.contains(want), "{want}\n{master}");
    }
    assert!(master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
        .all(|l| l.contains("SUBTITLES=\"subs\"")));
    let mpd = std::fs::read_to_string(title.join("manifest.mpd")).unwrap();
    assert!(
        mpd.contains("contentType=\"text\" mimeType=\"application/mp4\" lang=\"en\""),
        "{mpd}"
    );
    assert!(mpd.contains("value=\"forced-subtitle\"") && mpd.contains("codecs=\"wvtt\""));

    // The text segments are on the video's grid (2 s GOP, 4 s target).
    let playlist = std::fs::read_to_string(title.join("text-en/index.m3u8")).unwrap();
    let durs: Vec<f64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:")?.strip_suffix(',')?.parse().ok())
        .collect();
    // The last ends with the title (its audio runs 10.02 s).
    assert!(
        durs.len() == 3 && durs[..2] == [4.0, 4.0] && (2.0..2.1).contains(&durs[2]),
        "{durs:?}"
    );
    let seg = std::fs::read_to_string(title.join("text-en/seg-00001.vtt")).unwrap();
    assert!(
        seg.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"),
        "{seg}"
    );

    assert_eq!(
        ffmpeg_cues(&title.join("text-en/index.m3u8")),
        [
            ("00:00.500".into(), "00:02.000".into(), "First line".into()),
            (
                "00:03.000".into(),
                "00:05.500".into(),
                "Across the <i>boundary</i>".into()
            ),
            ("00:09.000".into(), "00:09.800".into(), "Last".into()),
        ]
    );
    assert_eq!(
        ffmpeg_cues(&title.join("text-de/index.m3u8")),
        [
            ("00:01.000".into(), "00:02.500".into(), "Hallo".into()),
            ("00:07.000".into(), "00:08.000".into(), "Welt".into()),
        ]
    );
    assert_eq!(
        ffmpeg_cues(&title.join("text-fr-forced/index.m3u8")),
        [("00:06.000".into(), "00:07.000".into(), "Forcé".into())]
    );
}

#[test]
fn bad_subtitles_and_unknown_languages_write_nothing() {
    let dir = TempDir::new("pkg-subs-bad");
    let src = source(&dir);
    let store = dir.join("store");
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "en",
            b"1\n00:01.000 --> 00:02.000\nno header\n",
            "line 1: a WebVTT file starts with 'WEBVTT'",
        ),
        (
            "en",
            b"WEBVTT\n\n00:05.000 --> 00:04.000\nreversed\n",
            "line 3: the cue ends (00:00:04.000) before or as it starts",
        ),
        (
            "en",
            b"WEBVTT\n\n00:05.000 --> 00:06.000\na\n\n00:01.000 --> 00:02.000\nb\n",
            "line 6: the cue starts at 00:00:01.000, before the cue above it",
        ),
        (
            "en",
            b"WEBVTT\n\n00:01.000 --> 00:02.000\n\xc3\x28\n",
            "line 4: not UTF-8",
        ),
        ("xx", b"WEBVTT\n", "unknown language 'xx'"),
    ];
    for (i, (lang, body, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.vtt"));
        std::fs::write(&file, body).unwrap();
        let (ok, err) = package(
            &store,
            "bad",
            &src,
            &["--subtitles", &format!("{lang}={}", file.display())],
        );
        assert!(
            !ok && err.contains(want) && err.contains(&format!("bad-{i}.vtt")),
            "case {i}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(&store)
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "case {i} left {left:?}");
    }
    // An embedded track in a language we do not know: refused, unless left out.
    let und = dir.join("und.mp4");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-map",
        "0",
        "-c",
        "copy",
        "-metadata:s:s:0",
        "language=qqq",
        und.to_str().unwrap(),
    ]);
    let (ok, err) = package(&store, "und", &und, &[]);
    assert!(
        !ok && err.contains("text track 3 has language 'qqq'") && err.contains("--no-embedded-text"),
        "{err}"
    );
    let (ok, err) = package(&store, "und", &und, &["--no-embedded-text"]);
    assert!(ok, "{err}");
    assert!(!store.join("und/text-de").exists());
}
