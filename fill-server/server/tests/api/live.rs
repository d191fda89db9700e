//! A live event at the origin, with Debian's ffmpeg as the encoder: for a
//! minute it pushes H.264 + AAC over HTTP PUT with chunked uploads (its
//! DASH muxer, low-latency streaming, 2 s segments of 0.5 s fragments)
//! and, through its tee muxer, writes the very same bytes to files here. A
//! player-like client follows the video playlist with blocking reloads,
//! then ffmpeg reads the live HLS and the live DASH; afterwards every
//! published segment is compared with the encoder's file, the parts with
//! the segment, and ffmpeg reads the ended event through the multivariant
//! playlist. Bad ingest is refused without touching what was published;
//! an encoder killed and restarted leaves a gap and a discontinuity; AV1
//! and Opus, and ffmpeg's HLS muxer, are taken; an event created with
//! `encrypt` is encrypted as it is ingested.
//!
//! In the `realtime` group of `.config/nextest.toml`: ffmpeg encodes in
//! real time, never beside a browser test.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nearcast_common::{unix_now, Grant, SigningKey};
use nearcast_packager::live::encoder;
use nearcast_testkit::{http, TempDir};

use crate::support::*;

const SECRET: &str = "ingest-secret-0123456789";

/// A title-wide token for the event, for any client.
fn token() -> String {
    let key = SigningKey::from_hex("k1", KEY_HEX).unwrap();
    key.sign(
        "/l/match/",
        &Grant {
            expires: unix_now() + 600,
            client_prefix: None,
        },
    )
}

/// ffmpeg pushing `secs` of a 180p test ladder to the ingest at `live`,
/// and the same output to `dir` when given.
fn encoder(live: SocketAddr, dir: Option<&Path>, secs: u32) -> Child {
    let ingest = format!("http://{live}/ingest/match/{SECRET}");
    encoder::command(&encoder::Push {
        codecs: encoder::Codecs::H264Aac,
        muxer: encoder::Muxer::Dash,
        ingest: &ingest,
        rungs: &[encoder::Rung { height: 180, kbps: 300 }],
        secs: Some(secs),
        clock: false,
        copy_to: dir,
        segment_secs: 2.0,
        part_secs: 0.5,
    })
    .spawn()
    .expect("ffmpeg installed")
}

fn get(live: SocketAddr, path: &str) -> http::Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    http::get(live, &format!("{path}{sep}token={}", token()))
}

/// Follows the video playlist with blocking reloads for each next part,
/// for `secs`; returns how long each held reload took and how many parts
/// it saw.
fn follow_parts(live: SocketAddr, secs: u64) -> (Vec<Duration>, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut held = Vec::new();
    let mut next: Option<(u64, usize)> = None;
    while Instant::now() < deadline {
        let path = match next {
            None => "/l/match/stream0/index.m3u8".to_string(),
            Some((m, p)) => format!("/l/match/stream0/index.m3u8?_HLS_msn={m}&_HLS_part={p}"),
        };
        let t0 = Instant::now();
        let r = get(live, &path);
        if r.status != 200 {
            // Before the encoder's first segment the rendition is unknown.
            assert!(next.is_none() && r.status == 404, "{path}: {} {}", r.status, r.text());
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let text = r.text();
        if let Some((m, p)) = next {
            held.push(t0.elapsed());
            let name = format!("\"{m}.{p}.m4s?");
            let whole = format!("\n{m}.m4s?");
            let next_first = format!("\"{}.0.m4s?", m + 1);
            assert!(
                text.contains(&name) || text.contains(&whole) || text.contains(&next_first),
                "{path} answered without the part:\n{text}"
            );
        }
        let hint = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .expect("a preload hint");
        let (m, p) = hint.split_once(".m4s").unwrap().0.split_once('.').unwrap();
        next = Some((m.parse().unwrap(), p.parse().unwrap()));
    }
    let n = held.len();
    (held, n)
}

#[test]
fn an_encoder_pushes_a_live_event_and_players_follow_it_part_by_part() {
    let s = start(&Backend::Sqlite, "live", 30);
    let files = TempDir::new("live-encoder");
    let spec = format!(r#"{{"name":"match","secret":"{SECRET}"}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", &spec).0, 200);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", &spec).0, 409);
    let short = r#"{"name":"another","secret":"short"}"#;
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", short).0, 400);
    // An event becomes the title of its name when it ends: names of
    // titles are taken.
    let taken = format!(r#"{{"name":"movie","secret":"{SECRET}"}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", &taken).0, 409);
    refusals_before_the_encoder(s.live);

    // A minute of live: a client follows parts for 10 s, then ffmpeg reads
    // 8 s of the live HLS and of the live DASH at once.
    let ffmpeg = encoder(s.live, Some(&files), 60);
    let (held, parts) = follow_parts(s.live, 10);
    ffmpeg_reads_it_live(s.live);
    player_route_names_the_live_door(&s);
    let out = ffmpeg.wait_with_output().unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let mut sorted = held.clone();
    sorted.sort();
    let p95 = sorted[sorted.len() * 95 / 100];
    eprintln!(
        "blocking reloads: {parts}, p50 {:?}, p95 {p95:?}, max {:?}",
        sorted[sorted.len() / 2],
        sorted.last()
    );
    assert!(parts >= 10, "only {parts} parts seen in 10 s");
    // A part arrives every half second: a reload for the next one is held
    // about that long, never much longer.
    assert!(p95 <= Duration::from_millis(900), "p95 {p95:?}");

    let published = segments_match_the_encoder(s.live, &files);
    assert!(published >= 5, "{published} segments");
    // More than two segments ahead: refused at once (RFC 8216bis §6.2.5.2).
    let far = get(
        s.live,
        &format!("/l/match/stream0/index.m3u8?_HLS_msn={}", published + 3),
    );
    assert_eq!(far.status, 400, "{}", far.text());
    bad_ingest_changes_nothing(s.live, &files);
    let (st, list) = admin(s.admin, "GET", "/v1/admin/live", "");
    assert_eq!(st, 200);
    assert!(
        list.contains(r#""rendition":"stream0""#) && list.contains(r#""codec":"mp4a.40.2""#),
        "{list}"
    );

    assert_eq!(admin(s.admin, "POST", "/v1/admin/live/match/end", "").0, 200);
    let late = http::call(
        s.live,
        "PUT",
        &format!("/ingest/match/{SECRET}/init-stream0.m4s"),
        &[],
        b"",
    );
    assert_eq!(late.status, 409, "ingest after the end: {}", late.text());
    let playlist = get(s.live, "/l/match/stream0/index.m3u8").text();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    // A real client reads the whole event through the multivariant playlist.
    let url = format!("http://{}/l/match/master.m3u8?token={}", s.live, token());
    let read = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", &url, "-map", "0", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert!(read.stderr.is_empty(), "{}", String::from_utf8_lossy(&read.stderr));
}

/// The player route with no box in the player's ISP: the live door's
/// URLs, a token, content steering with the live door as the one pathway.
fn player_route_names_the_live_door(s: &Server) {
    let client = [("x-forwarded-for", "198.51.100.7".to_string())];
    let (st, master) = call(s.addr, "GET", "/v1/play/match/master.m3u8", &client, b"");
    assert_eq!(st, 200, "{master}");
    for want in [
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/v1/play/match/steering.json\",PATHWAY-ID=\"origin\"",
        ",PATHWAY-ID=\"origin\"\nhttp://127.0.0.1:7073/l/match/stream0/index.m3u8?token=k1-",
        "GROUP-ID=\"audio.origin\"",
    ] {
        assert!(master.contains(want), "{want} not in\n{master}");
    }
    let (_, steering) = call(s.addr, "GET", "/v1/play/match/steering.json", &client, b"");
    assert!(steering.contains(r#""PATHWAY-PRIORITY":["origin"]"#), "{steering}");
    let (st, mpd) = call(s.addr, "GET", "/v1/play/match/manifest.mpd", &client, b"");
    assert!(
        st == 200 && mpd.contains("<BaseURL serviceLocation=\"0\">http://127.0.0.1:7073/l/match/</BaseURL>"),
        "{mpd}"
    );
}

/// ffmpeg, as a player, reads 8 s of the live HLS and of the live DASH
/// (both at once) without an error line. ffmpeg's DASH reader sometimes
/// restarts a stream's timestamps after it reloads a live MPD (2 runs in
/// 13 here, December 2026; nothing else in its output, and Shaka and
/// hls.js play the same event clean in `live_play`): that one quirk gets
/// up to two more reads, the last of which must be clean; anything else
/// fails at once.
fn ffmpeg_reads_it_live(live: SocketAddr) {
    let readers: Vec<_> = ["master.m3u8", "manifest.mpd"]
        .iter()
        .map(|m| (*m, ffmpeg_read(live, m)))
        .collect();
    for (m, child) in readers {
        let quirk = |err: &str| {
            m == "manifest.mpd"
                && !err.trim().is_empty()
                && err.lines().all(|l| l.contains("non monotonically increasing dts"))
        };
        let (mut ok, mut err) = finished(child);
        // Up to two more reads while only the quirk shows (seen twice in a
        // row once on the loaded 2-core runner).
        for _ in 0..2 {
            if !quirk(&err) {
                break;
            }
            eprintln!(
                "ffmpeg's DASH reader restarted its timestamps; reading again: {}",
                err.lines().next().unwrap_or("")
            );
            (ok, err) = finished(ffmpeg_read(live, m));
        }
        let now = get(live, &format!("/l/match/{m}?token={}", token())).text();
        assert!(
            ok && err.trim().is_empty(),
            "ffmpeg reading the live {m}: {}\n{m} now:\n{now}",
            err.lines().take(3).collect::<Vec<_>>().join("\n")
        );
    }
}

/// ffmpeg reading 8 s of `/l/match/{manifest}`.
fn ffmpeg_read(live: SocketAddr, manifest: &str) -> std::process::Child {
    let url = format!("http://{live}/l/match/{manifest}?token={}", token());
    Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-i", &url, "-t", "8", "-map", "0", "-f", "null", "-",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Whether it exited well, and what it wrote to stderr.
fn finished(child: std::process::Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Wrong secret, unknown event, media before init, no token, far future.
fn refusals_before_the_encoder(live: SocketAddr) {
    let put = |path: &str| http::call(live, "PUT", path, &[], b"\0\0\0\x08free").status;
    assert_eq!(put("/ingest/match/wrong-secret-0123456789/init-stream0.m4s"), 403);
    assert_eq!(put(&format!("/ingest/nothing/{SECRET}/init-stream0.m4s")), 404);
    assert_eq!(put(&format!("/ingest/match/{SECRET}/chunk-stream0-00001.m4s")), 409);
    assert_eq!(put(&format!("/ingest/match/{SECRET}/init-stream0.m4s")), 400, "no moov");
    assert_eq!(http::get(live, "/l/match/master.m3u8").status, 403);
}

/// Every segment and part the origin serves is the encoder's bytes.
/// Returns how many segments were compared.
fn segments_match_the_encoder(live: SocketAddr, files: &Path) -> usize {
    let playlist = get(live, "/l/match/stream0/index.m3u8").text();
    let mut compared = 0;
    for msn in playlist.lines().filter_map(|l| l.split_once(".m4s?").map(|(m, _)| m)) {
        let Ok(msn) = msn.parse::<u64>() else {
            continue; // a part line
        };
        let served = get(live, &format!("/l/match/stream0/{msn}.m4s"));
        assert_eq!(served.status, 200);
        let file = std::fs::read(files.join(format!("chunk-stream0-{:05}.m4s", msn + 1))).unwrap();
        assert!(served.body == file, "segment {msn} differs from the encoder's");
        compared += 1;
    }
    // The parts of the newest listed whole segment tile it.
    let last = compared as u64 - 1;
    let mut joined = Vec::new();
    for k in 0.. {
        let r = get(live, &format!("/l/match/stream0/{last}.{k}.m4s"));
        if r.status != 200 {
            break;
        }
        joined.extend_from_slice(&r.body);
    }
    assert_eq!(joined, get(live, &format!("/l/match/stream0/{last}.m4s")).body);
    compared
}

/// Garbage, a repeated old segment, another codec, an oversize box: each
/// refused with its status, and the published segment 1 is unchanged.
fn bad_ingest_changes_nothing(live: SocketAddr, files: &Path) {
    let before = get(live, "/l/match/stream0/1.m4s").body;
    let put = |file: &str, body: &[u8]| {
        let r = http::call(live, "PUT", &format!("/ingest/match/{SECRET}/{file}"), &[], body);
        (r.status, r.text())
    };
    let old = std::fs::read(files.join("chunk-stream0-00001.m4s")).unwrap();
    let (st, why) = put("chunk-stream0-00099.m4s", &old);
    assert_eq!(st, 409, "{why}");
    assert!(why.contains("back in time") || why.contains("repeats"), "{why}");
    let (st, why) = put("chunk-stream0-00100.m4s", b"\0\0\0\x10moofgarbage!");
    assert_eq!(st, 400, "{why}");
    let mut huge = 0x4000_0000u32.to_be_bytes().to_vec();
    huge.extend_from_slice(b"mdat");
    assert_eq!(put("chunk-stream0-00101.m4s", &huge).0, 413);
    let audio_init = std::fs::read(files.join("init-stream1.m4s")).unwrap();
    let (st, why) = put("init-stream0.m4s", &audio_init);
    assert_eq!(st, 409, "{why}");
    assert!(why.contains("codec changed"), "{why}");
    assert!(get(live, "/l/match/stream0/1.m4s").body == before);
}

#[test]
fn an_encoder_killed_and_restarted_leaves_a_gap_and_a_discontinuity() {
    let s = start(&Backend::Sqlite, "live-restart", 30);
    let spec = format!(r#"{{"name":"match","secret":"{SECRET}"}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", &spec).0, 200);
    let mut first = encoder(s.live, None, 60);
    std::thread::sleep(Duration::from_millis(5300));
    first.kill().unwrap(); // mid-segment, as a crash would
    first.wait().unwrap();
    let before = get(s.live, "/l/match/stream0/index.m3u8").text();
    assert!(before.contains("\n1.m4s?"), "{before}");
    // While it is silent, the playlist moves on with gap segments, and a
    // blocking reload for the next segment is answered.
    let next = before
        .lines()
        .filter_map(|l| l.split_once(".m4s?").map(|(m, _)| m))
        .filter_map(|m| m.parse::<u64>().ok())
        .max()
        .unwrap()
        + 1;
    let t0 = Instant::now();
    // Under load the crashed encoder's last upload can land after `before`
    // was read and close that next segment as a short one: the gap is then
    // the one after.
    let mut held = get(s.live, &format!("/l/match/stream0/index.m3u8?_HLS_msn={next}"));
    if held.status == 200 && !held.text().contains("#EXT-X-GAP") {
        held = get(s.live, &format!("/l/match/stream0/index.m3u8?_HLS_msn={}", next + 1));
    }
    assert_eq!(held.status, 200, "{}", held.text());
    assert!(held.text().contains("#EXT-X-GAP"), "{}", held.text());
    eprintln!("a reload during the silence answered after {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    let second = encoder(s.live, None, 5).wait_with_output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let text = get(s.live, "/l/match/stream0/index.m3u8").text();
    // What was published before the crash is still there, unchanged.
    let untokened = |t: &str| {
        t.lines()
            .map(|l| l.split("?token=").next().unwrap_or(l).to_string())
            .collect::<Vec<_>>()
    };
    let now = untokened(&text);
    for line in untokened(&before)
        .iter()
        .filter(|l| l.starts_with("#EXTINF") || (l.ends_with(".m4s") && !l.starts_with('#')))
    {
        assert!(now.contains(line), "{line} is gone:\n{text}");
    }
    let gaps = text.matches("#EXT-X-GAP").count();
    assert!(
        (1..=4).contains(&gaps),
        "{gaps} gap segments for a ~5 s silence:\n{text}"
    );
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let after_restart = text.split("#EXT-X-DISCONTINUITY\n").nth(1).unwrap();
    let msn = after_restart
        .lines()
        .find_map(|l| l.split_once(".m4s?").map(|(m, _)| m.to_string()))
        .unwrap();
    let msn = msn.rsplit('"').next().unwrap().split('.').next().unwrap().to_string();
    let seg = get(s.live, &format!("/l/match/stream0/{msn}.m4s"));
    assert_eq!(seg.status, 200, "the first segment after the restart");
    assert_eq!(&seg.body[4..8], b"styp");
    let gap_msn = text
        .split("#EXT-X-GAP\n")
        .nth(1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    // A gap has no media: whole, an empty answer (a DASH template may name
    // it); its parts do not exist.
    let gap = get(s.live, &format!("/l/match/stream0/{gap_msn}.m4s"));
    assert_eq!((gap.status, gap.body.len()), (200, 0), "a gap has no media");
    assert_eq!(get(s.live, &format!("/l/match/stream0/{gap_msn}.0.m4s")).status, 404);
}

/// Pushes 6 s to event `name` with `codecs` through `muxer` and returns
/// the event's entry in the admin list and rendition 0's playlist.
fn push_and_read(
    s: &Server,
    name: &str,
    codecs: encoder::Codecs,
    muxer: encoder::Muxer,
) -> (serde_json::Value, String) {
    push_spec_and_read(
        s,
        &format!(r#"{{"name":"{name}","secret":"{SECRET}"}}"#),
        name,
        codecs,
        muxer,
    )
}

/// `push_and_read` with the event created from `spec`.
fn push_spec_and_read(
    s: &Server,
    spec: &str,
    name: &str,
    codecs: encoder::Codecs,
    muxer: encoder::Muxer,
) -> (serde_json::Value, String) {
    assert_eq!(admin(s.admin, "POST", "/v1/admin/live", spec).0, 200);
    let ingest = format!("http://{}/ingest/{name}/{SECRET}", s.live);
    let out = encoder::command(&encoder::Push {
        codecs,
        muxer,
        ingest: &ingest,
        rungs: &[encoder::Rung { height: 180, kbps: 300 }],
        secs: Some(6),
        clock: false,
        copy_to: None,
        segment_secs: 2.0,
        part_secs: 0.5,
    })
    .output()
    .unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    let (_, list) = admin(s.admin, "GET", "/v1/admin/live", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let event = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()
        .clone();
    let token = SigningKey::from_hex("k1", KEY_HEX).unwrap().sign(
        &format!("/l/{name}/"),
        &Grant {
            expires: unix_now() + 600,
            client_prefix: None,
        },
    );
    let playlist = http::get(s.live, &format!("/l/{name}/stream0/index.m3u8?token={token}")).text();
    (event, playlist)
}

#[test]
fn av1_opus_and_the_hls_muxers_uploads_are_taken() {
    let s = start(&Backend::Sqlite, "live-codecs", 30);
    let (event, playlist) = push_and_read(&s, "av1", encoder::Codecs::Av1Opus, encoder::Muxer::Dash);
    let codecs: Vec<&str> = event["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["codec"].as_str())
        .collect();
    assert!(codecs[0].starts_with("av01.") && codecs[1] == "opus", "{event}");
    assert!(playlist.matches("#EXTINF:").count() >= 2, "{playlist}");
    assert!(playlist.contains("#EXT-X-PART:DURATION=0.5"), "{playlist}");
    // The HLS muxer uploads whole 2 s segments, one fragment each: a part
    // per segment, the part target grows to fit.
    let (event, playlist) = push_and_read(&s, "hlsmux", encoder::Codecs::H264Aac, encoder::Muxer::Hls);
    assert_eq!(event["tracks"].as_array().unwrap().len(), 2, "{event}");
    assert!(playlist.matches("#EXTINF:").count() >= 2, "{playlist}");
    assert!(
        event["tracks"][0]["codec"].as_str().unwrap().starts_with("avc1."),
        "{event}"
    );
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    use std::io::{Read, Write};
    let s = start(&Backend::Sqlite, "live-door", 30);
    let mut c = std::net::TcpStream::connect(s.live).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(b"GET /l/match/master.m3u8 HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
}

/// What ffmpeg decodes from `bytes` fed on a pipe (with `key`): (frames,
/// whether it said nothing).
fn decode_piped(bytes: &[u8], key: Option<&str>) -> (usize, bool) {
    use std::io::Write;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let mut child = cmd
        .args(["-i", "pipe:0", "-f", "framemd5", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    (frames, out.status.success() && out.stderr.is_empty())
}

#[test]
fn an_encrypted_event_is_encrypted_as_it_is_ingested_and_licensed_per_play() {
    let dir = TempDir::new("live-keys");
    let keys = dir.join("keys");
    let accounts = "6c6976652074657374206163636f756e74732073656372657420666f7220746865206c69766520646f6f72";
    let s = start_full(&Backend::Sqlite, "live-encrypted", 30, None, move |c| {
        c.license.key_store = keys;
        c.license.public_url = Some("http://fill.test".into());
        c.license.entitlement_keys = vec![nearcast_fill_server::config::EntitlementKey {
            id: "a".into(),
            alg: nearcast_license::Alg::HS256,
            secret_hex: accounts.into(),
            public_key_hex: String::new(),
        }];
    });
    let spec = format!(r#"{{"name":"secret","secret":"{SECRET}","encrypt":"cenc"}}"#);
    let (_, playlist) = push_spec_and_read(&s, &spec, "secret", encoder::Codecs::H264Aac, encoder::Muxer::Dash);
    let key = nearcast_packager::cenc::KeyStore::new(&dir.join("keys"))
        .load("secret")
        .unwrap()
        .expect("the event's keys");
    let video = key.key("video").unwrap();
    let kid = nearcast_packager::cenc::keys::hex(&video.kid);
    assert!(
        playlist.contains("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;base64,"),
        "{playlist}"
    );
    assert!(
        playlist.contains(&format!(
            "URI=\"http://fill.test/v1/license/keys/{kid}\",KEYFORMAT=\"identity\""
        )),
        "{playlist}"
    );
    // The segments as players get them decrypt with the key, and only so.
    let token = SigningKey::from_hex("k1", KEY_HEX).unwrap().sign(
        "/l/secret/",
        &Grant {
            expires: unix_now() + 600,
            client_prefix: None,
        },
    );
    let fetch = |file: &str| http::get(s.live, &format!("/l/secret/stream0/{file}?token={token}")).body;
    let mut bytes = fetch("init-0.mp4");
    let segments: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(".m4s"))
        .collect();
    assert!(segments.len() >= 2, "{playlist}");
    for seg in &segments {
        bytes.extend(fetch(seg.split('?').next().unwrap()));
    }
    let (frames, clean) = decode_piped(&bytes, Some(&nearcast_packager::cenc::keys::hex(&video.key)));
    assert!(
        clean && frames >= 60,
        "{frames} frames decoded with the key, clean: {clean}"
    );
    let (_, clean_without) = decode_piped(&bytes, None);
    assert!(!clean_without, "the live segments decode without the key");
    play_route_binds_the_event(&s, accounts);
}

/// The play route wants an entitlement for the encrypted event and binds
/// its master's and MPD's license URL to a play session.
fn play_route_binds_the_event(s: &Server, accounts: &str) {
    // The play route wants an entitlement and binds the license URL.
    assert_eq!(call(s.addr, "GET", "/v1/play/secret/master.m3u8", &[], b"").0, 401);
    let secret = nearcast_common::token::decode_hex(accounts).unwrap();
    let ent = nearcast_license::jwt::sign_hs256(
        "a",
        &secret,
        &serde_json::json!({"sub": "v", "exp": unix_now() + 600, "titles": ["secret"]}),
    );
    let (st, master) = call(
        s.addr,
        "GET",
        &format!("/v1/play/secret/master.m3u8?entitlement={ent}"),
        &[],
        b"",
    );
    assert_eq!(st, 200, "{master}");
    assert!(
        master.contains("#EXT-X-SESSION-DATA:DATA-ID=\"com.nearcast.license\",VALUE=\"http://test/v1/license/s/"),
        "{master}"
    );
    let (st, mpd) = call(
        s.addr,
        "GET",
        &format!("/v1/play/secret/manifest.mpd?entitlement={ent}"),
        &[],
        b"",
    );
    assert!(
        st == 200 && mpd.contains("<dashif:Laurl>http://test/v1/license/s/"),
        "{mpd}"
    );
}
