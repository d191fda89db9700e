//! Trick play: every keyframe of a video rendition is a fragment of its
//! own, listed in the rendition's HLS I-frame playlist as a byte range of
//! its segment (no copies); the lowest rung's keyframes are also DASH
//! trick-mode segments. ffprobe reads the I-frame playlist, and each
//! entry, fetched alone with the init segment, decodes to one I-frame.

use std::path::Path;
use std::process::Command;

use nearcast_testkit::TempDir;

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

/// (key_frame, pict_type) of each video frame of `file`.
fn frames(file: &Path) -> Vec<(String, String)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=key_frame,pict_type",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(k, p)| (k.to_string(), p.trim_end_matches(',').to_string()))
        .collect()
}

#[test]
fn every_iframe_entry_is_a_keyframe_alone() {
    let dir = TempDir::new("pkg-trick");
    let (big, small) = (dir.join("360.mp4"), dir.join("180.mp4"));
    // 12 s, a keyframe every second (25 frames), B-frames; 4 s segments.
    for (out, s) in [(&big, "640x360"), (&small, "320x180")] {
        let src = format!("testsrc2=size={s}:rate=25:duration=12");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-bf",
            "2",
            out.to_str().unwrap(),
        ]);
    }
    let store = dir.join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", "tp", "--target", "4", "--store"])
        .arg(&store)
        .args([&big, &small])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let title = store.join("tp");
    let master = std::fs::read_to_string(title.join("master.m3u8")).unwrap();
    for r in ["360p", "180p"] {
        let line = format!(
            ",RESOLUTION={},URI=\"{r}/iframes.m3u8\"",
            if r == "360p" { "640x360" } else { "320x180" }
        );
        assert!(
            master.contains(&line) && master.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH="),
            "{line}\n{master}"
        );
    }
    let rdir = title.join("360p");
    let playlist = std::fs::read_to_string(rdir.join("iframes.m3u8")).unwrap();
    assert!(
        playlist.contains("#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI=\"init.mp4\"\n"),
        "{playlist}"
    );
    let init = std::fs::read(rdir.join("init.mp4")).unwrap();
    let lines: Vec<&str> = playlist.lines().collect();
    let mut entries = 0;
    for (i, l) in lines.iter().enumerate() {
        let Some(range) = l.strip_prefix("#EXT-X-BYTERANGE:") else {
            continue;
        };
        let (len, at) = range.split_once('@').unwrap();
        let (len, at): (usize, usize) = (len.parse().unwrap(), at.parse().unwrap());
        let seg = std::fs::read(rdir.join(lines[i + 1])).unwrap();
        let alone = dir.join(format!("entry-{entries}.mp4"));
        std::fs::write(&alone, [init.as_slice(), &seg[at..at + len]].concat()).unwrap();
        assert_eq!(
            frames(&alone),
            [("1".to_string(), "I".to_string())],
            "entry {entries}: {l}"
        );
        assert_eq!(
            lines[i - 1],
            "#EXTINF:1.000000,",
            "entry {entries} lasts to the next keyframe"
        );
        entries += 1;
    }
    assert_eq!(entries, 12, "one entry per keyframe:\n{playlist}");
    // ffprobe reads the playlist itself: the twelve I-frames.
    let read = frames(&rdir.join("iframes.m3u8"));
    assert_eq!(read.len(), 12, "{read:?}");
    assert!(read.iter().all(|(k, p)| k == "1" && p == "I"), "{read:?}");

    dash_trick_segments(&dir, &title);
}

/// DASH: the lowest rung's keyframes as trick-mode segments, each one
/// I-frame; none for the other rung.
fn dash_trick_segments(dir: &Path, title: &Path) {
    let mpd = std::fs::read_to_string(title.join("manifest.mpd")).unwrap();
    for want in [
        "<EssentialProperty schemeIdUri=\"http://dashif.org/guidelines/trickmode\" value=\"0\"/>",
        "<Representation id=\"180p-trick\"",
        "media=\"180p/trick-$Number%05d$.m4s\"",
        "<S t=\"0\" d=\"12800\" r=\"11\"/>",
    ] {
        assert!(mpd.contains(want), "{want}\n{mpd}");
    }
    let init = std::fs::read(title.join("180p/init.mp4")).unwrap();
    for n in 1..=12 {
        let seg = std::fs::read(title.join(format!("180p/trick-{n:05}.m4s"))).unwrap();
        let alone = dir.join(format!("trick-{n}.mp4"));
        std::fs::write(&alone, [init.as_slice(), &seg].concat()).unwrap();
        assert_eq!(
            frames(&alone),
            [("1".to_string(), "I".to_string())],
            "trick segment {n}"
        );
    }
    assert!(!title.join("180p/trick-00013.m4s").exists() && !title.join("360p/trick-00001.m4s").exists());
}
