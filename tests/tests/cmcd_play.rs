//! CMCD from real players, through steering: headless Chromium plays the
//! sample title with hls.js (HLS), Shaka Player and dash.js (DASH), each
//! with its CMCD option on (query form, a session id of its own), from a
//! box that also sends CMSD. The box's `/status` names each player's
//! session with its bitrate and buffer; the agent's heartbeats carry them
//! to the fill server, whose QoE summary shows the box's sessions and the
//! title's average bitrate.
//!
//! One browser run, in the `realtime` group of `.config/nextest.toml`.

use std::path::Path;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_common::appliance::ApplianceStatus;
use nearcast_e2e::site::Site;
use nearcast_e2e::{curl_get, start_agents, url_encode, wait_steerable, AgentProcess, Browser};
use nearcast_testkit::TempDir;

const PLAYERS: [&str; 3] = ["hlsjs", "shaka", "dashjs"];

fn box_status(stack: &Stack) -> ApplianceStatus {
    let body = curl_get(&format!("http://{}/status", stack.boxes[0].admin_addr)).1;
    serde_json::from_slice(&body).unwrap()
}

/// The stack with one box that sends CMSD, steerable for the sample.
fn stack_with_a_cmsd_box(root: &TempDir) -> (Stack, AgentProcess) {
    let mut stack = Stack::start(root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    stack
        .add_box_with(
            |_| {},
            |c| {
                c.cmsd.enabled = true;
                c.cmsd.server_id = "box-1".into();
            },
        )
        .unwrap();
    let agent = start_agents(&stack).remove(0);
    wait_steerable(&stack, TITLE);
    (stack, agent)
}

/// The box's heartbeats brought the sessions to the fill server.
fn the_fill_server_shows_them(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let cmcd = loop {
        let qoe: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/qoe", "").unwrap()).unwrap();
        let sessions = qoe["cmcd"]["by_box"]["box-1"]["sessions"].as_u64().unwrap_or(0);
        if sessions >= 3 || Instant::now() > deadline {
            break qoe["cmcd"].clone();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("fill server: {cmcd}");
    assert!(cmcd["by_box"]["box-1"]["sessions"].as_u64().unwrap_or(0) >= 3, "{cmcd}");
    assert!(
        cmcd["by_title"][TITLE]["avg_bitrate_kbps"].as_u64().unwrap_or(0) > 0,
        "{cmcd}"
    );
    assert_eq!(cmcd["by_box"]["box-1"]["demoted"], false, "{cmcd}");
}

#[test]
fn hls_js_shaka_and_dash_js_report_cmcd_that_reaches_the_fill_server() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules");
    assert!(
        web.join("shaka-player").is_dir() && web.join("dashjs").is_dir(),
        "players missing: npm ci --prefix tests/web (scripts/test does it)"
    );
    let root = TempDir::new("e2e-cmcd");
    let (mut stack, agent) = stack_with_a_cmsd_box(&root);
    let site = Site::serve(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let browser = Browser::start();
    let url = |file: &str| format!("{}/v1/play/{TITLE}/{file}", stack.fill_url);
    browser.goto(&format!(
        "{}?hls={}&dash={}",
        site.url("tests/web/cmcd.html"),
        url_encode(&url("master.m3u8")),
        url_encode(&url("manifest.mpd"))
    ));
    let deadline = Instant::now() + Duration::from_secs(45);
    let results = loop {
        let r = browser.eval("return window.results || {}");
        let done = PLAYERS.iter().all(|p| r[*p]["position"].as_f64().unwrap_or(0.0) > 6.0);
        let fatal = r.to_string().contains("fatal");
        if done || fatal || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("players: {results}");
    for p in PLAYERS {
        assert!(
            results[p]["position"].as_f64().unwrap_or(0.0) > 6.0,
            "{p} did not play: {}",
            results[p]
        );
    }

    // The box's report names each player's session.
    let status = box_status(&stack);
    for p in PLAYERS {
        let sid = format!("sid-{p}");
        let s = status
            .sessions
            .iter()
            .find(|s| s.sid == sid)
            .unwrap_or_else(|| panic!("no session {sid} on the box: {:?}", status.sessions));
        eprintln!("{p}: {s:?}");
        assert_eq!(s.title.as_deref(), Some(TITLE), "{s:?}");
        assert!(s.media_requests >= 2 && s.bitrate_kbps > 0, "{p}: {s:?}");
        assert!(s.buffer_ms.is_some(), "{p} reports its buffer: {s:?}");
    }
    drop(browser);

    the_fill_server_shows_them(&stack);
    drop(agent);
    stack.boxes[0].stop_appliance();
}
