//! Helpers the end-to-end tests share (the tests themselves are in
//! `tests/`): a real player, Prometheus scraping, and the control agent
//! run as a real process, and a static web site for pages that need an
//! origin (`site.rs`), simulated boxes for rollouts (`simfleet.rs`).

pub mod proxy;
pub mod simfleet;
pub mod site;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use nearcast::stack::sample_inputs;

/// A real player (ffmpeg) decodes the whole title at `url` without an
/// error line. One line is not an error: ffmpeg's HLS reader logs, at
/// error level, that it cannot reuse its playlist connection when the
/// pathways' media playlists are on different boxes, then opens a new one.
pub fn assert_plays(url: &str) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url, "-f", "null", "-"])
        .output()
        .expect("ffmpeg installed");
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Cannot reuse HTTP connection for different host"))
        .collect();
    assert!(out.status.success() && errors.is_empty(), "{url}: {err}");
}

pub use nearcast_testkit::metrics::metric;

/// The workspace's built `control-agent`, beside this test binary
/// (`cargo build --workspace --bins` first, as `scripts/test` does).
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/{profile}/deps/this-test → target/{profile}/control-agent
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("control-agent"))
        .expect("target dir");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo build --workspace --bins` first (scripts/test does)",
        bin.display()
    );
    bin
}

/// `control-agent run` as a child process; killed (SIGKILL) when dropped.
pub struct AgentProcess {
    pub child: Child,
    /// Its admin listener (`/status`, `/metrics`).
    pub admin: SocketAddr,
}

impl AgentProcess {
    pub fn start(config: &Path) -> AgentProcess {
        let mut child = Command::new(agent_binary())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start control-agent");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("agent stdout");
        let admin = line
            .trim()
            .strip_prefix("control-agent ready admin=http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("agent did not start: {line:?}"));
        AgentProcess { child, admin }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `GET /status`, as JSON.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("http://{}/status", self.admin)])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits for the first fill run to end; its status.
    pub fn wait_for_run(&self, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.status().filter(|s| s["runs_completed"].as_u64() >= Some(1)) {
                return s;
            }
            assert!(Instant::now() < deadline, "no fill run ended within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts an agent for each of the stack's boxes and waits for each one's
/// first fill to end.
pub fn start_agents(stack: &nearcast::stack::Stack) -> Vec<AgentProcess> {
    let agents: Vec<AgentProcess> = stack
        .boxes
        .iter()
        .map(|b| AgentProcess::start(&b.agent_config))
        .collect();
    for a in &agents {
        a.wait_for_run(Duration::from_secs(60));
    }
    agents
}

/// Waits (up to 15 s) until `/v1/steer` for `title` names every one of the
/// stack's boxes (their inventories are in).
pub fn wait_steerable(stack: &nearcast::stack::Stack, title: &str) {
    let urls: Vec<String> = stack.boxes.iter().map(|b| format!("{}/", b.agent.public_url)).collect();
    let steered =
        || String::from_utf8_lossy(&curl_get(&format!("{}/v1/steer?title={title}", stack.fill_url)).1).into_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !urls.iter().all(|u| steered().contains(u)) {
        assert!(
            Instant::now() < deadline,
            "not every box became steerable: {}",
            steered()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl's answer code and body for a GET.
pub fn curl_get(url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl installed");
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[split + 1..]).trim().parse().unwrap_or(0);
    body.truncate(split);
    (code, body)
}

/// One GET over a fresh connection (no curl process, for load loops): the
/// status code, or 0 when no answer came.
pub fn quick_status(addr: SocketAddr, target: &str) -> u16 {
    let req = nearcast_testkit::http::request_bytes("GET", target, &[], b"");
    nearcast_testkit::http::try_send(addr, &req).map_or(0, |r| r.status)
}

/// Width and height of a PNG, from its header; `None` if it is not a PNG.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || !png.starts_with(b"\x89PNG\r\n\x1a\n") || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&png[16..20]), be(&png[20..24])))
}

/// Headless Chromium driven through chromedriver (Debian's `chromium` and
/// `chromium-driver`), over the W3C WebDriver protocol with curl. Quit
/// when dropped; Chromium's profile and scratch directories live in a temp
/// dir of its own, removed with it.
pub struct Browser {
    driver: Child,
    base: String,
    _tmp: nearcast_testkit::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let tmp = nearcast_testkit::TempDir::new(&format!("chromium-{port}"));
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver installed (scripts/test installs chromium-driver)");
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while curl_get(&format!("{root}/status")).0 != 200 {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900"]
            }
        }}});
        let answer = webdriver("POST", &format!("{root}/session"), &caps);
        let id = answer["value"]["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        Browser {
            driver,
            base: format!("{root}/session/{id}"),
            _tmp: tmp,
        }
    }

    pub fn goto(&self, url: &str) {
        webdriver(
            "POST",
            &format!("{}/url", self.base),
            &serde_json::json!({ "url": url }),
        );
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        let body = serde_json::json!({ "script": script, "args": [] });
        webdriver("POST", &format!("{}/execute/sync", self.base), &body)["value"].take()
    }

    /// A PNG of the window, or of the first element `css` matches.
    pub fn screenshot_png(&self, css: Option<&str>) -> Vec<u8> {
        let url = match css {
            None => format!("{}/screenshot", self.base),
            Some(css) => {
                let found = webdriver(
                    "POST",
                    &format!("{}/element", self.base),
                    &serde_json::json!({ "using": "css selector", "value": css }),
                );
                let id = found["value"]
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or_else(|| panic!("no element {css}: {found}"))
                    .to_string();
                format!("{}/element/{id}/screenshot", self.base)
            }
        };
        let out = Command::new("curl")
            .args(["-s", "--max-time", "60", &url])
            .output()
            .expect("curl installed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a screenshot answer");
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("base64 PNG"))
            .expect("valid base64")
    }

    /// Waits until `script` returns true.
    pub fn wait_for(&self, what: &str, script: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.eval(script) != serde_json::Value::Bool(true) {
            if Instant::now() >= deadline {
                let page = self.eval("return document.body.innerText");
                panic!(
                    "{what}: not within {within:?}; the page says:\n{}",
                    page.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("curl").args(["-s", "-X", "DELETE", &self.base]).output();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn webdriver(method: &str, url: &str, body: &serde_json::Value) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "60",
            "-X",
            method,
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
        .arg(body.to_string())
        .arg(url)
        .output()
        .expect("curl installed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("WebDriver {url}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(v["value"].get("error").is_none(), "WebDriver {url}: {v}");
    v
}

/// The agent's BGP session to the test BIRD (`nearcast_bgp::bird`), as the
/// box's config would name it, with hold time `hold_time` seconds.
pub fn bgp_to(bird: &nearcast_bgp::bird::Bird, hold_time: u16) -> nearcast_agent::config::BgpConfig {
    use nearcast_bgp::bird::{BOX_ADDRESS, BOX_AS, ROUTER_AS};
    nearcast_agent::config::BgpConfig {
        neighbor: bird.address(),
        local_address: Some(BOX_ADDRESS.into()),
        local_as: BOX_AS,
        peer_as: ROUTER_AS,
        router_id: std::net::Ipv4Addr::new(192, 0, 2, 1),
        hold_time,
        max_prefixes: 1000,
        md5_password: None,
    }
}

/// `s` percent-encoded for a query value (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// OS update bytes the stack's fill server has sent as `what` (`bundle`,
/// `index`, `chunk`), from its metrics.
pub fn os_bytes_sent(stack: &nearcast::stack::Stack, what: &str) -> u64 {
    let page = stack
        .get(&format!("{}/metrics", stack.fill_url))
        .expect("the fill server's metrics");
    let series = format!("nearcast_fill_os_bytes_total{{what=\"{what}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {what} bytes in the fill server's metrics:\n{page}"))
}
