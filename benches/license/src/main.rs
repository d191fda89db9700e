//! `cargo run --release -- [rate/s] [secs] [connections]` with the fill
//! server built (`cargo build --release -p nearcast-fill-server`;
//! `NEARCAST_FILL_SERVER` names another binary).
//!
//! A key store of 100 encrypted titles (keys made as the packager makes
//! them), one fill-server process reading it, and an open-loop load:
//! `rate` Clear Key license requests a second (default 2,000) spread over
//! `connections` kept-alive connections (default 32) for `secs` (default
//! 20), each from one of 1,000 viewers (an HS256 entitlement each, all
//! titles, no stream limit), for a random title's video key. Latency is
//! counted from when each request was due, so a server that falls behind
//! is charged for the wait (no coordinated omission). Prints p50, p99,
//! max, the rate reached and the server's CPU, against the target.
//!
//! There is no peer to run beside it here: the commercial license
//! services (Widevine, PlayReady, FairPlay servers) are not in Debian.

#[path = "../../fleet-sim/src/client.rs"]
mod client;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use nearcast_packager::cenc::{KeyStore, Scheme, TitleKeys};

const TITLES: usize = 100;
const VIEWERS: usize = 1_000;
const SECRET: &[u8] = b"license-bench account system secret";
const TARGET_P99_MS: f64 = 20.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000.0);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let conns: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(32);
    let bin = std::env::var("NEARCAST_FILL_SERVER").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/nearcast-fill-server"),
        PathBuf::from,
    );
    let dir = std::env::temp_dir().join(format!("nearcast-license-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kids = key_store(&dir.join("keys"));
    let (mut server, addr) = start(&bin, &dir);
    let cpu0 = cpu_secs(server.id());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let t0 = Instant::now();
    let (mut lat, errors) = rt.block_on(load(addr, Arc::new(kids), rate, secs, conns));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(server.id()) - cpu0;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "license service: {} licenses in {wall:.1} s ({:.0}/s offered {rate:.0}/s), {errors} errors",
        lat.len(),
        lat.len() as f64 / wall
    );
    println!(
        "latency ms: p50 {:.2}  p99 {:.2}  max {:.2}   (target p99 < {TARGET_P99_MS} ms: {:.2}x of it)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        pct(0.99) / TARGET_P99_MS
    );
    println!("server CPU: {:.0} % of a core", cpu / wall * 100.0);
}

/// 100 titles' keys in `dir`; their video key IDs.
fn key_store(dir: &Path) -> Vec<[u8; 16]> {
    let store = KeyStore::new(dir);
    (0..TITLES)
        .map(|t| {
            let keys = TitleKeys::generate(&format!("title-{t:03}"), Scheme::Cenc);
            store.save(&keys).unwrap();
            keys.key("video").unwrap().kid
        })
        .collect()
}

fn start(bin: &Path, dir: &Path) -> (std::process::Child, SocketAddr) {
    let config = format!(
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
origin_listen = "127.0.0.1:0"
origin_admin_listen = "127.0.0.1:0"
live_listen = "127.0.0.1:0"
database = "{db}"
origin_store = "{origin}"
os_bundles = "{dir}/os-bundles"
answer_key_file = "{dir}/answer.key"
token_key_id = "k1"
token_key_hex = "{token}"
admin_token = "license-bench-admin-token-0123456789"

[license]
key_store = "{dir}/keys"

[[license.entitlement_keys]]
id = "accounts"
alg = "HS256"
secret_hex = "{secret}"
"#,
        db = dir.join("fill.db").display(),
        origin = dir.join("origin").display(),
        dir = dir.display(),
        token = "42".repeat(32),
        secret = nearcast_packager::cenc::keys::hex(SECRET),
    );
    std::fs::create_dir_all(dir.join("origin")).unwrap();
    let path = dir.join("fill.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("fill.log")).unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the fill server binary (cargo build --release -p nearcast-fill-server)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the fill server said {line:?}; see {}", dir.display()));
    (child, addr)
}

/// The open-loop run: (latencies in ms, failed requests).
async fn load(addr: SocketAddr, kids: Arc<Vec<[u8; 16]>>, rate: f64, secs: u64, conns: usize) -> (Vec<f64>, usize) {
    let tokens: Arc<Vec<String>> = Arc::new((0..VIEWERS).map(entitlement).collect());
    let start = Instant::now() + Duration::from_millis(200);
    let gap = Duration::from_secs_f64(conns as f64 / rate);
    let per_conn = (rate * secs as f64 / conns as f64) as usize;
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let (kids, tokens) = (kids.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut conn = client::Conn::new(addr);
                let (mut lat, mut errors) = (Vec::with_capacity(per_conn), 0);
                let first = start + gap.mul_f64(c as f64 / conns as f64);
                for i in 0..per_conn {
                    let due = first + gap * i as u32;
                    tokio::time::sleep_until(due.into()).await;
                    let n = c * per_conn + i;
                    let token = &tokens[n % VIEWERS];
                    let body = format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, B64.encode(kids[n * 7 % kids.len()]));
                    let headers = [("Authorization", format!("Bearer {token}")), ("Content-Type", "application/json".into())];
                    match conn.call("POST", "/v1/license", &headers, body.as_bytes()).await {
                        Ok((200, _)) => lat.push(due.elapsed().as_secs_f64() * 1000.0),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    (all, errors)
}

/// Viewer `v`'s entitlement (all titles, a day).
fn entitlement(v: usize) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 86_400;
    let claims = serde_json::json!({ "sub": format!("viewer-{v}"), "exp": exp, "titles": ["*"], "jti": format!("v{v}") });
    nearcast_license::jwt::sign_hs256("accounts", SECRET, &claims)
}

fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}
