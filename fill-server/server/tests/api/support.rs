//! What the API tests share: a fill server on loopback over SQLite or
//! PostgreSQL, requests as the operator (admin token), as an appliance
//! (signed) or as a player, and a small fleet to steer to.

use std::net::SocketAddr;
use std::sync::Arc;

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config;
use nearcast_fill_server::store::{PgStore, SqliteStore, Store};
use nearcast_testkit::{http, TempDir};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";
pub const KEY_HEX: &str = "5555555555555555555555555555555555555555555555555555555555555555";

/// Runs each named test (a `fn(&Backend)` in the calling module) on
/// SQLite and on PostgreSQL, as `name::sqlite` and `name::postgres`.
macro_rules! on_both_stores {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn sqlite() {
                super::$test(&crate::support::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                crate::support::on_postgres(super::$test)
            }
        }
    )+};
}

pub struct Server {
    pub addr: SocketAddr,
    /// The admin listener: `/v1/admin/…` and the dashboard.
    pub admin: SocketAddr,
    /// The live door: ingest and `/l/`.
    pub live: SocketAddr,
    pub store: Arc<dyn Store>,
    _bg: nearcast_fill_server::server::Background,
    _admin: nearcast_fill_server::server::Background,
    _live: nearcast_fill_server::server::Background,
    /// Dropped last: the server's files.
    _dir: TempDir,
}

impl Server {
    /// The server's files (its database, bundles, origin store).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// Where a test's server keeps its state: every store test runs on both.
pub enum Backend {
    Sqlite,
    /// A libpq connection string (`NEARCAST_TEST_POSTGRES`).
    Postgres(String),
}

impl Backend {
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "pg",
        }
    }

    /// Another replica's connection to the store `store(name, …)` made.
    pub fn join(&self, name: &str) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite => panic!("replicas need PostgreSQL"),
            Backend::Postgres(url) => {
                Arc::new(PgStore::connect(&format!("{url} options='-c search_path=nc_{name}'")).unwrap())
            }
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
pub fn on_postgres(test: fn(&Backend)) {
    match std::env::var("NEARCAST_TEST_POSTGRES") {
        Ok(url) => test(&Backend::Postgres(url)),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the PostgreSQL tests: set NEARCAST_TEST_POSTGRES"),
        Err(_) => eprintln!("skipped: NEARCAST_TEST_POSTGRES is not set (run scripts/test-postgres)"),
    }
}

pub fn start(backend: &Backend, name: &str, heartbeat_timeout_secs: u64) -> Server {
    start_with_origin(backend, name, heartbeat_timeout_secs, None)
}

/// `start`, with `tune` changing the fill server's config first.
pub fn start_tuned(backend: &Backend, name: &str, tune: impl FnOnce(&mut Config)) -> Server {
    start_full(backend, name, 30, None, tune)
}

/// Titles the steering tests ask for, packaged as far as steering can
/// tell (an index in the origin store).
fn stub_origin(store: &std::path::Path) {
    for title in ["movie", "show", "other"] {
        std::fs::create_dir_all(store.join(title)).unwrap();
        let index = format!(
            r#"{{"title":"{title}","version":1,"duration_secs":1.0,"target_duration_secs":4.0,"renditions":[],"files":[]}}"#
        );
        std::fs::write(store.join(title).join("index.json"), index).unwrap();
    }
}

pub fn start_with_origin(
    backend: &Backend,
    name: &str,
    heartbeat_timeout_secs: u64,
    origin: Option<std::path::PathBuf>,
) -> Server {
    start_full(backend, name, heartbeat_timeout_secs, origin, |_| {})
}

pub fn start_full(
    backend: &Backend,
    name: &str,
    heartbeat_timeout_secs: u64,
    origin: Option<std::path::PathBuf>,
    tune: impl FnOnce(&mut Config),
) -> Server {
    let dir = TempDir::new(&format!("fs-{name}-{}", backend.label()));
    let store = backend.store(name, &dir);
    start_on(store, dir, heartbeat_timeout_secs, origin, tune)
}

/// A server on `store`, its files in `dir`.
pub fn start_on(
    store: Arc<dyn Store>,
    dir: TempDir,
    heartbeat_timeout_secs: u64,
    origin: Option<std::path::PathBuf>,
    tune: impl FnOnce(&mut Config),
) -> Server {
    let origin_store = origin.unwrap_or_else(|| {
        stub_origin(&dir.join("origin"));
        dir.join("origin")
    });
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        origin_url: "http://origin.test".into(),
        origin_store,
        heartbeat_timeout_secs,
        token_key_id: "k1".into(),
        token_key_hex: KEY_HEX.into(),
        admin_token: ADMIN.into(),
        trusted_proxies: vec!["127.0.0.0/8".into()],
        os_bundles: dir.join("os-bundles"),
        answer_key_file: dir.join("answer.key"),
        license: nearcast_fill_server::config::LicenseConfig {
            key_store: dir.join("keys"),
            ..Default::default()
        },
        ..Config::default()
    };
    tune(&mut config);
    let app = App::start(store.clone(), config).unwrap();
    let live = nearcast_fill_server::live::spawn_background(app.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let admin =
        nearcast_fill_server::server::spawn_admin_background(app.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let bg = nearcast_fill_server::server::spawn_background(app, "127.0.0.1:0".parse().unwrap()).unwrap();
    Server {
        addr: bg.addr,
        admin: admin.addr,
        _admin: admin,
        live: live.addr,
        store,
        _bg: bg,
        _live: live,
        _dir: dir,
    }
}

/// Sends a request and returns (status, body bytes).
pub fn call_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http::call(addr, method, path, &headers, body);
    (r.status, r.body)
}

/// Sends a request and returns (status, body as text).
pub fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let (status, body) = call_bytes(addr, method, path, headers, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The status code for a request sent exactly as `request`.
pub fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    http::send(addr, request).status
}

pub fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    call(
        addr,
        method,
        path,
        &[("authorization", format!("Bearer {ADMIN}"))],
        body.as_bytes(),
    )
}

pub fn signed(addr: SocketAddr, key: &ApplianceKey, id: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let headers: Vec<(&str, String)> = key
        .sign(id, method, path, unix_now(), body.as_bytes())
        .into_iter()
        .collect();
    call(addr, method, path, &headers, body.as_bytes())
}

/// A bundle of `release` around `rootfs`, signed by a new key (the server
/// checks shape and name only; boxes check the signature).
pub fn signed_bundle(release: &str, rootfs: Vec<u8>) -> Vec<u8> {
    signed_bundle_with_index(release, rootfs, None)
}

/// A bundle whose manifest signs `index_sha256` as its chunk index's hash.
pub fn signed_bundle_with_index(release: &str, rootfs: Vec<u8>, index_sha256: Option<String>) -> Vec<u8> {
    let signer = ApplianceKey::generate_pkcs8().unwrap();
    let manifest = nearcast_common::bundle::Manifest {
        version: nearcast_common::Name::new(release).unwrap(),
        key_id: "dev".into(),
        rootfs_size: rootfs.len() as u64,
        rootfs_sha256: nearcast_common::sha256_hex(&rootfs),
        verity: None,
        chunk_index_sha256: index_sha256,
    };
    [
        nearcast_common::bundle::sign_header(&manifest, &signer).unwrap(),
        rootfs,
    ]
    .concat()
}

pub fn new_key() -> ApplianceKey {
    ApplianceKey::from_pkcs8(&ApplianceKey::generate_pkcs8().unwrap()).unwrap()
}

/// ISP with prefixes, a site, and `box-1` enrolled, registered, holding "movie".
pub fn fleet(s: &Server) -> ApplianceKey {
    assert_eq!(
        admin(s.admin, "POST", "/v1/admin/isps", r#"{"name":"isp-a","asns":[64500]}"#).0,
        200
    );
    let (st, body) = admin(
        s.admin,
        "PUT",
        "/v1/admin/prefixes",
        "# dump\n198.51.100.0/22 64500\n2001:db8::/32 AS64500\n203.0.113.0/24 64999\n",
    );
    assert_eq!((st, body.as_str()), (200, r#"{"prefixes":3}"#));
    assert_eq!(
        admin(s.admin, "POST", "/v1/admin/sites", r#"{"name":"s1","isp":"isp-a"}"#).0,
        200
    );
    let key = new_key();
    // Appliance ids become pathway ids in players' manifests.
    for bad in ["origin", "box 1", "box\\\"1", ".hidden"] {
        let enroll = format!(r#"{{"id":"{bad}","public_key":"{}"}}"#, key.public_hex());
        assert_eq!(admin(s.admin, "POST", "/v1/admin/appliances", &enroll).0, 400, "{bad}");
    }
    add_box(s, &key, "box-1", 0.25);
    key
}

/// Enrolls, registers and heartbeats appliance `id` (at site s1, with
/// `load`), holding "movie".
pub fn add_box(s: &Server, key: &ApplianceKey, id: &str, load: f64) {
    enroll(s, key, id);
    let reg = format!(r#"{{"site":"s1","url":"http://{id}.test:8080","capacity_bytes":1000000}}"#);
    let path = |call: &str| format!("/v1/appliances/{id}/{call}");
    assert_eq!(signed(s.addr, key, id, "POST", &path("register"), &reg).0, 200);
    heartbeat(s, key, id, "ok", load);
    let inv = r#"{"version":"v1","titles":["movie"]}"#;
    assert_eq!(signed(s.addr, key, id, "PUT", &path("inventory"), inv).0, 200);
}

/// Enrolls appliance `id` with `key`'s public half.
pub fn enroll(s: &Server, key: &ApplianceKey, id: &str) {
    let enroll = format!(r#"{{"id":"{id}","public_key":"{}"}}"#, key.public_hex());
    assert_eq!(admin(s.admin, "POST", "/v1/admin/appliances", &enroll).0, 200);
}

pub fn heartbeat(s: &Server, key: &ApplianceKey, id: &str, health: &str, load: f64) {
    let hb = format!(r#"{{"health":"{health}","load":{load},"free_bytes":5000,"bytes_by_title":{{"movie":1200}}}}"#);
    let path = format!("/v1/appliances/{id}/heartbeat");
    assert_eq!(signed(s.addr, key, id, "POST", &path, &hb).0, 200);
}

pub fn steer(addr: SocketAddr, client: &str, title: &str) -> serde_json::Value {
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
