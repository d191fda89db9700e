//! A live event after it ends: ffmpeg pushes 8 s into the stack's live
//! door, the operator ends the event, and the fill server writes it into
//! the origin store as a VOD title (the live segments, VOD playlists, a
//! static MPD, a title index). ffmpeg plays it through the player route
//! from the origin; play logs make it popular, a box's agent fills it like
//! any title, and ffmpeg plays it again, steered to the box.
//!
//! In the `realtime` group of `.config/nextest.toml`: ffmpeg encodes in
//! real time, never beside a browser test.

use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack};
use nearcast_e2e::{assert_plays, curl_get, metric, AgentProcess};
use nearcast_packager::live::encoder::Rung;
use nearcast_packager::TitleIndex;
use nearcast_testkit::TempDir;

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_ended_event_is_a_title_boxes_fill() {
    let root = TempDir::new("e2e-live-vod");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    let mut encoder = stack
        .start_live("match", &[Rung { height: 180, kbps: 300 }], Some(8))
        .unwrap();
    wait_until("the encoder finishes", Duration::from_secs(30), || !encoder.running());
    let ended = stack.admin("POST", "/v1/admin/live/match/end", "").unwrap();
    assert!(ended.contains("writing"), "{ended}");
    let index_file = stack.config.origin_store.join("match/index.json");
    wait_until("the archive's index", Duration::from_secs(20), || index_file.is_file());
    let index: TitleIndex = serde_json::from_slice(&std::fs::read(&index_file).unwrap()).unwrap();
    assert!((7.0..=9.0).contains(&index.duration_secs), "{}", index.duration_secs);
    for f in &index.files {
        let bytes = std::fs::read(stack.config.origin_store.join("match").join(f.path.as_str())).unwrap();
        assert_eq!(nearcast_common::sha256_hex(&bytes), f.sha256, "{}", f.path);
    }
    let names: Vec<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
    for want in [
        "master.m3u8",
        "manifest.mpd",
        "stream0/index.m3u8",
        "stream0/init-0.mp4",
        "stream1/0.m4s",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let list = stack.admin("GET", "/v1/admin/live", "").unwrap();
    assert!(list.contains(r#""archive":"done""#), "{list}");

    // From the origin, then from a box that filled it.
    let play = format!("{}/v1/play/match/master.m3u8", stack.fill_url);
    assert_plays(&play);
    assert_plays(&format!("{}/v1/play/match/manifest.mpd", stack.fill_url));
    stack.make_popular("match", 50).unwrap();
    stack.add_box(|_| {}).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let run = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(run["titles"], serde_json::json!(["match"]), "{run}");
    let box_url = format!("http://{}/", stack.boxes[0].http_addr);
    wait_until("steering sends players to the box", Duration::from_secs(10), || {
        let (_, master) = curl_get(&play);
        String::from_utf8_lossy(&master).contains("PATHWAY-ID=\"box-1\"")
    });
    let sent = |stack: &Stack| {
        let m = String::from_utf8(curl_get(&format!("http://{}/metrics", stack.boxes[0].admin_addr)).1).unwrap();
        metric(&m, "nearcast_sent_bytes_total").unwrap_or(0.0)
    };
    let before = sent(&stack);
    assert_plays(&play);
    assert!(
        sent(&stack) - before > 100_000.0,
        "the box served the archived event ({box_url})"
    );
    drop(encoder);
    drop(agent);
    stack.boxes[0].stop_appliance();
}
