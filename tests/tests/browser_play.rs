//! A real browser: headless Chromium opens the fill server's player page,
//! which asks steering and plays the sample title with hls.js from the
//! appliance. It must start within 2 s on loopback, play 20 s without
//! rebuffering, take its bytes from the appliance, and report its QoE
//! events to the fill server; the operators' dashboard then shows the box
//! in its fleet table, its bytes served and the site's hit ratio. With the
//! box's per-connection rate capped below the top rendition the player
//! switches down; with the box stopped mid-play it carries on from the
//! next pathway steering gave it (the origin).
//!
//! The tests of this file are in the `realtime` group of
//! `.config/nextest.toml` (one at a time with the live tests): each drives
//! a Chromium that decodes video, and two such tests at once on two cores
//! starve each other into rebuffering.

use std::time::Duration;

use nearcast::stack::{Ports, Stack, ADMIN_TOKEN, TITLE};
use nearcast_appliance::config::Config as ApplianceConfig;
use nearcast_e2e::{curl_get, metric, png_size, AgentProcess, Browser};
use nearcast_testkit::TempDir;

/// A stack with one box that holds the sample title and is steered to,
/// its appliance set up by `tune`.
/// The scratch directory comes first, so it is dropped after the stack.
fn serving(name: &str, tune: impl FnOnce(&mut ApplianceConfig)) -> (TempDir, Stack, AgentProcess) {
    let root = TempDir::new(&format!("e2e-{name}"));
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box_with(|_| {}, tune).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    agent.wait_for_run(Duration::from_secs(60));
    // Steering knows the box holds the title (its inventory report).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let box_url = format!("http://{}/", stack.boxes[0].http_addr);
    while !String::from_utf8_lossy(&curl_get(&format!("{}/v1/steer?title={TITLE}", stack.fill_url)).1)
        .contains(&box_url)
    {
        assert!(std::time::Instant::now() < deadline, "the box never became steerable");
        std::thread::sleep(Duration::from_millis(100));
    }
    (root, stack, agent)
}

/// Height of the top rendition of the sample title.
const TOP: u64 = 360;

#[test]
fn the_player_page_plays_from_the_appliance_and_reports_qoe() {
    let (_root, mut stack, agent) = serving("browser", |_| {});
    let box_metrics =
        || String::from_utf8(curl_get(&format!("http://{}/metrics", stack.boxes[0].admin_addr)).1).unwrap();
    let sent_before = metric(&box_metrics(), "nearcast_sent_bytes_total").unwrap_or(0.0);

    let browser = Browser::start();
    browser.goto(&format!("{}/player?title={TITLE}", stack.fill_url));
    browser.wait_for(
        "playback starts",
        "return !!(window.nearcastQoe && window.nearcastQoe.started)",
        Duration::from_secs(10),
    );
    let startup = browser.eval("return window.nearcastQoe.startup_ms").as_f64().unwrap();
    assert!(startup < 2000.0, "startup took {startup} ms");
    browser.wait_for(
        "20 s of playback",
        "return document.getElementById('video').currentTime >= 20",
        Duration::from_secs(40),
    );
    let q = browser.eval("return window.nearcastQoe");
    assert_eq!(
        (q["rebuffers"].as_u64(), q["errors"].as_u64()),
        (Some(0), Some(0)),
        "{q}"
    );
    let steered = browser.eval("return document.getElementById('where').textContent");
    assert!(
        steered
            .as_str()
            .unwrap()
            .contains(&stack.boxes[0].http_addr.to_string()),
        "{steered}"
    );

    // The bytes came from the appliance.
    let sent = metric(&box_metrics(), "nearcast_sent_bytes_total").unwrap_or(0.0) - sent_before;
    assert!(sent > 500_000.0, "the appliance sent {sent} bytes");
    // The QoE events reached the fill server.
    browser.wait_for(
        "QoE flushed",
        "return window.nearcastQoe.sent >= 3",
        Duration::from_secs(10),
    );
    let summary: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/qoe", "").unwrap()).unwrap();
    assert_eq!(summary["sessions"], 1, "{summary}");
    assert!(summary["startup_p50_ms"].as_u64().unwrap() < 2000, "{summary}");
    assert_eq!(summary["rebuffers"], 0);
    assert_eq!(summary["rebuffer_ratio"], 0.0);
    let host = stack.boxes[0].http_addr.to_string();
    assert!(summary["by_host"][&host].as_u64().unwrap_or(0) > 0, "{summary}");
    dashboard_shows_the_playback(&stack, &browser);
    drop(browser);
    drop(agent);
    stack.boxes[0].stop_appliance();
}

/// The operators' dashboard: the fleet table lists the box, its bytes
/// served (from heartbeats) and the site's hit ratio from this playback.
fn dashboard_shows_the_playback(stack: &Stack, browser: &Browser) {
    browser.goto(&format!("{}/dashboard#token={ADMIN_TOKEN}", stack.admin_url));
    browser.wait_for(
        "dashboard with bytes served",
        "return document.body.dataset.loaded === 'yes' && !!document.querySelector('#fleet tr[data-id=\"box-1\"]') \
         && !document.querySelector('#fleet tr[data-id=\"box-1\"]').textContent.includes('0 kB')",
        Duration::from_secs(20),
    );
    let row = browser.eval("return document.querySelector('#fleet tr[data-id=\"box-1\"]').textContent");
    let row = row.as_str().unwrap();
    let index: nearcast_packager::TitleIndex = serde_json::from_slice(
        &std::fs::read(
            stack
                .config
                .origin_store
                .join(TITLE)
                .join(nearcast_packager::index::INDEX_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    let files = index.files.len();
    assert!(
        row.contains("loopback-site") && row.contains("s ago") && row.contains(&format!("{files}/{files} files")),
        "{row}"
    );
    assert!(row.contains("ok") || row.contains("filling"), "{row}");
    let sites = browser.eval("return document.querySelector('#sites tbody').textContent");
    assert!(
        sites.as_str().unwrap().contains("100.0%"),
        "every progress report came from the box: {sites}"
    );
    let qoe = browser.eval("return document.querySelector('#qoe tbody').textContent");
    assert!(qoe.as_str().unwrap().contains("sessions1"), "{qoe}");
    // The plots over time: the box's bytes this hour, a day of traffic
    // with its hit ratio, and the misses table.
    let line = browser.eval("const p = document.querySelector('#hourly polyline[data-series=\"box-1\"]'); return p ? p.getAttribute('points') : ''");
    assert!(
        line.as_str().is_some_and(|p| !p.is_empty()),
        "no hourly line for box-1: {line}"
    );
    let days = browser.eval("return document.querySelector('#days tbody').textContent");
    assert!(days.as_str().unwrap().contains('%'), "{days}");
    let misses = browser.eval("return document.querySelector('#misses tbody').textContent");
    assert!(!misses.as_str().unwrap().is_empty(), "{misses}");
    // The screenshot people look at, and the fleet table in it.
    let page = browser.screenshot_png(None);
    let (w, h) = png_size(&page).expect("a PNG of the window");
    assert!(w == 1280 && h > 600, "the whole viewport: {w}x{h}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nearcast-dashboard.png");
    std::fs::write(&shot, &page).unwrap();
    eprintln!("dashboard screenshot: {}", shot.display());
    let table = browser.screenshot_png(Some("#fleet"));
    let (w, h) = png_size(&table).expect("a PNG of the fleet table");
    assert!(w >= 600 && h >= 40, "the fleet table shows a header and a row: {w}x{h}");
}

#[test]
fn the_player_switches_down_when_the_box_caps_each_connection() {
    // 160 kbit/s per connection: below the top rendition's video alone.
    let (_root, mut stack, agent) = serving("browser-cap", |c| c.rate_limit.kbit_per_connection = 160);
    let browser = Browser::start();
    browser.goto(&format!("{}/player?title={TITLE}&buffer=8", stack.fill_url));
    browser.wait_for(
        "a switch below the top rendition",
        &format!("const q = window.nearcastQoe; return !!q && q.heights.some((h) => h < {TOP})"),
        Duration::from_secs(60),
    );
    let q = browser.eval("return window.nearcastQoe");
    assert_eq!(q["heights"][0], TOP, "the player starts at the top rendition: {q}");
    assert_eq!(q["fatal"], 0, "{q}");
    // The lower rendition's segments came from the capped box.
    let host = stack.boxes[0].http_addr.to_string();
    browser.wait_for(
        "playback at the lower rendition",
        &format!(
            "const v = document.getElementById('video'); return v.currentTime > 4 && window.nearcastQoe.height < {TOP}"
        ),
        Duration::from_secs(60),
    );
    let hosts = browser.eval("return window.nearcastQoe.hosts");
    assert!(hosts[&host].as_u64().unwrap_or(0) > 0, "{hosts}");
    assert_eq!(hosts.as_object().map(|h| h.len()), Some(1), "only the box: {hosts}");
    drop(browser);
    drop(agent);
    stack.boxes[0].stop_appliance();
}

#[test]
fn the_player_carries_on_from_the_origin_when_its_box_stops() {
    let (_root, mut stack, agent) = serving("browser-failover", |_| {});
    let browser = Browser::start();
    // A short buffer, so the player is still fetching when the box goes.
    browser.goto(&format!("{}/player?title={TITLE}&buffer=6", stack.fill_url));
    browser.wait_for(
        "5 s of playback",
        "return document.getElementById('video').currentTime >= 5",
        Duration::from_secs(30),
    );
    let host = stack.boxes[0].http_addr.to_string();
    let origin = stack.origin.http_addr.to_string();
    let before = browser.eval("return window.nearcastQoe.hosts");
    assert!(before[&host].as_u64().unwrap_or(0) > 0, "{before}");
    assert!(before.get(&origin).is_none(), "nothing from the origin yet: {before}");
    let stopped_at = browser
        .eval("return document.getElementById('video').currentTime")
        .as_f64()
        .unwrap();
    stack.boxes[0].stop_appliance();
    assert!(
        stopped_at + 6.0 < 25.0,
        "the box stopped at {stopped_at} s with most of the title still to fetch"
    );
    browser.wait_for(
        "playback past 25 s after the box stopped",
        "return document.getElementById('video').currentTime >= 25",
        Duration::from_secs(60),
    );
    let q = browser.eval("return window.nearcastQoe");
    assert_eq!(q["fatal"], 0, "{q}");
    assert!(
        q["hosts"][&origin].as_u64().unwrap_or(0) > 0,
        "segments from the origin: {q}"
    );
    assert!(q["errors"].as_u64().unwrap_or(0) > 0, "the dead box was noticed: {q}");
    // The fill server heard where the rest of the session came from.
    browser.wait_for(
        "QoE flushed",
        "return window.nearcastQoe.sent >= 5",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let summary: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/qoe", "").unwrap()).unwrap();
    assert!(summary["by_host"][&origin].as_u64().unwrap_or(0) > 0, "{summary}");
    drop(browser);
    drop(agent);
}
