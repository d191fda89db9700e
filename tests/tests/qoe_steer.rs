//! Steering by what the players say: two boxes of one ISP, box-2 capped
//! per connection below the title's lowest rendition (added second, so
//! it fills from box-1, not through its own cap). hls.js (the player
//! page, CMCD on) starts on box-2, the less loaded, and rebuffers; box-2's
//! CMCD reports reach the fill server in its heartbeats and box-2 is
//! demoted: new sessions are steered to box-1 although box-1 is busier
//! (kept-alive clients hold connections there), and the playing player is
//! moved to box-1 by the content-steering manifest.
//!
//! One browser run, in the `realtime` group of `.config/nextest.toml`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::{curl_get, start_agents, Browser};
use nearcast_testkit::TempDir;

/// The box ids `/v1/steer` names for the ISP's client, best first.
fn steered(stack: &Stack) -> Vec<String> {
    let body = curl_get(&format!("{}/v1/steer?title={TITLE}", stack.fill_url)).1;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let urls: Vec<String> = answer["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    urls.iter()
        .filter_map(|u| {
            stack
                .boxes
                .iter()
                .position(|b| u.starts_with(&format!("http://{}/", b.http_addr)))
        })
        .map(|i| format!("box-{}", i + 1))
        .collect()
}

/// Keeps `n` kept-alive connections to `addr` busy with a HEAD every
/// second, until `stop`, so the box's load is `n` over its cap.
fn hold_connections(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conns: Vec<BufReader<TcpStream>> = (0..n)
            .filter_map(|_| TcpStream::connect(addr).ok().map(BufReader::new))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(150);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            for c in conns.iter_mut() {
                let _ = c.get_mut().write_all(b"HEAD /healthz HTTP/1.1\r\nHost: b\r\n\r\n");
                let mut line = String::new();
                while c.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

fn box_quality(stack: &Stack, id: &str) -> serde_json::Value {
    let qoe: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/qoe", "").unwrap()).unwrap();
    qoe["cmcd"]["by_box"][id].clone()
}

#[test]
fn a_box_whose_viewers_rebuffer_loses_them_to_a_busier_one() {
    let root = TempDir::new("e2e-qoe-steer");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let cap = |c: &mut nearcast_agent::Config| c.appliance_max_connections = 20;
    stack.add_box_with(cap, |_| {}).unwrap();
    // 40 kbit/s per connection: below the lowest rendition with its audio.
    stack
        .add_box_with(cap, |c| c.rate_limit.kbit_per_connection = 40)
        .unwrap();
    let agents = start_agents(&stack);
    let stop = Arc::new(AtomicBool::new(false));
    let holder = hold_connections(stack.boxes[0].http_addr, 8, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    while steered(&stack) != ["box-2", "box-1"] {
        assert!(
            Instant::now() < deadline,
            "never steered to box-2 then box-1: {:?}",
            steered(&stack)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let browser = Browser::start();
    browser.goto(&format!("{}/player?title={TITLE}&buffer=4", stack.fill_url));
    let t0 = Instant::now();
    let demoted = loop {
        let q = box_quality(&stack, "box-2");
        if q["demoted"] == true || t0.elapsed() > Duration::from_secs(90) {
            break q;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = t0.elapsed();
    let player = browser.eval("return window.nearcastQoe");
    eprintln!("box-2 after {took:?}: {demoted}\nplayer: {player}");
    assert_eq!(demoted["demoted"], true, "box-2 was never demoted: {demoted}");
    assert!(demoted["rebuffers"].as_u64().unwrap_or(0) > 0, "{demoted}");
    let other = box_quality(&stack, "box-1");
    assert_eq!(
        (other["demoted"].as_bool(), other["sessions"].as_u64()),
        (Some(false), Some(0)),
        "{other}"
    );
    // New sessions go to box-1, the busier box.
    assert_eq!(steered(&stack), ["box-1", "box-2"]);
    // The playing player is moved there at its next steering reload.
    let host = stack.boxes[0].http_addr.to_string();
    browser.wait_for(
        "the player fetches from box-1",
        &format!("const h = (window.nearcastQoe || {{}}).hosts || {{}}; return (h['{host}'] || 0) > 0"),
        Duration::from_secs(40),
    );
    let q = browser.eval("return window.nearcastQoe");
    assert_eq!(q["fatal"], 0, "{q}");
    stop.store(true, Ordering::Relaxed);
    let _ = holder.join();
    drop(browser);
    drop(agents);
}
