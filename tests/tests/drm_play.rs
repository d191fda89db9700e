//! An encrypted title in real players, through steering: the sample
//! packaged again with `cenc` and with `cbcs` (keys in the stack's key
//! store), a box in the players' ISP that fills both, and headless
//! Chromium with hls.js (HLS, EME Clear Key), Shaka Player on the DASH
//! MPD and Shaka Player on HLS, side by side (`tests/web/drm.html`). Each
//! player opens the title through `/v1/play` with the viewer's
//! entitlement and gets its keys from the play session's license URL
//! the manifest carries; nothing in the page names a license server.
//!
//! `cenc`: every player must play 6 s with MediaKeys on its element, a
//! license or key request of its own, no fatal error, the box serving the
//! bytes. `cbcs`: which players play it is printed (recorded in
//! docs/content-protection.md); both Shaka Players must (Chromium's Clear
//! Key decrypts cbcs), hls.js does not (see below). Then the box's
//! disk: its copy of a segment is the encrypted one (its `mdat` differs
//! from the clear sample's), and no key is anywhere on it. The fill
//! server's own player page plays the cenc title too, given the
//! entitlement in its URL.
//!
//! One browser run, in the `realtime` group of `.config/nextest.toml`.

use std::path::Path;
use std::time::Duration;

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::site::Site;
use nearcast_e2e::{curl_get, metric, url_encode, AgentProcess, Browser};
use nearcast_packager::cenc::{KeyStore, Scheme};
use nearcast_testkit::TempDir;

const PLAYERS: [&str; 3] = ["hlsjs", "shakaDash", "shakaHls"];

/// The stack with both encrypted copies, and a box that holds them and
/// is steered to.
fn stack_with_box(root: &TempDir) -> (Stack, AgentProcess) {
    let mut stack = Stack::start(root, Ports::EPHEMERAL, 30).unwrap();
    for (title, scheme) in [("secret-cenc", Scheme::Cenc), ("secret-cbcs", Scheme::Cbcs)] {
        stack.package_encrypted(title, scheme).unwrap();
        stack.make_popular(title, 10).unwrap();
    }
    stack.add_box(|_| {}).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    agent.wait_for_run(Duration::from_secs(60));
    let box_url = format!("http://{}/", stack.boxes[0].http_addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for title in ["secret-cenc", "secret-cbcs"] {
        while !String::from_utf8_lossy(&curl_get(&format!("{}/v1/steer?title={title}", stack.fill_url)).1)
            .contains(&box_url)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the box never became steerable for {title}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    (stack, agent)
}

/// Opens the page on `title` and waits (up to 45 s) for each of `wait_for`
/// to pass 6 s or fail; returns the page's results.
fn play(
    browser: &Browser,
    site: &Site,
    stack: &Stack,
    title: &str,
    entitlement: &str,
    wait_for: &[&str],
) -> serde_json::Value {
    let url = |file: &str| format!("{}/v1/play/{title}/{file}?entitlement={entitlement}", stack.fill_url);
    browser.goto(&format!(
        "{}?hls={}&dash={}",
        site.url("tests/web/drm.html"),
        url_encode(&url("master.m3u8")),
        url_encode(&url("manifest.mpd"))
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let r = browser.eval("return window.results || {}");
        let done = wait_for.iter().all(|p| {
            let p = &r[*p];
            p["position"].as_f64().unwrap_or(0.0) > 6.0 || p["errors"].to_string().contains("fatal")
        });
        if done || std::time::Instant::now() > deadline {
            eprintln!("{title}: {r}");
            return r;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn played(r: &serde_json::Value, player: &str) -> bool {
    let p = &r[player];
    p["position"].as_f64().unwrap_or(0.0) > 6.0
        && p["mediaKeys"] == true
        && p["licenses"].as_u64().unwrap_or(0) >= 1
        && !p["errors"].to_string().contains("fatal")
}

#[test]
fn hls_js_and_shaka_play_an_encrypted_title_through_steering_and_the_license_service() {
    let root = TempDir::new("e2e-drm");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("web/node_modules/shaka-player")
            .is_dir(),
        "Shaka Player is missing: npm ci --prefix tests/web (scripts/test does it)"
    );
    let (stack, _agent) = stack_with_box(&root);
    let sent = || {
        let m =
            String::from_utf8_lossy(&curl_get(&format!("http://{}/metrics", stack.boxes[0].admin_addr)).1).into_owned();
        metric(&m, "nearcast_sent_bytes_total").unwrap_or(0.0)
    };
    let before = sent();
    let entitlement = stack.entitlement("viewer-1", &["secret-cenc", "secret-cbcs"], 3600, None);
    // Served from loopback: EME is refused to file:// pages.
    let site = Site::serve(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let browser = Browser::start();
    let cenc = play(&browser, &site, &stack, "secret-cenc", &entitlement, &PLAYERS);
    for p in PLAYERS {
        assert!(played(&cenc, p), "{p} did not play the cenc title: {}", cenc[p]);
    }
    assert!(sent() - before > 100_000.0, "the box did not serve the players");
    let cbcs = play(
        &browser,
        &site,
        &stack,
        "secret-cbcs",
        &entitlement,
        &["shakaDash", "shakaHls"],
    );
    let cbcs_players: Vec<&str> = PLAYERS.into_iter().filter(|p| played(&cbcs, p)).collect();
    eprintln!("cbcs plays in: {cbcs_players:?} (of {PLAYERS:?})");
    // hls.js 1.6 takes an `identity` key over any other for SAMPLE-AES
    // (its MPEG-TS sample decryption) and stalls on cbcs fMP4; Shaka needs
    // that identity key to play HLS with Clear Key at all.
    for p in ["shakaDash", "shakaHls"] {
        assert!(
            cbcs_players.contains(&p),
            "{p} did not play the cbcs title: {}",
            cbcs[p]
        );
    }
    the_player_page_plays_it(&browser, &stack, &entitlement);
    drop(browser);
    the_box_holds_no_clear_sample_and_no_key(&stack);
}

/// The fill server's own player page (hls.js) plays the cenc title given
/// the entitlement in its URL, with no error.
fn the_player_page_plays_it(browser: &Browser, stack: &Stack, entitlement: &str) {
    browser.goto(&format!(
        "{}/player?title=secret-cenc&entitlement={entitlement}",
        stack.fill_url
    ));
    browser.wait_for(
        "the player page plays the encrypted title",
        "return document.getElementById('video').currentTime >= 4 && !!document.getElementById('video').mediaKeys",
        Duration::from_secs(30),
    );
    let q = browser.eval("return window.nearcastQoe");
    assert_eq!(q["fatal"].as_u64(), Some(0), "{q}");
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.path() {
                p if p.is_dir() => todo.push(p),
                p => out.push(p),
            }
        }
    }
    out
}

/// The sample bytes of a segment: every `mdat`'s body, in order (a video
/// segment holds a fragment per keyframe and one per run between).
fn mdat(data: &[u8]) -> Vec<u8> {
    let (mut at, mut out) = (0, Vec::new());
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if &data[at + 4..at + 8] == b"mdat" {
            out.extend_from_slice(&data[at + 8..(at + size).min(data.len())]);
        }
        at += size.max(8);
    }
    out
}

fn the_box_holds_no_clear_sample_and_no_key(stack: &Stack) {
    let disk = files(&stack.boxes[0].disk);
    let seg = |title: &str| {
        disk.iter()
            .find(|p| p.ends_with(format!("{title}/360p/seg-00001.m4s")))
            .cloned()
    };
    let boxed = std::fs::read(seg("secret-cenc").expect("the box holds the cenc title")).unwrap();
    let clear = std::fs::read(stack.config.origin_store.join(TITLE).join("360p/seg-00001.m4s")).unwrap();
    let (e, c) = (mdat(&boxed), mdat(&clear));
    assert_eq!(e.len(), c.len());
    let differ = e.iter().zip(&c).filter(|(a, b)| a != b).count();
    assert!(
        differ * 10 > e.len() * 9,
        "only {differ} of {} mdat bytes are encrypted",
        e.len()
    );
    let store = KeyStore::new(&stack.config.license.key_store);
    for title in store.all().unwrap() {
        for k in title.all().unwrap() {
            let hex = nearcast_packager::cenc::keys::hex(&k.key);
            for f in &disk {
                let data = std::fs::read(f).unwrap();
                assert!(
                    !data.windows(16).any(|w| w == k.key) && !String::from_utf8_lossy(&data).contains(&hex),
                    "a key of {} on the box: {}",
                    title.title,
                    f.display()
                );
            }
        }
    }
}
