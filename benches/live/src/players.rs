//! What Shaka Player sees: our LL-DASH through the fill server's player
//! route, and ffmpeg's own LL-DASH files served by nginx, one after the
//! other with the same encoder settings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nearcast::live::LADDER;
use nearcast::stack::{Ports, Stack};
use nearcast_e2e::{curl_get, url_encode, Browser};
use nearcast_packager::live::encoder::{self, Codecs, Muxer};

pub struct Played {
    pub latency_ms: Vec<f64>,
    pub stalls: u64,
    pub errors: usize,
}

fn page() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web/live.html")
}

/// Shaka plays `mpd` for 5 s to settle, then `secs` measured.
fn play(mpd: &str, secs: u32) -> Played {
    let browser = Browser::start();
    browser.goto(&format!("file://{}?dash={}", page().display(), url_encode(mpd)));
    browser.wait_for(
        "Shaka starts",
        "return !!(window.results && results.shaka && results.shaka.started)",
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(5));
    browser.eval("const r = results.shaka; r.latency = []; r.stalls = 0; r.errors = []; return true");
    std::thread::sleep(Duration::from_secs(u64::from(secs)));
    let r = browser.eval("return results.shaka");
    Played {
        latency_ms: r["latency"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .collect(),
        stalls: r["stalls"].as_u64().unwrap_or(0),
        errors: r["errors"].as_array().map_or(0, Vec::len),
    }
}

/// Waits until `url` answers 200.
fn wait_ok(url: &str) {
    for _ in 0..150 {
        if curl_get(url).0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never answered");
}

pub fn ours(work: &Path, secs: u32) -> Played {
    let stack = Stack::start(&work.join("players"), Ports::EPHEMERAL, 30).unwrap();
    let _encoder = stack.start_live("ours", &LADDER, None).unwrap();
    let mpd = format!("{}/v1/play/ours/manifest.mpd", stack.fill_url);
    wait_ok(&mpd);
    std::thread::sleep(Duration::from_secs(3));
    play(&mpd, secs)
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &Path, port: u16) -> Nginx {
    let conf = dir.join("nginx.conf");
    let root = dir.join("www");
    let text = format!(
        "daemon off; master_process off; worker_processes 1; pid {pid}; error_log {dir}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; sendfile on; tcp_nopush on;\n\
           types {{ application/dash+xml mpd; video/mp4 m4s mp4; }}\n\
           server {{ listen 127.0.0.1:{port}; root {root};\n\
             add_header Access-Control-Allow-Origin * always; add_header Cache-Control no-cache always; }} }}\n",
        pid = dir.join("nginx.pid").display(),
        dir = dir.display(),
        root = root.display(),
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &dir.display().to_string(), "-c", &conf.display().to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx installed");
    Nginx(child)
}

pub fn nginx(work: &Path, secs: u32) -> Played {
    let dir = work.join("nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _nginx = start_nginx(&dir, port);
    // The same encoder command, its DASH muxer writing files nginx serves.
    let www_s = www.display().to_string();
    let _ffmpeg = KillOnDrop(
        encoder::command(&encoder::Push {
            codecs: Codecs::H264Aac,
            muxer: Muxer::Dash,
            ingest: &www_s,
            rungs: &LADDER,
            secs: None,
            clock: true,
            copy_to: None,
            segment_secs: 2.0,
            part_secs: 0.5,
        })
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg installed"),
    );
    let mpd = format!("http://127.0.0.1:{port}/manifest.mpd");
    wait_ok(&mpd);
    std::thread::sleep(Duration::from_secs(3));
    play(&mpd, secs)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
