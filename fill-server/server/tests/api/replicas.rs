//! Three fill-server processes on one PostgreSQL behind Debian's HAProxy:
//! writes made on one replica steer on the others within 2 s, heartbeats
//! are written in batches, and a replica killed with SIGKILL under 2,000
//! steering requests a second costs no request seen through HAProxy while
//! its jobs' lock moves to another replica. And SQLite refuses a second
//! server.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nearcast_testkit::{http, metrics::metric, TempDir};

use crate::support::{admin, new_key, signed, ADMIN, KEY_HEX};

const BIN: &str = env!("CARGO_BIN_EXE_nearcast-fill-server");
/// Steering load while a replica is killed.
const RATE: u64 = 2000;
const LOAD_SECS: u64 = 4;
const CLIENTS: u64 = 16;

/// One fill-server process.
struct Replica {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the config of replica `n` on `database` and starts it; its
/// addresses come from its ready line.
fn start_replica(dir: &Path, database: &str, n: usize) -> Result<Replica, String> {
    let config = format!(
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
origin_listen = "127.0.0.1:0"
origin_admin_listen = "127.0.0.1:0"
live_listen = "127.0.0.1:0"
database = "{database}"
origin_url = "http://origin.test"
origin_store = "{origin}"
os_bundles = "{bundles}"
answer_key_file = "{answer_key}"
token_key_id = "k1"
token_key_hex = "{KEY_HEX}"
admin_token = "{ADMIN}"
trusted_proxies = ["127.0.0.0/8"]
"#,
        origin = dir.join("origin").display(),
        bundles = dir.join("os-bundles").display(),
        answer_key = dir.join("answer.key").display(),
    );
    let path = dir.join(format!("replica-{n}.toml"));
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join(format!("replica-{n}.log"))).map_err(|e| e.to_string())?;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let addr = |name: &str| -> Result<SocketAddr, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("replica {n} said {line:?}"))
    };
    let (http, admin) = (addr("http=")?, addr("admin=")?);
    Ok(Replica { child, http, admin })
}

/// A fresh schema on the test PostgreSQL; the database setting for it.
fn fresh_schema(url: &str, schema: &str) -> String {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    format!("{url} options='-c search_path={schema}'")
}

/// A port free right now on loopback (for HAProxy's config).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Debian's HAProxy in front of `replicas`: health-checked `/healthz`,
/// failed requests retried on another replica.
fn start_haproxy(dir: &Path, replicas: &[Replica]) -> (Child, SocketAddr) {
    let port = free_port();
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| format!("  server r{i} {} check inter 200ms fall 1 rise 2\n", r.http))
        .collect();
    let config = format!(
        "global\n  maxconn 2000\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 10s\n  \
         timeout server 2s\n  retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n\
         frontend api\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
         backend replicas\n  balance roundrobin\n  option httpchk GET /healthz\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .spawn()
        .expect("haproxy (Debian's haproxy package) must be installed");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let up = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(up.elapsed() < Duration::from_secs(10), "haproxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

fn metric_of(addr: SocketAddr, name: &str) -> f64 {
    metric(&http::get(addr, "/metrics").text(), name).unwrap_or(-1.0)
}

/// The URLs steering gives a player of isp-a for "movie" on `addr`.
fn steered(addr: SocketAddr) -> String {
    let r = http::call(
        addr,
        "GET",
        "/v1/steer?title=movie&file=master.m3u8",
        &[("x-forwarded-for", "198.51.100.7")],
        b"",
    );
    r.text()
}

/// Polls `f` until true; how long it took.
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

pub fn three_replicas_behind_haproxy(url: &str) {
    let dir = TempDir::new("fs-replicas");
    std::fs::create_dir_all(dir.join("origin/movie")).unwrap();
    std::fs::write(
        dir.join("origin/movie/index.json"),
        r#"{"title":"movie","version":1,"duration_secs":1.0,"target_duration_secs":4.0,"renditions":[],"files":[]}"#,
    )
    .unwrap();
    let database = fresh_schema(url, "nc_replicas");
    let mut replicas: Vec<Replica> = (0..3).map(|n| start_replica(&dir, &database, n).unwrap()).collect();
    let (r0, r1, r2) = (replicas[0].admin, replicas[1].http, replicas[2].http);

    // The operator works on replica 0, the box registers on 1 and beats
    // on 2; replica 0 steers to it.
    assert_eq!(
        admin(r0, "POST", "/v1/admin/isps", r#"{"name":"isp-a","asns":[64500]}"#).0,
        200
    );
    assert_eq!(admin(r0, "PUT", "/v1/admin/prefixes", "198.51.100.0/22 64500\n").0, 200);
    assert_eq!(
        admin(r0, "POST", "/v1/admin/sites", r#"{"name":"s1","isp":"isp-a"}"#).0,
        200
    );
    let key = new_key();
    let enroll = format!(r#"{{"id":"box-r","public_key":"{}"}}"#, key.public_hex());
    assert_eq!(admin(r0, "POST", "/v1/admin/appliances", &enroll).0, 200);
    let on = |addr, method, call: &str, body: &str| {
        let (st, text) = signed(
            addr,
            &key,
            "box-r",
            method,
            &format!("/v1/appliances/box-r/{call}"),
            body,
        );
        assert_eq!(st, 200, "{call}: {text}");
    };
    // Enrolled on 0, known on 1 within the catch-up.
    until(Duration::from_secs(2), "enrollment reaching replica 1", || {
        signed(
            r1,
            &key,
            "box-r",
            "PUT",
            "/v1/appliances/box-r/inventory",
            r#"{"version":"v0","titles":[]}"#,
        )
        .0 == 200
    });
    on(
        r1,
        "POST",
        "register",
        r#"{"site":"s1","url":"http://box-r.test:8080","capacity_bytes":1000000}"#,
    );
    on(r1, "PUT", "inventory", r#"{"version":"v1","titles":["movie"]}"#);
    let beat = r#"{"health":"ok","load":0.2,"free_bytes":5000,"bytes_by_title":{"movie":1200}}"#;
    on(r2, "POST", "heartbeat", beat);
    let took = until(Duration::from_secs(2), "replica 0 steering to the box", || {
        steered(replicas[0].http).contains("box-r.test")
    });
    eprintln!("register on 1, heartbeat on 2 -> steered on 0 after {took:?}");
    heartbeats_are_batched(r2, &key);
    live_events_reach_every_replica(&replicas);

    killed_under_load(&dir, &mut replicas);
}

/// 2,000 steering requests a second through HAProxy while the replica
/// holding the jobs' lock is killed: none fails, a survivor takes the lock.
fn killed_under_load(dir: &Path, replicas: &mut [Replica]) {
    let (mut haproxy, front) = start_haproxy(dir, replicas);
    until(Duration::from_secs(5), "one replica leading the jobs", || {
        replicas
            .iter()
            .filter(|r| metric_of(r.http, "nearcast_fill_jobs_leader") == 1.0)
            .count()
            == 1
    });
    let leader = replicas
        .iter()
        .position(|r| metric_of(r.http, "nearcast_fill_jobs_leader") == 1.0)
        .unwrap();
    // Killed a second into the load; the survivors are watched for the
    // jobs' lock from then on.
    let pid = replicas[leader].child.id();
    let survivors: Vec<SocketAddr> = (0..3).filter(|&i| i != leader).map(|i| replicas[i].http).collect();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        until(Duration::from_secs(5), "the jobs' lock moving to a survivor", || {
            survivors
                .iter()
                .any(|&r| metric_of(r, "nearcast_fill_jobs_leader") == 1.0)
        })
    });
    let (sent, failed, secs) = load(front);
    let moved = killer.join().unwrap();
    let _ = replicas[leader].child.wait();
    let rate = sent as f64 / secs;
    eprintln!("through haproxy: {sent} steering requests in {secs:.2} s ({rate:.0}/s), {failed} failed");
    eprintln!("jobs' lock taken over {moved:?} after the kill");
    assert_eq!(
        failed, 0,
        "requests failed through HAProxy while replica {leader} was killed"
    );
    assert!(rate >= 0.9 * RATE as f64, "the load reached only {rate:.0} requests/s");
    let _ = haproxy.kill();
    let _ = haproxy.wait();
}

/// An event created on replica 0 is listed by 2; ended on 1, it is ended
/// on 2; a second of its name is refused on 2.
fn live_events_reach_every_replica(replicas: &[Replica]) {
    let spec = r#"{"name":"final","secret":"replica-secret-0123456789"}"#;
    assert_eq!(admin(replicas[0].admin, "POST", "/v1/admin/live", spec).0, 200);
    let listed = |r: &Replica, what: &str| admin(r.admin, "GET", "/v1/admin/live", "").1.contains(what);
    let took = until(Duration::from_secs(2), "the event reaching replica 2", || {
        listed(&replicas[2], r#""name":"final","ended":false"#)
    });
    assert_eq!(admin(replicas[2].admin, "POST", "/v1/admin/live", spec).0, 409);
    until(Duration::from_secs(2), "the event reaching replica 1", || {
        listed(&replicas[1], r#""name":"final""#)
    });
    assert_eq!(admin(replicas[1].admin, "POST", "/v1/admin/live/final/end", "").0, 200);
    until(Duration::from_secs(2), "the end reaching replica 2", || {
        listed(&replicas[2], r#""name":"final","ended":true"#)
    });
    eprintln!("live event created on 0 listed on 2 after {took:?}");
}

/// 40 beats at once on one replica: a few transactions, not 40.
fn heartbeats_are_batched(addr: SocketAddr, key: &nearcast_common::request_auth::ApplianceKey) {
    let batches = metric_of(addr, "nearcast_fill_heartbeat_batches_total");
    let written = metric_of(addr, "nearcast_fill_heartbeats_written_total");
    std::thread::scope(|s| {
        for _ in 0..40 {
            s.spawn(|| {
                let beat = r#"{"health":"ok","load":0.2,"free_bytes":5000,"bytes_by_title":{}}"#;
                let (st, body) = signed(addr, key, "box-r", "POST", "/v1/appliances/box-r/heartbeat", beat);
                assert_eq!(st, 200, "{body}");
            });
        }
    });
    let batches = metric_of(addr, "nearcast_fill_heartbeat_batches_total") - batches;
    let written = metric_of(addr, "nearcast_fill_heartbeats_written_total") - written;
    eprintln!("40 heartbeats at once: {written} written in {batches} transactions");
    assert_eq!(written, 40.0);
    assert!(batches <= 10.0, "{batches} transactions for 40 beats");
}

/// `RATE` steering requests a second for `LOAD_SECS` through `front` on
/// `CLIENTS` kept-alive connections; (sent, failed, seconds taken). A
/// failure is any answer but a 200 naming the box, or a broken connection.
fn load(front: SocketAddr) -> (u64, u64, f64) {
    let start = Instant::now();
    let per_client = RATE * LOAD_SECS / CLIENTS;
    let gap = Duration::from_micros(1_000_000 * CLIENTS / RATE);
    let results: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| s.spawn(move || client(front, per_client, gap, start)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let (sent, failed) = results.iter().fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
    (sent, failed, secs)
}

fn client(front: SocketAddr, count: u64, gap: Duration, start: Instant) -> (u64, u64) {
    let request = "GET /v1/steer?title=movie&file=master.m3u8 HTTP/1.1\r\nHost: fill.test\r\n\
                   X-Forwarded-For: 198.51.100.7\r\n\r\n";
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut failed = 0;
    for i in 0..count {
        if let Some(wait) = (start + gap * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (w, r) = match conn.as_mut() {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(front).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                conn.insert((s.try_clone().unwrap(), BufReader::new(s)))
            }
        };
        let ok = w.write_all(request.as_bytes()).is_ok()
            && matches!(http::read_response(r, false), Ok(Some(resp)) if resp.status == 200 && resp.text().contains("box-r.test"));
        if !ok {
            failed += 1;
            conn = None;
        }
    }
    (count, failed)
}

/// A second server on the same SQLite file is refused, saying why.
pub fn one_server_per_sqlite_file() {
    let dir = TempDir::new("fs-sqlite-twice");
    std::fs::create_dir_all(dir.join("origin")).unwrap();
    let db = dir.join("fs.db").display().to_string();
    let _first = start_replica(&dir, &db, 0).unwrap();
    let second = start_replica(&dir, &db, 1);
    assert!(second.is_err(), "a second server started on one SQLite file");
    let log = std::fs::read_to_string(dir.join("replica-1.log")).unwrap();
    assert!(log.contains("replicas need PostgreSQL"), "{log}");
}

#[test]
fn three_replicas_on_postgres_behind_haproxy() {
    match std::env::var("NEARCAST_TEST_POSTGRES") {
        Ok(url) => three_replicas_behind_haproxy(&url),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the PostgreSQL tests"),
        Err(_) => eprintln!("skipped: NEARCAST_TEST_POSTGRES is not set"),
    }
}

#[test]
fn sqlite_takes_one_server() {
    one_server_per_sqlite_file();
}
