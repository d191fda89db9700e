//! Audio languages and subtitles through steering, in real players.
//!
//! The sample title carries English and French WebVTT (packaged for HLS
//! as WebVTT files, for DASH as CMAF `wvtt`); boxes fill them like any
//! file, and the multivariant playlist steering gives a player points at
//! the box's subtitle playlists with the token in the path. A second title, `langs`, is the sample's video
//! with English and French audio, each in AAC and in Opus, and the same
//! subtitles. In headless Chromium, hls.js and Shaka Player (HLS), Shaka
//! Player and dash.js (DASH) play `langs` from the box: each offers both
//! audio languages and both subtitle languages, switches subtitles and,
//! a second later, audio to French mid-play without a stall, and after a
//! seek shows the French cue due; Shaka Player on both gives the right
//! thumbnail tile and place for a time, and its trick play at 4x fetches
//! the trick-mode files (I-frame byte ranges, DASH trick segments). (Shaka Player 4.16 on DASH, both
//! switched at the same instant, lost the new text stream's init segment
//! in 4 runs of 6: a player race; viewers switch one at a time.)
//!
//! One browser run, in the `realtime` group of `.config/nextest.toml`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nearcast::stack::{sample_extras, sample_inputs, Ports, Stack, TITLE};
use nearcast_e2e::site::Site;
use nearcast_e2e::{curl_get, start_agents, url_encode, wait_steerable, Browser};
use nearcast_testkit::TempDir;

const PLAYERS: [&str; 4] = ["hlsjs", "shaka-hls", "shaka-dash", "dashjs"];
const LANGS: &str = "langs";
/// The French cue due at 10.3 s (fill-server/packager/sample/fr.vtt).
const SEEK_TO: f64 = 10.0;
const CUE: &str = "Réplique 4";
/// The sample's thumbnails are 160×90, one every 2 s, 5×5 per tile: 13 s
/// is the 7th picture of the first tile, second row, second column.
const THUMB_AT: f64 = 13.0;

/// The French subtitle playlist as a player gets it is the box's own,
/// the token in its path (as every clear rendition's), and the WebVTT
/// files it lists are served from there.
fn subtitles_come_from_the_box(stack: &Stack) {
    let master = String::from_utf8(curl_get(&format!("{}/v1/play/{TITLE}/master.m3u8", stack.fill_url)).1).unwrap();
    let line = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=SUBTITLES") && l.contains("LANGUAGE=\"fr\""))
        .unwrap_or_else(|| panic!("no French subtitles in\n{master}"));
    let uri = line.split("URI=\"").nth(1).and_then(|u| u.split('"').next()).unwrap();
    let on_box = format!("http://{}/t/", stack.boxes[0].http_addr);
    assert!(
        uri.starts_with(&on_box) && uri.ends_with("/text-fr/index.m3u8"),
        "{uri}"
    );
    let (code, playlist) = curl_get(uri);
    let playlist = String::from_utf8(playlist).unwrap();
    assert_eq!(code, 200, "{uri}: {playlist}");
    let seg = playlist
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".vtt"))
        .unwrap();
    let seg = format!("{}{seg}", uri.trim_end_matches("index.m3u8"));
    let (code, body) = curl_get(&seg);
    assert_eq!(code, 200, "{seg}");
    assert!(
        body.starts_with(b"WEBVTT\nX-TIMESTAMP-MAP="),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Without the token the box refuses it.
    let bare = format!("http://{}/c/{TITLE}/text-fr/seg-00001.vtt", stack.boxes[0].http_addr);
    assert_eq!(curl_get(&bare).0, 403, "{bare}");
}

/// `langs` in the origin store: the sample's video, English and French
/// audio (different tones) in AAC and in Opus, the sample's subtitles.
fn package_langs(stack: &Stack, root: &Path) {
    let src = root.join("langs.mp4");
    let video = sample_inputs()[0].clone();
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-y", "-i"].map(String::from).to_vec();
    args.push(video.display().to_string());
    for freq in [330, 660] {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!("sine=frequency={freq}:sample_rate=48000:duration=30"));
    }
    for a in [
        "-map", "0:v", "-map", "1", "-map", "2", "-map", "1", "-map", "2", "-c:v", "copy",
    ] {
        args.push(a.into());
    }
    for (i, (codec, lang)) in [("aac", "eng"), ("aac", "fra"), ("libopus", "eng"), ("libopus", "fra")]
        .iter()
        .enumerate()
    {
        args.extend([
            format!("-c:a:{i}"),
            codec.to_string(),
            format!("-metadata:s:a:{i}"),
            format!("language={lang}"),
        ]);
    }
    args.push(src.display().to_string());
    let out = Command::new("ffmpeg").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let opts = nearcast_packager::Options {
        title: nearcast_common::Name::new(LANGS).unwrap(),
        store: stack.config.origin_store.clone(),
        target: 4.0,
        progress: false,
        extras: sample_extras(),
        encrypt: None,
    };
    nearcast_packager::package(&[src], &opts).unwrap();
}

#[test]
fn four_players_switch_audio_and_subtitle_languages() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules");
    assert!(
        web.join("shaka-player").is_dir() && web.join("dashjs").is_dir(),
        "players missing: npm ci --prefix tests/web (scripts/test does it)"
    );
    let root = TempDir::new("e2e-tracks");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    package_langs(&stack, &root);
    stack.make_popular(TITLE, 10).unwrap();
    stack.make_popular(LANGS, 10).unwrap();
    stack.add_box_with(|_| {}, |_| {}).unwrap();
    let agent = start_agents(&stack).remove(0);
    wait_steerable(&stack, TITLE);
    wait_steerable(&stack, LANGS);
    subtitles_come_from_the_box(&stack);

    let site = Site::serve(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let browser = Browser::start();
    let url = |file: &str| format!("{}/v1/play/{LANGS}/{file}", stack.fill_url);
    browser.goto(&format!(
        "{}?hls={}&dash={}&lang=fr&at={SEEK_TO}&thumb={THUMB_AT}",
        site.url("tests/web/tracks.html"),
        url_encode(&url("master.m3u8")),
        url_encode(&url("manifest.mpd"))
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let results = loop {
        let r = browser.eval("return window.results || {}");
        let done = PLAYERS
            .iter()
            .all(|p| r[*p]["cue"].is_string() || r[*p]["position"].as_f64().unwrap_or(0.0) > SEEK_TO + 5.0)
            && ["shaka-hls", "shaka-dash"]
                .iter()
                .all(|p| r[*p]["trick"]["done"] == true);
        if done || r.to_string().contains("fatal") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("players: {results}");
    let langs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    for p in PLAYERS {
        let r = &results[p];
        for (what, got) in [("audio", langs(&r["audio"])), ("subtitles", langs(&r["texts"]))] {
            assert!(
                got.contains(&"en".into()) && got.contains(&"fr".into()),
                "{p} {what}: {got:?}: {r}"
            );
        }
        assert_eq!(r["playing"].as_str(), Some("fr"), "{p} plays French audio: {r}");
        // The switch replaces buffered audio: a stall would stand still
        // for as long as the new audio took to come.
        assert!(
            r["stall"].as_f64().unwrap_or(9.0) < 1.0,
            "{p} stalled after the switch: {r}"
        );
        assert_eq!(r["cue"].as_str(), Some(CUE), "{p}: {r}");
    }
    for p in ["shaka-hls", "shaka-dash"] {
        let th = &results[p]["thumb"];
        let want = serde_json::json!({"uri": "thumbs/tile-00001.jpg", "x": 160, "y": 90, "width": 160, "height": 90, "start": 12});
        assert_eq!(th, &want, "{p}'s thumbnail for {THUMB_AT} s");
        // Trick play at 4x went through the trick-mode files: the I-frame
        // playlist's byte ranges (HLS), the trick segments (DASH).
        let trick = &results[p]["trick"];
        let fetched = trick["requests"].to_string();
        let used = if p == "shaka-hls" {
            fetched.contains("iframes.m3u8") && fetched.contains("bytes=")
        } else {
            fetched.contains("/trick-")
        };
        assert!(used, "{p} trick play fetched {fetched}");
        let (from, to) = (
            trick["from"].as_f64().unwrap_or(0.0),
            trick["to"].as_f64().unwrap_or(0.0),
        );
        assert!(to > from + 4.0, "{p} moved from {from} s to {to} s at 4x in 2.5 s");
    }
    drop(browser);
    drop(agent);
    stack.boxes[0].stop_appliance();
}
