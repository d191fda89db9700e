//! Box failures that every player survives: hls.js and Shaka Player on
//! HLS (content-steering pathways), Shaka Player and dash.js on DASH
//! (BaseURLs), each with a 6 s buffer, play the sample title through
//! steering from a site of three boxes, the origin last. Mid-play box-1's
//! disk fails (it answers 404 for every file: its failed answers take it
//! out of steering within a heartbeat), then box-2 hangs (a proxy in
//! front of it stops forwarding, mid-body for what is in flight), then
//! box-3's appliance stops (connections refused). Every player must reach
//! the end with no fatal error and no stall longer than 1.5 s.
//!
//! One browser run, in the `realtime` group of `.config/nextest.toml`.

use std::path::Path;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::proxy::FreezingProxy;
use nearcast_e2e::site::Site;
use nearcast_e2e::{curl_get, start_agents, url_encode, wait_steerable, AgentProcess, Browser};
use nearcast_testkit::TempDir;

const PLAYERS: [&str; 4] = ["hlsjs", "shakaHls", "shakaDash", "dashjs"];

fn steered(stack: &Stack) -> String {
    String::from_utf8_lossy(&curl_get(&format!("{}/v1/steer?title={TITLE}", stack.fill_url)).1).into_owned()
}

/// Waits until every player is past `secs` (or one failed for good).
fn until_all_past(browser: &Browser, secs: f64, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let r = browser.eval("return window.results || {}");
        let past = PLAYERS
            .iter()
            .all(|p| r[*p]["position"].as_f64().unwrap_or(0.0) >= secs || r[*p]["ended"] == true);
        if past || r.to_string().contains("fatal") || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A site of three boxes, each on a loopback address of its own, steerable
/// for the sample; box-2 behind the proxy that can hang it.
fn a_site_of_three_boxes(root: &TempDir) -> (Stack, Vec<AgentProcess>, FreezingProxy) {
    let mut stack = Stack::start(root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    // Each box on a loopback address of its own, as boxes have host names
    // of their own: Shaka Player bans a failed location by host, not by
    // host and port, and bans every location whose host is a substring of
    // the failed URL (127.0.0.10 would ban the origin's 127.0.0.1).
    // Players reach box-2 through the proxy that hangs it, on .5.
    let hang = FreezingProxy::listen("127.0.0.5");
    let on = |host: &'static str| {
        move |c: &mut nearcast_appliance::config::Config| c.listen = format!("{host}:0").parse().unwrap()
    };
    stack.add_box_with(|_| {}, on("127.0.0.2")).unwrap();
    let proxied = format!("http://{}", hang.addr);
    stack.add_box_with(|a| a.public_url = proxied, on("127.0.0.6")).unwrap();
    hang.forward_to(stack.boxes[1].http_addr);
    stack.add_box_with(|_| {}, on("127.0.0.4")).unwrap();
    let agents = start_agents(&stack);
    wait_steerable(&stack, TITLE);
    (stack, agents, hang)
}

#[test]
fn every_player_carries_on_through_box_failures() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules");
    assert!(
        web.join("dashjs").is_dir(),
        "players missing: npm ci --prefix tests/web"
    );
    let root = TempDir::new("e2e-failover");
    let (mut stack, agents, hang) = a_site_of_three_boxes(&root);
    let urls: Vec<String> = stack.boxes.iter().map(|b| format!("{}/", b.agent.public_url)).collect();
    let site = Site::serve(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let browser = Browser::start();
    let play = |file: &str| format!("{}/v1/play/{TITLE}/{file}", stack.fill_url);
    browser.goto(&format!(
        "{}?hls={}&dash={}",
        site.url("tests/web/failover.html"),
        url_encode(&play("master.m3u8")),
        url_encode(&play("manifest.mpd"))
    ));
    let r = until_all_past(&browser, 5.0, Duration::from_secs(30));
    eprintln!("before the failures: {r}");

    // box-1's disk fails: every file is 404 from now on.
    let fail = nearcast_testkit::http::call(stack.boxes[0].admin_addr, "POST", "/disks/0/fail", &[], b"");
    assert_eq!(fail.status, 200);
    let t = Instant::now();
    while steered(&stack).contains(&urls[0]) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "box-1 still steered to: {}",
            steered(&stack)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("box-1 out of steering {:?} after its disk failed", t.elapsed());
    let r = until_all_past(&browser, 12.0, Duration::from_secs(30));
    eprintln!("after box-1 failed: {r}");

    // box-2 hangs: nothing more comes from it, nothing is closed.
    hang.freeze();
    let r = until_all_past(&browser, 20.0, Duration::from_secs(30));
    eprintln!("after box-2 hung: {r}");

    // box-3's appliance stops: connections refused.
    stack.boxes[2].stop_appliance();
    let r = until_all_past(&browser, 29.5, Duration::from_secs(40));
    eprintln!("at the end: {r}");
    for p in PLAYERS {
        let x = &r[p];
        assert!(
            x["position"].as_f64().unwrap_or(0.0) >= 29.5 || x["ended"] == true,
            "{p} did not reach the end: {x}"
        );
        assert!(!x["errors"].to_string().contains("fatal"), "{p}: {x}");
        let longest = x["longestStallMs"]
            .as_f64()
            .unwrap_or(0.0)
            .max(x["stalledMs"].as_f64().unwrap_or(0.0));
        assert!(longest <= 1500.0, "{p} stalled {longest} ms: {x}");
    }
    drop(browser);
    drop(agents);
}
