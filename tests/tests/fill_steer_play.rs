//! The flow of a title across every part, on loopback: the sample title
//! is packaged into the origin, play logs make it popular, two appliances
//! of one site fill it with their agents (real `control-agent` processes)
//! — the first from the origin, the second from the first, so the origin
//! serves each file once — then a client of the ISP is steered, fetches
//! every file of every rendition through the steered URLs (bytes equal to
//! the origin's index), and ffmpeg plays the title through the rewritten
//! manifests. When a box's appliance stops, or its agent falls silent,
//! steering leaves it within the heartbeat timeout.

use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_common::sha256_hex;
use nearcast_e2e::{assert_plays, curl_get, metric, AgentProcess};
use nearcast_testkit::TempDir;

const HEARTBEAT_TIMEOUT: u64 = 4;

fn steer(stack: &Stack) -> Vec<String> {
    steer_file(stack, "master.m3u8")
}

fn steer_file(stack: &Stack, file: &str) -> Vec<String> {
    let (code, body) = curl_get(&format!("{}/v1/steer?title={TITLE}&file={file}", stack.fill_url));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
}

fn metrics(admin: std::net::SocketAddr) -> String {
    String::from_utf8(curl_get(&format!("http://{admin}/metrics")).1).unwrap()
}

/// Waits until no steering answer names `url_prefix`; the time it took.
fn time_until_unsteered(stack: &Stack, url_prefix: &str) -> Duration {
    let t0 = Instant::now();
    while steer(stack).iter().any(|u| u.starts_with(url_prefix)) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{url_prefix} is still steered to"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

#[test]
fn two_boxes_fill_peer_first_and_players_are_steered_to_them() {
    let root = TempDir::new("e2e-fill");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, HEARTBEAT_TIMEOUT).unwrap();
    stack.make_popular(TITLE, 100).unwrap();
    let files = origin_files(&root);
    stack.add_box(|_| {}).unwrap();
    stack.add_box(|_| {}).unwrap();
    let (agent1, mut agent2) = fill_peer_first(&stack, &files);
    let box_urls = steered_to_both_boxes(&stack);
    plays_through_both_boxes(&stack, &files);

    // Box 1's appliance stops: its agent reports it failed at the next
    // beat and steering leaves it, well within the heartbeat timeout.
    let box1 = box_urls[0].clone();
    stack.boxes[0].stop_appliance();
    let took = time_until_unsteered(&stack, &box1);
    assert!(took <= Duration::from_secs(HEARTBEAT_TIMEOUT), "{took:?}");
    let urls = steer(&stack);
    assert!(urls[0].starts_with(&box_urls[1]), "box 2 takes the clients: {urls:?}");

    // Box 2's agent dies: no more heartbeats; steering leaves the box once
    // its last beat (at most a beat before the kill) is older than the
    // timeout.
    agent2.kill();
    let took = time_until_unsteered(&stack, &box_urls[1]);
    assert!(took <= Duration::from_secs(HEARTBEAT_TIMEOUT + 2), "{took:?}");
    assert_eq!(steer(&stack).len(), 1, "only the origin is left");
    drop(agent1);
    the_origin_bytes_are_misses_of_their_reason(&stack, &files);
}

/// With no box left, a viewer fetches a segment from the origin through
/// its steered URL: the misses report has the answers that sent it there
/// (and those the waits above asked for) and its bytes under
/// `boxes_down`, for the client's ISP. The boxes' fills, which the origin
/// served too, are not viewers' bytes: what else the origin served
/// viewers (ffmpeg reads the origin pathway's playlists too) is
/// `fallback`, and less than one copy of the title.
fn the_origin_bytes_are_misses_of_their_reason(stack: &Stack, files: &[(String, u64, String)]) {
    let (path, size, _) = files.iter().find(|f| f.0.ends_with(".m4s")).unwrap();
    let url = steer_file(stack, path).remove(0);
    let (code, body) = curl_get(&url);
    assert_eq!((code, body.len() as u64), (200, *size));
    let deadline = Instant::now() + Duration::from_secs(12);
    let report = loop {
        let r: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/misses", "").unwrap()).unwrap();
        if r["by_reason"]["boxes_down"]["bytes"].as_u64() >= Some(*size) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let down = &report["by_reason"]["boxes_down"];
    assert!(down["sessions"].as_u64() >= Some(1), "{report}");
    assert!(down["bytes"].as_u64() >= Some(*size), "{report}");
    assert!(report["by_isp"]["loopback-isp"]["boxes_down"].is_object(), "{report}");
    let title: u64 = files.iter().map(|f| f.1).sum();
    let fallback = report["by_reason"]["fallback"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        fallback < title,
        "fills counted as viewers' bytes? {fallback} of {title}: {report}"
    );
}

/// The origin index's files: (path, size, sha256).
fn origin_files(root: &TempDir) -> Vec<(String, u64, String)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("origin/sample/index.json")).unwrap()).unwrap();
    index["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Box 1 fills from the origin, then box 2 from box 1: the origin serves
/// each file once.
fn fill_peer_first(stack: &Stack, files: &[(String, u64, String)]) -> (AgentProcess, AgentProcess) {
    let title_bytes: u64 = files.iter().map(|f| f.1).sum();
    let agent1 = AgentProcess::start(&stack.boxes[0].agent_config);
    let s1 = agent1.wait_for_run(Duration::from_secs(60));
    assert_eq!(s1["fill"]["failures"], serde_json::json!([]), "{s1}");
    assert_eq!(s1["titles"], serde_json::json!([TITLE]));
    let agent2 = AgentProcess::start(&stack.boxes[1].agent_config);
    let s2 = agent2.wait_for_run(Duration::from_secs(60));
    assert_eq!(s2["titles"], serde_json::json!([TITLE]), "{s2}");
    assert_eq!(s2["fill"]["files_done"].as_u64(), Some(files.len() as u64));
    let agent2_metrics = String::from_utf8(curl_get(&format!("http://{}/metrics", agent2.admin)).1).unwrap();
    assert_eq!(
        metric(&agent2_metrics, "nearcast_agent_filled_bytes_total{source=\"peer\"}"),
        Some(title_bytes as f64),
        "box 2 filled everything from box 1"
    );
    let origin = metrics(stack.origin.admin_addr);
    assert_eq!(
        metric(&origin, "nearcast_requests_total{code=\"200\"}"),
        Some(files.len() as f64),
        "the origin served each file once"
    );
    assert_eq!(metric(&origin, "nearcast_requests_total{code=\"206\"}"), Some(0.0));
    (agent1, agent2)
}

/// The fill server knows both boxes hold the title (inventory reports):
/// steering names both, then the origin. Returns the boxes' base URLs.
fn steered_to_both_boxes(stack: &Stack) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let urls = loop {
        let urls = steer(stack);
        if urls.len() == 3 || Instant::now() > deadline {
            break urls;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let box_urls: Vec<String> = stack.boxes.iter().map(|b| format!("http://{}/", b.http_addr)).collect();
    assert_eq!(urls.len(), 3, "two boxes then the origin: {urls:?}");
    assert!(
        urls[..2].iter().all(|u| box_urls.iter().any(|b| u.starts_with(b))),
        "{urls:?}"
    );
    assert!(urls[2].starts_with(&format!("http://{}/", stack.origin.http_addr)));
    box_urls
}

/// Every file of every rendition, steered one by one, from each box named:
/// the origin's bytes; a real player through the rewritten manifests; the
/// bytes served reach the fill server in the next heartbeats.
fn plays_through_both_boxes(stack: &Stack, files: &[(String, u64, String)]) {
    for (path, size, sha) in files {
        let urls = steer_file(stack, path);
        assert_eq!(urls.len(), 3, "{path}: {urls:?}");
        for url in &urls[..2] {
            let (code, body) = curl_get(url);
            assert_eq!(code, 200, "{url}");
            assert_eq!((body.len() as u64, sha256_hex(&body)), (*size, sha.clone()), "{url}");
        }
    }
    // A real player through the fill server's rewritten manifests.
    for manifest in ["master.m3u8", "manifest.mpd"] {
        assert_plays(&format!("{}/v1/play/{TITLE}/{manifest}", stack.fill_url));
    }
    for b in &stack.boxes {
        let m = metrics(b.admin_addr);
        assert_eq!(
            metric(&m, "nearcast_requests_total{code=\"403\"}"),
            Some(0.0),
            "{}",
            b.id
        );
    }
    let (code, _) = curl_get(&format!("http://{}/c/{TITLE}/360p/init.mp4", stack.boxes[0].http_addr));
    assert_eq!(code, 403, "no token, no bytes");
    // The bytes served reach the fill server in the next heartbeats (the
    // next day's demand).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reported = 0;
    while reported == 0 {
        assert!(Instant::now() < deadline, "no heartbeat reported bytes served");
        let all: serde_json::Value =
            serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
        reported = all
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["heartbeat"]["bytes_by_title"][TITLE].as_u64())
            .sum();
        std::thread::sleep(Duration::from_millis(50));
    }
}
