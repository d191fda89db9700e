//! The fill server's API over real sockets: an operator enrolls appliances,
//! they register, heartbeat and report inventory with signed requests, and
//! players are steered. Every kind of refused request is tried.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::{unix_now, Keyring, SigningKey};
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config;
use nearcast_fill_server::store::{PgStore, SqliteStore, Store};

const ADMIN: &str = "admin-token-for-tests-0123456789";
const KEY_HEX: &str = "5555555555555555555555555555555555555555555555555555555555555555";

struct Server {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    _bg: nearcast_fill_server::server::Background,
}

/// Where a test's server keeps its state: every store test runs on both.
enum Backend {
    Sqlite,
    /// A libpq connection string (`NEARCAST_TEST_POSTGRES`).
    Postgres(String),
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "pg",
        }
    }

    fn store(&self, name: &str, dir: &std::path::Path) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite => Arc::new(SqliteStore::open(&dir.join("fs.db")).unwrap()),
            Backend::Postgres(url) => {
                // A fresh schema per test, so tests run in parallel.
                let schema = format!("nc_{name}");
                let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
                admin
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                    ))
                    .unwrap();
                Arc::new(PgStore::connect(&format!("{url} options='-c search_path={schema}'")).unwrap())
            }
        }
    }
}

/// Runs `test` against PostgreSQL when `NEARCAST_TEST_POSTGRES` names one
/// (`scripts/test` starts one); under CI its absence is a failure.
fn on_postgres(test: fn(&Backend)) {
    match std::env::var("NEARCAST_TEST_POSTGRES") {
        Ok(url) => test(&Backend::Postgres(url)),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the PostgreSQL tests: set NEARCAST_TEST_POSTGRES"),
        Err(_) => eprintln!("skipped: NEARCAST_TEST_POSTGRES is not set (run scripts/test-postgres)"),
    }
}

fn start(backend: &Backend, name: &str, heartbeat_timeout_secs: u64) -> Server {
    start_with_origin(backend, name, heartbeat_timeout_secs, None)
}

fn start_with_origin(
    backend: &Backend,
    name: &str,
    heartbeat_timeout_secs: u64,
    origin: Option<std::path::PathBuf>,
) -> Server {
    let dir = std::env::temp_dir().join(format!("nearcast-fs-{name}-{}-{}", backend.label(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let origin_store = origin.unwrap_or_else(|| {
        // Titles the steering tests ask for, packaged as far as steering
        // can tell (an index in the origin store).
        let store = dir.join("origin");
        for title in ["movie", "show", "other"] {
            std::fs::create_dir_all(store.join(title)).unwrap();
            let index = format!(r#"{{"title":"{title}","version":1,"duration_secs":1.0,"target_duration_secs":4.0,"renditions":[],"files":[]}}"#);
            std::fs::write(store.join(title).join("index.json"), index).unwrap();
        }
        store
    });
    let store = backend.store(name, &dir);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        origin_url: "http://origin.test".into(),
        origin_store,
        heartbeat_timeout_secs,
        token_key_id: "k1".into(),
        token_key_hex: KEY_HEX.into(),
        admin_token: ADMIN.into(),
        trusted_proxies: vec!["127.0.0.0/8".into()],
        os_bundles: dir.join("os-bundles"),
        ..Config::default()
    };
    let app = Arc::new(App::new(store.clone(), config).unwrap());
    let bg = nearcast_fill_server::server::spawn_background(app, "127.0.0.1:0".parse().unwrap()).unwrap();
    Server {
        addr: bg.addr,
        store,
        _bg: bg,
    }
}

/// Sends a request and returns (status, body bytes).
fn call_bytes(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: fs\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let status = String::from_utf8_lossy(&out[9..12]).parse().unwrap();
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| out[i + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// Sends a request and returns (status, body as text).
fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let (status, body) = call_bytes(addr, method, path, headers, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    call(
        addr,
        method,
        path,
        &[("authorization", format!("Bearer {ADMIN}"))],
        body.as_bytes(),
    )
}

fn signed(addr: SocketAddr, key: &ApplianceKey, id: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let headers: Vec<(&str, String)> = key
        .sign(id, method, path, unix_now(), body.as_bytes())
        .into_iter()
        .collect();
    call(addr, method, path, &headers, body.as_bytes())
}

fn new_key() -> ApplianceKey {
    ApplianceKey::from_pkcs8(&ApplianceKey::generate_pkcs8().unwrap()).unwrap()
}

/// ISP with prefixes, a site, and `box-1` enrolled, registered, holding "movie".
fn fleet(s: &Server) -> ApplianceKey {
    assert_eq!(
        admin(s.addr, "POST", "/v1/admin/isps", r#"{"name":"isp-a","asns":[64500]}"#).0,
        200
    );
    let (st, body) = admin(
        s.addr,
        "PUT",
        "/v1/admin/prefixes",
        "# dump\n198.51.100.0/22 64500\n2001:db8::/32 AS64500\n203.0.113.0/24 64999\n",
    );
    assert_eq!((st, body.as_str()), (200, r#"{"prefixes":3}"#));
    assert_eq!(
        admin(s.addr, "POST", "/v1/admin/sites", r#"{"name":"s1","isp":"isp-a"}"#).0,
        200
    );
    let key = new_key();
    // Appliance ids become pathway ids in players' manifests.
    for bad in ["origin", "box 1", "box\\\"1", ".hidden"] {
        let enroll = format!(r#"{{"id":"{bad}","public_key":"{}"}}"#, key.public_hex());
        assert_eq!(admin(s.addr, "POST", "/v1/admin/appliances", &enroll).0, 400, "{bad}");
    }
    add_box(s, &key, "box-1", 0.25);
    key
}

/// Enrolls, registers and heartbeats appliance `id` (at site s1, with
/// `load`), holding "movie".
fn add_box(s: &Server, key: &ApplianceKey, id: &str, load: f64) {
    let enroll = format!(r#"{{"id":"{id}","public_key":"{}"}}"#, key.public_hex());
    assert_eq!(admin(s.addr, "POST", "/v1/admin/appliances", &enroll).0, 200);
    let reg = format!(r#"{{"site":"s1","url":"http://{id}.test:8080","capacity_bytes":1000000}}"#);
    let path = |call: &str| format!("/v1/appliances/{id}/{call}");
    assert_eq!(signed(s.addr, key, id, "POST", &path("register"), &reg).0, 200);
    heartbeat(s, key, id, "ok", load);
    let inv = r#"{"version":"v1","titles":["movie"]}"#;
    assert_eq!(signed(s.addr, key, id, "PUT", &path("inventory"), inv).0, 200);
}

fn heartbeat(s: &Server, key: &ApplianceKey, id: &str, health: &str, load: f64) {
    let hb = format!(r#"{{"health":"{health}","load":{load},"free_bytes":5000,"bytes_by_title":{{"movie":1200}}}}"#);
    let path = format!("/v1/appliances/{id}/heartbeat");
    assert_eq!(signed(s.addr, key, id, "POST", &path, &hb).0, 200);
}

fn steer(addr: SocketAddr, client: &str, title: &str) -> serde_json::Value {
    let (st, body) = call(
        addr,
        "GET",
        &format!("/v1/steer?title={title}&file=master.m3u8"),
        &[("x-forwarded-for", client.into())],
        b"",
    );
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn enrolled_appliances_are_steered_to_with_signed_urls(backend: &Backend) {
    let s = start(backend, "steer", 30);
    fleet(&s);
    let a = steer(s.addr, "198.51.101.7", "movie");
    assert_eq!(a["isp"], "isp-a");
    let urls: Vec<&str> = a["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 2);
    assert!(
        urls[0].starts_with("http://box-1.test:8080/c/movie/master.m3u8?token=k1-"),
        "{}",
        urls[0]
    );
    assert!(urls[1].starts_with("http://origin.test/c/movie/master.m3u8?token="));
    // The appliance accepts the token for this client's /24 only.
    let token = urls[0].split("token=").nth(1).unwrap();
    let ring = Keyring::new(vec![SigningKey::from_hex("k1", KEY_HEX).unwrap()]);
    assert!(ring
        .verify(
            "/c/movie/master.m3u8",
            token,
            "198.51.101.99".parse().unwrap(),
            unix_now()
        )
        .is_ok());
    assert!(ring
        .verify(
            "/c/movie/master.m3u8",
            token,
            "198.51.100.1".parse().unwrap(),
            unix_now()
        )
        .is_err());
    // Other ISP, unknown prefix, or a title the box lacks: origin only.
    for (client, title) in [
        ("203.0.113.5", "movie"),
        ("192.0.2.1", "movie"),
        ("198.51.100.1", "other"),
    ] {
        assert_eq!(
            steer(s.addr, client, title)["urls"].as_array().unwrap().len(),
            1,
            "{client} {title}"
        );
    }
    // A title that was never packaged.
    let (st, body) = call(
        s.addr,
        "GET",
        "/v1/steer?title=nothing",
        &[("x-forwarded-for", "198.51.101.7".into())],
        b"",
    );
    assert_eq!((st, body.contains("no title")), (404, true), "{body}");
    // IPv6 clients match too; a forged X-Forwarded-For from an untrusted
    // peer would be ignored (here the peer is trusted loopback).
    assert_eq!(
        steer(s.addr, "2001:db8::1", "movie")["urls"].as_array().unwrap().len(),
        2
    );
    // Metrics: 2 answers with an appliance, 3 with the origin only.
    let (st, m) = call(s.addr, "GET", "/metrics", &[], b"");
    assert_eq!(st, 200);
    for line in [
        "nearcast_fill_steered_total{target=\"appliance\"} 2",
        "nearcast_fill_steered_total{target=\"origin\"} 3",
        "nearcast_fill_appliances_serving 1",
        "nearcast_fill_prefixes 2", // the third imported prefix has an ASN of no ISP
        "nearcast_fill_requests_total{route=\"steer\",code=\"2xx\"} 5",
        "nearcast_fill_requests_total{route=\"appliance\",code=\"2xx\"} 3",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
    }
    // Heartbeat bytes fed today's demand.
    let rows = s.store.daily_bytes(0).unwrap();
    assert_eq!(
        (rows[0].isp.as_str(), rows[0].title.as_str(), rows[0].bytes),
        ("isp-a", "movie", 1200)
    );
}

/// The status line's code for a raw request.
fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

fn refusals(backend: &Backend) {
    let s = start(backend, "refuse", 30);
    // RFC 9112 §3.2: one Host, an authority (IPv6 in brackets); HTTP/1.0
    // may go without.
    for (host, want) in [
        ("Host: [::1]:7070\r\n", 200),
        ("Host: ::1:7070\r\n", 400),
        ("Host: a\r\nHost: b\r\n", 400),
        ("", 400),
    ] {
        let req = format!("GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
        assert_eq!(raw_status(s.addr, &req), want, "{host:?}");
    }
    assert_eq!(raw_status(s.addr, "GET /healthz HTTP/1.0\r\n\r\n"), 200);
    let key = fleet(&s);
    let hb = r#"{"health":"ok","load":0.1,"free_bytes":1}"#;
    let path = "/v1/appliances/box-1/heartbeat";
    // Unknown appliance.
    let stranger = new_key();
    let (st, body) = signed(s.addr, &stranger, "box-9", "POST", "/v1/appliances/box-9/heartbeat", hb);
    assert_eq!(st, 403);
    assert!(body.contains("not enrolled"), "{body}");
    // Someone else's key claiming to be box-1.
    let (st, body) = signed(s.addr, &stranger, "box-1", "POST", path, hb);
    assert_eq!((st, body.contains("signature")), (403, true), "{body}");
    // box-2 (enrolled) speaking for box-1.
    let other = new_key();
    admin(
        s.addr,
        "POST",
        "/v1/admin/appliances",
        &format!(r#"{{"id":"box-2","public_key":"{}"}}"#, other.public_hex()),
    );
    let (st, body) = signed(s.addr, &other, "box-2", "POST", path, hb);
    assert_eq!((st, body.contains("another appliance")), (403, true), "{body}");
    // A replayed request from long ago.
    let old: Vec<(&str, String)> = key
        .sign("box-1", "POST", path, unix_now() - 3600, hb.as_bytes())
        .into_iter()
        .collect();
    let (st, body) = call(s.addr, "POST", path, &old, hb.as_bytes());
    assert_eq!((st, body.contains("more than")), (403, true), "{body}");
    // A body changed after signing.
    let mut h: Vec<(&str, String)> = key
        .sign("box-1", "POST", path, unix_now(), hb.as_bytes())
        .into_iter()
        .collect();
    h.push(("x-extra", "1".into()));
    assert_eq!(
        call(
            s.addr,
            "POST",
            path,
            &h,
            br#"{"health":"failed","load":0,"free_bytes":0}"#
        )
        .0,
        403
    );
    // No signature at all.
    assert_eq!(call(s.addr, "POST", path, &[], hb.as_bytes()).0, 403);
    // Malformed JSON, correctly signed.
    assert_eq!(signed(s.addr, &key, "box-1", "POST", path, "{not json").0, 400);
    // Registering into a site that does not exist.
    let (st, body) = signed(
        s.addr,
        &key,
        "box-1",
        "POST",
        "/v1/appliances/box-1/register",
        r#"{"site":"nowhere","url":"http://x","capacity_bytes":1}"#,
    );
    assert_eq!((st, body.contains("unknown site")), (422, true), "{body}");
    // Admin calls need the token; bad prefix lines name their line.
    assert_eq!(call(s.addr, "POST", "/v1/admin/isps", &[], br#"{"name":"x"}"#).0, 401);
    assert_eq!(
        call(
            s.addr,
            "POST",
            "/v1/admin/isps",
            &[("authorization", "Bearer wrong".into())],
            br#"{"name":"x"}"#
        )
        .0,
        401
    );
    let (st, body) = admin(s.addr, "PUT", "/v1/admin/prefixes", "10.0.0.0/8 1\nnot-a-prefix 2\n");
    assert_eq!((st, body.contains("line 2")), (422, true), "{body}");
    assert_eq!(
        admin(
            s.addr,
            "POST",
            "/v1/admin/appliances",
            r#"{"id":"b","public_key":"abcd"}"#
        )
        .0,
        400
    );
    // Steering path tricks, in the title or the file.
    for q in [
        "title=../etc&file=passwd",
        "title=movie&file=../../etc/passwd",
        "title=movie&file=a/b/c",
        "title=movie&file=",
        "title=.h&file=f",
    ] {
        let (st, body) = call(s.addr, "GET", &format!("/v1/steer?{q}"), &[], b"");
        assert_eq!(st, 400, "{q}: {body}");
    }
    // The failed imports changed nothing: box-1 is still steered to.
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        2
    );
}

fn a_silent_or_failed_box_leaves_the_answers(backend: &Backend) {
    let s = start(backend, "silent", 2);
    let key = fleet(&s);
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        2
    );
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        1,
        "timed out"
    );
    // Beating again brings it back.
    let ok = r#"{"health":"ok","load":0.2,"free_bytes":1}"#;
    signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", ok);
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        2
    );
    // A failed disk alone keeps the box in (its titles leave with the next
    // inventory); a box that reports itself failed is out at once.
    let failed_disk =
        r#"{"health":"degraded","load":0.2,"free_bytes":1,"disks":[{"name":"d0","health":"failed","free_bytes":0}]}"#;
    signed(
        s.addr,
        &key,
        "box-1",
        "POST",
        "/v1/appliances/box-1/heartbeat",
        failed_disk,
    );
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        2
    );
    signed(
        s.addr,
        &key,
        "box-1",
        "PUT",
        "/v1/appliances/box-1/inventory",
        r#"{"version":"v2","titles":[]}"#,
    );
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        1
    );
    signed(
        s.addr,
        &key,
        "box-1",
        "PUT",
        "/v1/appliances/box-1/inventory",
        r#"{"version":"v3","titles":["movie"]}"#,
    );
    let failed = r#"{"health":"failed","load":0.0,"free_bytes":1}"#;
    signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", failed);
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        1
    );
}

fn manifests_follow_play_logs_and_peers(backend: &Backend) {
    // A real packaged title in the origin store.
    let root = std::env::temp_dir().join(format!("nearcast-fs-origin-{}-{}", backend.label(), std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packager/sample");
    let inputs: Vec<_> = ["360p.mp4", "240p.mp4", "144p.mp4"]
        .iter()
        .map(|f| sample.join(f))
        .collect();
    let opts = nearcast_packager::Options {
        title: nearcast_common::Name::new("sample").unwrap(),
        store: root.join("origin"),
        target: 4.0,
        progress: false,
    };
    let index = nearcast_packager::package(&inputs, &opts).unwrap();
    let s = start_with_origin(backend, "manifest", 30, Some(root.join("origin")));
    let key1 = fleet(&s);
    let reg = r#"{"site":"s1","url":"http://box-1.test:8080","capacity_bytes":10000000}"#;
    assert_eq!(
        signed(s.addr, &key1, "box-1", "POST", "/v1/appliances/box-1/register", reg).0,
        200
    );
    // Before any demand, nothing is ranked: an empty manifest.
    let (st, body) = signed(s.addr, &key1, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(st, 200, "{body}");
    let m: nearcast_common::manifest::FillManifest = serde_json::from_str(&body).unwrap();
    assert!(m.titles.is_empty());
    // An announced release for another ISP changes nothing; one for every
    // ISP puts the unplayed title in the manifest.
    let today = unix_now() / 86_400;
    let manifest_titles = || {
        let (_, body) = signed(s.addr, &key1, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
        serde_json::from_str::<nearcast_common::manifest::FillManifest>(&body)
            .unwrap()
            .titles
            .len()
    };
    let rel = format!(r#"{{"title":"sample","isp":"isp-z","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.addr, "POST", "/v1/admin/releases", &rel).0, 200);
    assert_eq!(manifest_titles(), 0);
    let rel = format!(r#"{{"title":"sample","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.addr, "POST", "/v1/admin/releases", &rel).0, 200);
    assert_eq!(manifest_titles(), 1);
    let bad = format!(r#"{{"title":"../x","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.addr, "POST", "/v1/admin/releases", &bad).0, 400);
    assert_eq!(
        admin(s.addr, "POST", "/v1/admin/releases", &rel.replace("2.0", "0")).0,
        400
    );
    // Play logs make "sample" popular in isp-a (yesterday).
    let t = unix_now() - 86_400;
    let log = format!("time,title,client,bytes\n{t},sample,198.51.100.7,5000000\n{t},sample,198.51.100.8,4000000\n{t},sample,192.0.2.1,1\n");
    let (st, body) = admin(s.addr, "POST", "/v1/admin/playlogs", &log);
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"plays": 3, "unmatched": 1, "rows": 1})
    );
    assert_eq!(admin(s.addr, "POST", "/v1/admin/playlogs", "1,x,1.2.3.4\n").0, 422);
    // box-1 must now hold every file of the title, from the origin.
    let (_, body) = signed(s.addr, &key1, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
    let m: nearcast_common::manifest::FillManifest = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (m.appliance.as_str(), m.site.as_str(), m.titles.len()),
        ("box-1", "s1", 1)
    );
    let t0 = &m.titles[0];
    assert_eq!(
        (t0.title.as_str(), t0.rank, t0.files.len()),
        ("sample", 1, index.files.len())
    );
    for (f, want) in t0.files.iter().zip(&index.files) {
        assert_eq!((&f.path, f.size, &f.sha256), (&want.path, want.size, &want.sha256));
        assert_eq!(f.sources, ["http://origin.test"]);
    }
    // Asking twice gives the same version; another appliance cannot ask for it.
    let (_, again) = signed(s.addr, &key1, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(
        serde_json::from_str::<nearcast_common::manifest::FillManifest>(&again)
            .unwrap()
            .version,
        m.version
    );
    // A second box in the site: its sources put box-1 (which holds the title) first.
    let key2 = new_key();
    admin(
        s.addr,
        "POST",
        "/v1/admin/appliances",
        &format!(r#"{{"id":"box-2","public_key":"{}"}}"#, key2.public_hex()),
    );
    let reg = r#"{"site":"s1","url":"http://box-2.test:8080","capacity_bytes":10000000}"#;
    assert_eq!(
        signed(s.addr, &key2, "box-2", "POST", "/v1/appliances/box-2/register", reg).0,
        200
    );
    signed(
        s.addr,
        &key1,
        "box-1",
        "PUT",
        "/v1/appliances/box-1/inventory",
        r#"{"version":"v2","titles":["sample"]}"#,
    );
    let beat = |health: &str| {
        let hb = format!(r#"{{"health":"{health}","load":0.1,"free_bytes":1}}"#);
        signed(s.addr, &key1, "box-1", "POST", "/v1/appliances/box-1/heartbeat", &hb).0
    };
    let box2_sources = || {
        let (st, body) = signed(s.addr, &key2, "box-2", "GET", "/v1/appliances/box-2/manifest", "");
        assert_eq!(st, 200, "{body}");
        let m2: nearcast_common::manifest::FillManifest = serde_json::from_str(&body).unwrap();
        m2.titles[0].files[0].sources.clone()
    };
    // Down: not a source; up again: the first source.
    assert_eq!(beat("failed"), 200);
    assert_eq!(box2_sources(), ["http://origin.test"]);
    assert_eq!(beat("ok"), 200);
    assert_eq!(box2_sources(), ["http://box-1.test:8080", "http://origin.test"]);
    // The fill token covers the title's files at every source, for no
    // client in particular.
    let ring = Keyring::new(vec![SigningKey::from_hex("k1", KEY_HEX).unwrap()]);
    let any_client: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let path = format!("/c/sample/{}", t0.files[0].path);
    assert!(ring.verify(&path, &t0.token, any_client, unix_now()).is_ok());
    assert!(ring
        .verify("/c/other/master.m3u8", &t0.token, any_client, unix_now())
        .is_err());
    let (st, _) = signed(s.addr, &key2, "box-2", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(st, 403);
}

#[test]
fn the_origin_serves_steered_urls_with_the_same_token_check() {
    let root = std::env::temp_dir().join(format!("nearcast-fs-originsrv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("origin/movie")).unwrap();
    std::fs::write(root.join("origin/movie/master.m3u8"), "#EXTM3U\n").unwrap();
    let cfg = Config {
        origin_store: root.join("origin"),
        origin_listen: "127.0.0.1:0".parse().unwrap(),
        origin_admin_listen: "127.0.0.1:0".parse().unwrap(),
        token_key_id: "k1".into(),
        token_key_hex: KEY_HEX.into(),
        ..Config::default()
    };
    let origin = nearcast_fill_server::origin::start_origin(&cfg).unwrap();
    // The URL steering signs for the origin, fetched as the client.
    let ring_key = SigningKey::from_hex("k1", KEY_HEX).unwrap();
    let grant = nearcast_common::Grant {
        expires: unix_now() + 60,
        client_prefix: Some("127.0.0.0/24".parse().unwrap()),
    };
    let token = ring_key.sign("/c/movie/master.m3u8", &grant);
    let (st, body) = call(
        origin.http_addr,
        "GET",
        &format!("/c/movie/master.m3u8?token={token}"),
        &[],
        b"",
    );
    assert_eq!((st, body.as_str()), (200, "#EXTM3U\n"));
    assert_eq!(call(origin.http_addr, "GET", "/c/movie/master.m3u8", &[], b"").0, 403);
    origin.shutdown();
    origin.join().unwrap();
}

fn play_routes_refuse_missing_or_foreign_tokens(backend: &Backend) {
    let root = std::env::temp_dir().join(format!(
        "nearcast-fs-playorigin-{}-{}",
        backend.label(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("origin/movie/360p")).unwrap();
    std::fs::write(
        root.join("origin/movie/master.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n",
    )
    .unwrap();
    std::fs::write(
        root.join("origin/movie/360p/index.m3u8"),
        "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4,\nseg-00001.m4s\n",
    )
    .unwrap();
    let s = start_with_origin(backend, "play", 30, Some(root.join("origin")));
    let key = fleet(&s);
    add_box(&s, &key, "box-2", 0.5);
    let client = [("x-forwarded-for", "198.51.100.7".to_string())];
    let (st, master) = call(s.addr, "GET", "/v1/play/movie/master.m3u8", &client, b"");
    assert_eq!(st, 200, "{master}");
    let media = master
        .lines()
        .find(|l| l.starts_with("/v1/play/movie/360p/index.m3u8?via=box-1&token="))
        .unwrap();
    // Content steering: the box's pathway first, the origin's as fallback,
    // and the steering manifest the player re-reads for the order.
    assert!(
        master.contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"/v1/play/movie/steering.json\",PATHWAY-ID=\"box-1\""),
        "{master}"
    );
    assert!(master.contains("BANDWIDTH=1,PATHWAY-ID=\"box-1\"\n"), "{master}");
    let fallback = master
        .lines()
        .find(|l| l.starts_with("/v1/play/movie/360p/index.m3u8?via=origin&token="))
        .unwrap();
    let (st, list) = call(s.addr, "GET", fallback, &client, b"");
    assert_eq!(st, 200, "{list}");
    assert!(
        list.contains("\nhttp://origin.test/c/movie/360p/seg-00001.m4s?token="),
        "{list}"
    );
    assert!(
        master.contains("PATHWAY-ID=\"box-2\"\n/v1/play/movie/360p/index.m3u8?via=box-2&"),
        "{master}"
    );
    let priority = |current: &str| {
        let target = format!("/v1/play/movie/steering.json{current}");
        let (st, steering) = call(s.addr, "GET", &target, &client, b"");
        assert_eq!(st, 200, "{steering}");
        let steering: serde_json::Value = serde_json::from_str(&steering).unwrap();
        assert_eq!(steering["VERSION"], 1);
        assert!(steering["TTL"].as_u64().unwrap() > 0);
        steering["PATHWAY-PRIORITY"].clone()
    };
    // Least loaded first; a player already on box-2 stays there.
    for current in ["", "?_HLS_pathway=origin&_HLS_throughput=500000", "?_HLS_pathway=box-9"] {
        assert_eq!(
            priority(current),
            serde_json::json!(["box-1", "box-2", "origin"]),
            "{current}"
        );
    }
    assert_eq!(
        priority("?_HLS_pathway=box-2"),
        serde_json::json!(["box-2", "box-1", "origin"])
    );
    // Once box-2 reports itself failed, its players are moved off it.
    heartbeat(&s, &key, "box-2", "failed", 0.5);
    assert_eq!(priority("?_HLS_pathway=box-2"), serde_json::json!(["box-1", "origin"]));
    // A client no box serves gets the origin alone.
    let (_, steering) = call(
        s.addr,
        "GET",
        "/v1/play/movie/steering.json",
        &[("x-forwarded-for", "203.0.113.9".to_string())],
        b"",
    );
    assert!(steering.contains(r#""PATHWAY-PRIORITY":["origin"]"#), "{steering}");
    let (st, list) = call(s.addr, "GET", media, &client, b"");
    assert_eq!(st, 200, "{list}");
    assert!(
        list.contains("\nhttp://box-1.test:8080/c/movie/360p/seg-00001.m4s?token="),
        "{list}"
    );
    assert!(
        list.contains("URI=\"http://box-1.test:8080/c/movie/360p/init.mp4?token="),
        "{list}"
    );
    // The media playlist is refused to another /24, without a token, or with a forged one.
    let other = [("x-forwarded-for", "198.51.101.7".to_string())];
    assert_eq!(call(s.addr, "GET", media, &other, b"").0, 403);
    assert_eq!(
        call(s.addr, "GET", "/v1/play/movie/360p/index.m3u8?via=box-1", &client, b"").0,
        403
    );
    let forged = media.replace("token=k1-", "token=k1-1");
    assert_eq!(call(s.addr, "GET", &forged, &client, b"").0, 403);
    // Unknown titles and path tricks.
    assert_eq!(call(s.addr, "GET", "/v1/play/nothing/master.m3u8", &client, b"").0, 404);
    assert_eq!(call(s.addr, "GET", "/v1/play/../etc/master.m3u8", &client, b"").0, 400);
    assert_eq!(
        call(s.addr, "GET", "/v1/play/movie/%2e%2e/index.m3u8", &client, b"").0,
        400
    );
}

#[test]
fn enrolled_appliances_are_steered_to_with_signed_urls_sqlite() {
    enrolled_appliances_are_steered_to_with_signed_urls(&Backend::Sqlite);
}

#[test]
fn enrolled_appliances_are_steered_to_with_signed_urls_postgres() {
    on_postgres(enrolled_appliances_are_steered_to_with_signed_urls);
}

/// OS releases: an operator uploads bundles and points a box at one; the
/// box learns it from the heartbeat answer (only while it runs another
/// release and has not failed it) and fetches the bundle, signed.
fn os_updates(backend: &Backend) {
    let s = start(backend, &format!("os_{}", backend.label()), 30);
    let key = fleet(&s);
    let signer = ApplianceKey::generate_pkcs8().unwrap();
    let rootfs = b"a squashfs image, as far as this test cares".to_vec();
    let manifest = nearcast_common::bundle::Manifest {
        version: nearcast_common::Name::new("2").unwrap(),
        key_id: "dev".into(),
        rootfs_size: rootfs.len() as u64,
        rootfs_sha256: nearcast_common::sha256_hex(&rootfs),
    };
    let bundle = [
        nearcast_common::bundle::sign_header(&manifest, &signer).unwrap(),
        rootfs,
    ]
    .concat();
    let auth = [("authorization", format!("Bearer {ADMIN}"))];
    let put = |path: &str, body: &[u8]| call(s.addr, "PUT", path, &auth, body);
    // Refused: not a bundle, a truncated one, another release's name, a
    // name that is a path, no admin token.
    assert_eq!(put("/v1/admin/os/2", b"hsqs not a bundle").0, 422);
    assert_eq!(put("/v1/admin/os/2", &bundle[..bundle.len() - 1]).0, 422);
    assert_eq!(put("/v1/admin/os/3", &bundle).0, 422);
    assert_eq!(put("/v1/admin/os/..", &bundle).0, 422);
    assert_eq!(call(s.addr, "PUT", "/v1/admin/os/2", &[], &bundle).0, 401);
    // Nothing set yet: the box has nothing to fetch, an unknown release
    // cannot be set.
    assert_eq!(
        signed(s.addr, &key, "box-1", "GET", "/v1/appliances/box-1/os", "").0,
        404
    );
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 404);
    let (st, body) = put("/v1/admin/os/2", &bundle);
    assert_eq!(st, 200, "{body}");
    let (_, list) = admin(s.addr, "GET", "/v1/admin/os", "");
    assert!(list.contains(r#""version":"2""#), "{list}");
    assert_eq!(put("/v1/admin/appliances/nobox/os", br#"{"release":"2"}"#).0, 422);
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 200);

    let beat = |os: &str| {
        let hb = format!(r#"{{"health":"ok","load":0.1,"free_bytes":5000{os}}}"#);
        let (st, body) = signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", &hb);
        assert_eq!(st, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["os_update"].clone()
    };
    assert_eq!(beat(r#","os":{"release":"1","slot":"A"}"#), "2");
    assert_eq!(beat(r#","os":{"release":"2","slot":"B"}"#), serde_json::Value::Null);
    assert_eq!(
        beat(r#","os":{"release":"1","slot":"A","failed":["2"]}"#),
        serde_json::Value::Null
    );
    // A box not running the image is never told to update.
    assert_eq!(beat(""), serde_json::Value::Null);
    let headers: Vec<(&str, String)> = key
        .sign("box-1", "GET", "/v1/appliances/box-1/os", unix_now(), b"")
        .into_iter()
        .collect();
    let (st, got) = call_bytes(s.addr, "GET", "/v1/appliances/box-1/os", &headers, b"");
    assert_eq!(st, 200);
    assert!(got == bundle, "the box gets the stored bundle byte for byte");
    // Unsigned or signed by another key: refused.
    assert_eq!(call(s.addr, "GET", "/v1/appliances/box-1/os", &[], b"").0, 403);
    assert_eq!(
        signed(s.addr, &new_key(), "box-1", "GET", "/v1/appliances/box-1/os", "").0,
        403
    );
}

#[test]
fn os_updates_sqlite() {
    os_updates(&Backend::Sqlite);
}

#[test]
fn os_updates_postgres() {
    on_postgres(os_updates);
}

#[test]
fn refusals_sqlite() {
    refusals(&Backend::Sqlite);
}

#[test]
fn refusals_postgres() {
    on_postgres(refusals);
}

#[test]
fn a_silent_or_failed_box_leaves_the_answers_sqlite() {
    a_silent_or_failed_box_leaves_the_answers(&Backend::Sqlite);
}

#[test]
fn a_silent_or_failed_box_leaves_the_answers_postgres() {
    on_postgres(a_silent_or_failed_box_leaves_the_answers);
}

#[test]
fn manifests_follow_play_logs_and_peers_sqlite() {
    manifests_follow_play_logs_and_peers(&Backend::Sqlite);
}

#[test]
fn manifests_follow_play_logs_and_peers_postgres() {
    on_postgres(manifests_follow_play_logs_and_peers);
}

#[test]
fn play_routes_refuse_missing_or_foreign_tokens_sqlite() {
    play_routes_refuse_missing_or_foreign_tokens(&Backend::Sqlite);
}

#[test]
fn play_routes_refuse_missing_or_foreign_tokens_postgres() {
    on_postgres(play_routes_refuse_missing_or_foreign_tokens);
}

fn bgp_routes_are_checked_stored_and_shown(backend: &Backend) {
    let s = start(backend, "bgp", 30);
    let key = fleet(&s);
    let put = |body: &str| signed(s.addr, &key, "box-1", "PUT", "/v1/appliances/box-1/routes", body);
    let bad = r#"{"session":"established","groups":[{"as_path":[64500],"prefixes":["10.0.0.0/33"]}]}"#;
    assert_eq!(put(bad).0, 400, "a prefix that is not one");
    assert_eq!(put("{}").0, 400);
    let good = r#"{"session":"established","groups":[{"as_path":[64500],"next_hop":"192.0.2.1","communities":[[64500,7]],"prefixes":["192.0.2.0/24","2001:db8:1::/48"]}]}"#;
    assert_eq!(put(good), (200, r#"{"prefixes":2}"#.to_string()));
    // Another appliance's key cannot report for box-1.
    let other = new_key();
    assert_eq!(
        signed(s.addr, &other, "box-1", "PUT", "/v1/appliances/box-1/routes", good).0,
        403
    );
    let (st, body) = admin(s.addr, "GET", "/v1/admin/bgp", "");
    assert_eq!(st, 200);
    let f: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(f["appliances"][0]["prefixes"], 2);
    assert_eq!(
        f["sites"][0],
        serde_json::json!({"site": "s1", "consistent": true, "differing": []})
    );
    // Steering now sends a client in a learned prefix (no imported prefix
    // covers 192.0.2.0/24) to box-1, which holds `movie`.
    let (st, body) = call(
        s.addr,
        "GET",
        "/v1/steer?title=movie",
        &[("x-forwarded-for", "192.0.2.44".to_string())],
        b"",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("http://box-1.test:8080/c/movie/"), "{body}");
}

#[test]
fn bgp_routes_are_checked_stored_and_shown_sqlite() {
    bgp_routes_are_checked_stored_and_shown(&Backend::Sqlite);
}

#[test]
fn bgp_routes_are_checked_stored_and_shown_postgres() {
    on_postgres(bgp_routes_are_checked_stored_and_shown);
}

#[test]
fn qoe_events_are_checked_stored_and_summed() {
    let s = start(&Backend::Sqlite, "qoe", 30);
    let post = |body: &str| call(s.addr, "POST", "/v1/qoe", &[], body.as_bytes()).0;
    let ev = |kind: &str, at: u64, value: &str| {
        format!(r#"{{"session":"s1","title":"movie","kind":"{kind}","at_ms":{at}{value},"host":"box-1.test:8080"}}"#)
    };
    let good = format!(
        "[{},{},{},{}]",
        ev("startup", 300, r#","value":300"#),
        ev("progress", 10_000, r#","value":9000"#),
        ev("rebuffer_start", 10_100, ""),
        ev("rebuffer_end", 11_100, "")
    );
    assert_eq!(post(&good), 200);
    assert_eq!(post(&good.replace("startup", "teleport")), 400, "unknown kind");
    assert_eq!(post(&good.replace("movie", "../etc")), 400, "not a plain title");
    assert_eq!(post("not json"), 400);
    let many = format!("[{}]", vec![ev("progress", 1, ""); 501].join(","));
    assert_eq!(post(&many), 400, "over 500 events");
    let huge = format!("[{}]", vec![ev("progress", 1, ""); 800].join(","));
    assert_eq!(post(&huge), 413, "over 64 KiB");
    let (st, body) = admin(s.addr, "GET", "/v1/admin/qoe", "");
    assert_eq!(st, 200);
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            q["sessions"].as_u64(),
            q["rebuffers"].as_u64(),
            q["startup_p50_ms"].as_u64()
        ),
        (Some(1), Some(1), Some(300))
    );
    assert!((q["rebuffer_ratio"].as_f64().unwrap() - 0.1).abs() < 1e-9, "{q}");
    assert_eq!(call(s.addr, "GET", "/v1/admin/qoe", &[], b"").0, 401);
}

#[test]
fn the_player_page_and_its_hls_js_are_served() {
    let s = start(&Backend::Sqlite, "player", 30);
    let (st, page) = call(s.addr, "GET", "/player?title=sample", &[], b"");
    assert_eq!(st, 200);
    for needed in ["<video", "/player/hls.min.js", "/v1/play/", "/v1/steer?title="] {
        assert!(page.contains(needed), "{needed}");
    }
    let (st, js) = call(s.addr, "GET", "/player/hls.min.js", &[], b"");
    assert_eq!(st, 200);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/player/hls.min.js")).unwrap();
    assert!(js == committed && js.len() > 100_000);
}

#[test]
fn openapi_is_served_and_every_documented_route_exists() {
    let s = start(&Backend::Sqlite, "openapi", 30);
    let (st, served) = call(s.addr, "GET", "/openapi.json", &[], b"");
    assert_eq!(st, 200);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    assert_eq!(served, committed);
    let doc: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{title}", "t")
                .replace("{rendition}", "r")
                .replace("{id}", "box-1")
                .replace("{release}", "r1");
            let (_, body) = call(s.addr, &method.to_uppercase(), &concrete, &[], b"");
            for unrouted in ["no route", "no such", "no appliance action"] {
                assert!(
                    !body.contains(unrouted),
                    "{method} {path} is documented but not routed: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} operations");
}
