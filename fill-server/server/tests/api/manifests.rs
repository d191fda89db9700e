//! Fill manifests follow releases, play logs and the site's peers, signed
//! for any client.

use nearcast_common::manifest::FillManifest;
use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::{unix_now, Keyring, SigningKey};
use nearcast_packager::TitleIndex;
use nearcast_testkit::TempDir;

use crate::support::*;

fn manifests_follow_play_logs_and_peers(backend: &Backend) {
    let root = TempDir::new(&format!("fs-origin-{}", backend.label()));
    let index = package_sample(&root);
    let s = start_with_origin(backend, "manifest", 30, Some(root.join("origin")));
    let key1 = fleet(&s);
    let reg = r#"{"site":"s1","url":"http://box-1.test:8080","capacity_bytes":10000000}"#;
    assert_eq!(
        signed(s.addr, &key1, "box-1", "POST", "/v1/appliances/box-1/register", reg).0,
        200
    );
    // Before any demand, nothing is ranked: an empty manifest.
    assert!(manifest(&s, &key1, "box-1").titles.is_empty());
    releases_reach_the_manifest(&s, &key1);
    play_logs_are_counted(&s);
    // box-1 must now hold every file of the title, from the origin.
    let m = manifest(&s, &key1, "box-1");
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
    // Asking twice gives the same version.
    assert_eq!(manifest(&s, &key1, "box-1").version, m.version);
    let key2 = peers_come_first(&s, &key1);
    // The fill token covers the title's files at every source, for no
    // client in particular.
    let ring = Keyring::new(vec![SigningKey::from_hex("k1", KEY_HEX).unwrap()]);
    let any_client: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let path = format!("/c/sample/{}", t0.files[0].path);
    assert!(ring.verify(&path, &t0.token, any_client, unix_now()).is_ok());
    assert!(ring
        .verify("/c/other/master.m3u8", &t0.token, any_client, unix_now())
        .is_err());
    // Another appliance cannot ask for it.
    let (st, _) = signed(s.addr, &key2, "box-2", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(st, 403);
}

/// A real packaged title in the origin store under `root/origin`.
fn package_sample(root: &TempDir) -> TitleIndex {
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
        extras: Default::default(),
        encrypt: None,
    };
    nearcast_packager::package(&inputs, &opts).unwrap()
}

/// The box's fill manifest, asked for with its own key.
fn manifest(s: &Server, key: &ApplianceKey, id: &str) -> FillManifest {
    let (st, body) = signed(s.addr, key, id, "GET", &format!("/v1/appliances/{id}/manifest"), "");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// An announced release for another ISP changes nothing; one for every
/// ISP puts the unplayed title in the manifest; bad releases are refused.
fn releases_reach_the_manifest(s: &Server, key1: &ApplianceKey) {
    let today = unix_now() / 86_400;
    let manifest_titles = || manifest(s, key1, "box-1").titles.len();
    let rel = format!(r#"{{"title":"sample","isp":"isp-z","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/releases", &rel).0, 200);
    assert_eq!(manifest_titles(), 0);
    let rel = format!(r#"{{"title":"sample","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/releases", &rel).0, 200);
    assert_eq!(manifest_titles(), 1);
    let bad = format!(r#"{{"title":"../x","day":{today},"boost":2.0}}"#);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/releases", &bad).0, 400);
    assert_eq!(
        admin(s.admin, "POST", "/v1/admin/releases", &rel.replace("2.0", "0")).0,
        400
    );
}

/// Play logs make "sample" popular in isp-a (yesterday); a malformed log
/// is refused.
fn play_logs_are_counted(s: &Server) {
    let t = unix_now() - 86_400;
    let log = format!("time,title,client,bytes\n{t},sample,198.51.100.7,5000000\n{t},sample,198.51.100.8,4000000\n{t},sample,192.0.2.1,1\n");
    let (st, body) = admin(s.admin, "POST", "/v1/admin/playlogs", &log);
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"plays": 3, "unmatched": 1, "rows": 1})
    );
    assert_eq!(admin(s.admin, "POST", "/v1/admin/playlogs", "1,x,1.2.3.4\n").0, 422);
}

/// A second box in the site: its sources put box-1 (which holds the
/// title) first while box-1 is up, and leave it out while it is down.
/// Returns the second box's key.
fn peers_come_first(s: &Server, key1: &ApplianceKey) -> ApplianceKey {
    let key2 = new_key();
    enroll(s, &key2, "box-2");
    let reg = r#"{"site":"s1","url":"http://box-2.test:8080","capacity_bytes":10000000}"#;
    assert_eq!(
        signed(s.addr, &key2, "box-2", "POST", "/v1/appliances/box-2/register", reg).0,
        200
    );
    signed(
        s.addr,
        key1,
        "box-1",
        "PUT",
        "/v1/appliances/box-1/inventory",
        r#"{"version":"v2","titles":["sample"]}"#,
    );
    let beat = |health: &str| {
        let hb = format!(r#"{{"health":"{health}","load":0.1,"free_bytes":1}}"#);
        signed(s.addr, key1, "box-1", "POST", "/v1/appliances/box-1/heartbeat", &hb).0
    };
    let box2_sources = || manifest(s, &key2, "box-2").titles[0].files[0].sources.clone();
    // Down: not a source; up again: the first source.
    assert_eq!(beat("failed"), 200);
    assert_eq!(box2_sources(), ["http://origin.test"]);
    assert_eq!(beat("ok"), 200);
    assert_eq!(box2_sources(), ["http://box-1.test:8080", "http://origin.test"]);
    key2
}

on_both_stores!(manifests_follow_play_logs_and_peers);
