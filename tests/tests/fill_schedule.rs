//! When the fill runs and how fast: outside its window the agent waits;
//! `control-agent fill --now` runs it at once and follows it to the end;
//! the bandwidth cap holds; a run cut off by the window's end keeps its
//! partial downloads and the next run resumes them with range requests.

use std::process::Command;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_agent::fill::{fill_once, Outcome};
use nearcast_agent::window::Window;
use nearcast_agent::Agent;
use nearcast_e2e::{agent_binary, curl_get, metric, AgentProcess};
use nearcast_testkit::TempDir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A window that opens two hours from now (local time), so it is closed.
fn closed_window() -> Window {
    let out = Command::new("date").arg("+%H %M").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|x| x.parse::<u32>().unwrap());
    let (h, m) = (it.next().unwrap(), it.next().unwrap());
    format!("{:02}:{m:02}-{:02}:{m:02}", (h + 2) % 24, (h + 3) % 24)
        .parse()
        .unwrap()
}

fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(agent_binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn outside_the_window_it_waits_and_fill_now_runs_under_the_cap() {
    let root = TempDir::new("e2e-window");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let cap = 500_000;
    let port = free_port();
    stack
        .add_box(|c| {
            c.fill_window = closed_window();
            c.bandwidth_bytes_per_sec = cap;
            c.admin_listen = ([127, 0, 0, 1], port).into();
        })
        .unwrap();
    let config = stack.boxes[0].agent_config.clone();
    let _agent = AgentProcess::start(&config);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, text) = cli(&config, &["status"]);
    assert!(
        ok && text.contains("window        opens in") && text.contains("titles held   0"),
        "{text}"
    );
    let origin = String::from_utf8(curl_get(&format!("http://{}/metrics", stack.origin.admin_addr)).1).unwrap();
    assert_eq!(
        metric(&origin, "nearcast_requests_total{code=\"200\"}"),
        Some(0.0),
        "no fill outside the window"
    );

    let t0 = Instant::now();
    let (ok, text) = cli(&config, &["fill", "--now"]);
    let took = t0.elapsed();
    assert!(ok, "{text}");
    let (ok, json) = cli(&config, &["status", "--json"]);
    assert!(ok, "{json}");
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(s["titles"], serde_json::json!([TITLE]));
    let bytes = s["fill"]["bytes_total"].as_u64().unwrap();
    assert_eq!(s["fill"]["bytes_done"].as_u64(), Some(bytes));
    // The bucket allows one second of burst, then `cap` per second.
    let floor = Duration::from_secs_f64((bytes - cap) as f64 / cap as f64);
    assert!(took >= floor, "{bytes} bytes in {took:?} breaks the {cap} B/s cap");
}

#[test]
fn a_run_cut_off_by_the_window_resumes_with_ranges() {
    let root = TempDir::new("e2e-resume");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box(|c| c.bandwidth_bytes_per_sec = 400_000).unwrap();
    let agent = std::sync::Arc::new(Agent::new(stack.boxes[0].agent.clone()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reg = nearcast_agent::daemon::registration(&agent);
        agent.server.register(&reg).await.unwrap();
        let manifest = agent.server.manifest().await.unwrap();
        let soon = tokio::time::Instant::now() + Duration::from_millis(1500);
        assert_eq!(fill_once(&agent, &manifest, soon).await, Outcome::Interrupted);
        assert!(agent.inventory.titles().is_empty());
        let parts = std::fs::read_dir(stack.boxes[0].disk.join(".nearcast/parts"))
            .unwrap()
            .count();
        assert!(parts > 0, "partial downloads are kept");
        let later = tokio::time::Instant::now() + Duration::from_secs(60);
        assert_eq!(fill_once(&agent, &manifest, later).await, Outcome::Complete);
        assert_eq!(agent.inventory.titles(), vec![TITLE]);
    });
    let origin = String::from_utf8(curl_get(&format!("http://{}/metrics", stack.origin.admin_addr)).1).unwrap();
    let resumed = metric(&origin, "nearcast_requests_total{code=\"206\"}").unwrap_or(0.0);
    assert!(resumed >= 1.0, "the cut-off downloads resumed with ranges: {origin}");
}
