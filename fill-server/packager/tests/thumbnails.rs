//! Thumbnail tiles: ffmpeg makes them from the largest rendition, the
//! title lists them in the HLS image playlist and the DASH image set, the
//! index has every tile; bad options are refused with nothing written.

use std::path::Path;
use std::process::Command;

use nearcast_packager::index::TitleIndex;
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

fn package(store: &Path, inputs: &[&Path], thumbs: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", "th", "--thumbnails", thumbs, "--store"])
        .arg(store)
        .args(inputs)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// (width, height) of an image, from ffprobe.
fn size(file: &Path) -> (u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (w, h) = text.trim().split_once(',').unwrap();
    (w.parse().unwrap(), h.parse().unwrap())
}

#[test]
fn tiles_come_from_the_largest_rendition_and_are_listed_in_both_manifests() {
    let dir = TempDir::new("pkg-thumbs");
    let (big, small) = (dir.join("360.mp4"), dir.join("180.mp4"));
    for (out, s) in [(&big, "640x360"), (&small, "320x180")] {
        let src = format!("testsrc2=size={s}:rate=25:duration=10");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-c:v",
            "libx264",
            "-g",
            "50",
            out.to_str().unwrap(),
        ]);
    }
    let store = dir.join("store");
    // A 120 px picture every second, 3×2 per tile: two tiles for 10 s.
    let (ok, err) = package(&store, &[&small, &big], "120:1:3x2");
    assert!(ok, "{err}");
    let title = store.join("th");
    let index: TitleIndex = serde_json::from_slice(&std::fs::read(title.join("index.json")).unwrap()).unwrap();
    let tiles: Vec<&str> = index
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.ends_with(".jpg"))
        .collect();
    assert_eq!(tiles, ["thumbs/tile-00001.jpg", "thumbs/tile-00002.jpg"]);
    // 120×68 pictures (the 16:9 of the 360p rendition, even), 3×2 of them.
    for t in &tiles {
        assert_eq!(size(&title.join(t)), (360, 136), "{t}");
    }
    let image = index.renditions.iter().find(|r| r.kind == "image").unwrap();
    assert_eq!((image.width, image.height, image.segments), (Some(360), Some(136), 2));

    let playlist = std::fs::read_to_string(title.join("thumbs/index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-IMAGES-ONLY\n"), "{playlist}");
    assert_eq!(
        playlist
            .matches("#EXT-X-TILES:RESOLUTION=120x68,LAYOUT=3x2,DURATION=1.000\n")
            .count(),
        2,
        "{playlist}"
    );
    assert!(
        playlist.contains("#EXTINF:6.000,\ntile-00001.jpg\n") && playlist.contains("#EXTINF:4.000,\ntile-00002.jpg\n")
    );
    let master = std::fs::read_to_string(title.join("master.m3u8")).unwrap();
    assert!(master.contains("#EXT-X-IMAGE-STREAM-INF:BANDWIDTH="), "{master}");
    // HLS gives one picture's size (Roku's image spec), DASH the tile's.
    assert!(
        master.contains(",RESOLUTION=120x68,CODECS=\"jpeg\",URI=\"thumbs/index.m3u8\""),
        "{master}"
    );
    let mpd = std::fs::read_to_string(title.join("manifest.mpd")).unwrap();
    for want in [
        "contentType=\"image\" mimeType=\"image/jpeg\"",
        "media=\"thumbs/tile-$Number%05d$.jpg\" duration=\"6000\"",
        "width=\"360\" height=\"136\"",
        "schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"3x2\"",
    ] {
        assert!(mpd.contains(want), "{want}\n{mpd}");
    }
}

#[test]
fn bad_thumbnail_options_write_nothing() {
    let dir = TempDir::new("pkg-thumbs-bad");
    let src = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25:duration=2",
        "-c:v",
        "libx264",
        src.to_str().unwrap(),
    ]);
    let store = dir.join("store");
    for (arg, want) in [
        ("160:2", "WIDTH:INTERVAL:COLSxROWS"),
        ("8:2:5x5", "outside"),
        ("160:2:0x5", "outside"),
    ] {
        let (ok, err) = package(&store, &[&src], arg);
        assert!(!ok && err.contains(want), "{arg}: {err}");
        assert!(!store.join("th").exists(), "{arg}");
    }
}
