//! The license service and the play routes of an encrypted title: a real
//! packaging of the sample (`--encrypt cenc`, keys in a key store beside
//! the origin store), the server reading that key store. Every refusal
//! is tried with its status, a play session's URLs carry the keys to the
//! player that showed an entitlement, and the box's fill manifest holds
//! no key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use nearcast_fill_server::config::{EntitlementKey, LicenseConfig};
use nearcast_license::jwt::sign_hs256;
use nearcast_packager::cenc::{KeyStore, Scheme};
use nearcast_testkit::TempDir;

use crate::support::*;

const ACCOUNTS_HEX: &str = "6163636f756e74732073797374656d2073656372657420666f72207465737473";

fn entitlement(sub: &str, titles: &[&str], exp: u64, max: Option<u32>) -> String {
    let secret = nearcast_common::token::decode_hex(ACCOUNTS_HEX).unwrap();
    let mut c = serde_json::json!({ "sub": sub, "exp": exp, "titles": titles });
    if let Some(m) = max {
        c["max_streams"] = m.into();
    }
    sign_hs256("accounts-1", &secret, &c)
}

fn bearer(t: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {t}"))]
}

/// The sample packaged with cenc into `root/origin`, keys in `root/keys`.
fn package_encrypted(root: &TempDir) {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packager/sample");
    let opts = nearcast_packager::Options {
        title: nearcast_common::Name::new("sample").unwrap(),
        store: root.join("origin"),
        target: 4.0,
        progress: false,
        extras: Default::default(),
        encrypt: Some(nearcast_packager::package::Encryption {
            scheme: Scheme::Cenc,
            key_store: root.join("keys"),
            license_url: "http://license.packaged.test/v1/license".into(),
            cpix: None,
            key_per_rung_group: false,
        }),
    };
    nearcast_packager::package(&[sample.join("360p.mp4")], &opts).unwrap();
}

fn start_encrypted(root: &TempDir) -> Server {
    start_full(
        &Backend::Sqlite,
        "license",
        30,
        Some(root.join("origin")),
        license_config(root),
    )
}

/// The license set-up of these tests: `root`'s key store, the account
/// system's key.
fn license_config(root: &TempDir) -> impl FnOnce(&mut nearcast_fill_server::config::Config) {
    let keys = root.join("keys");
    move |c| {
        c.license = LicenseConfig {
            key_store: keys,
            entitlement_keys: vec![EntitlementKey {
                id: "accounts-1".into(),
                alg: nearcast_license::Alg::HS256,
                secret_hex: ACCOUNTS_HEX.into(),
                public_key_hex: String::new(),
            }],
            lease_secs: 60,
            ..Default::default()
        };
    }
}

fn license_request(kid: &[u8; 16]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "kids": [B64.encode(kid)], "type": "temporary" })).unwrap()
}

#[test]
fn an_encrypted_title_plays_only_with_an_entitlement() {
    let root = TempDir::new("fs-license-origin");
    package_encrypted(&root);
    let s = start_encrypted(&root);
    let keys = KeyStore::new(&root.join("keys")).load("sample").unwrap().unwrap();
    let video = keys.key("video").unwrap();
    let now = nearcast_common::unix_now();
    let ok = entitlement("alice", &["sample"], now + 600, None);
    // The play routes want an entitlement for it.
    let master = "/v1/play/sample/master.m3u8";
    assert_eq!(call(s.addr, "GET", master, &[], b"").0, 401);
    let forged = sign_hs256(
        "accounts-1",
        b"an attacker's secret of 32 bytes",
        &serde_json::json!({"sub": "m", "exp": now + 600, "titles": ["*"]}),
    );
    assert_eq!(
        call(s.addr, "GET", &format!("{master}?entitlement={forged}"), &[], b"").0,
        401
    );
    let expired = entitlement("alice", &["sample"], now - 3600, None);
    assert_eq!(
        call(s.addr, "GET", &format!("{master}?entitlement={expired}"), &[], b"").0,
        401
    );
    let elsewhere = entitlement("bob", &["other"], now + 600, None);
    let (st, body) = call(s.addr, "GET", &format!("{master}?entitlement={elsewhere}"), &[], b"");
    assert_eq!(st, 403, "{body}");
    // HLS: the master names the session's license URL, the media
    // playlist's identity key URI is on it, and it gives the key.
    let (st, text) = call(s.addr, "GET", &format!("{master}?entitlement={ok}"), &[], b"");
    assert_eq!(st, 200, "{text}");
    let session_url = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SESSION-DATA:DATA-ID=\"com.nearcast.license\",VALUE=\""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no license session data in {text}"));
    // On the host the player asked (the test client sends `Host: test`).
    assert!(session_url.starts_with("http://test/v1/license/s/"), "{session_url}");
    let media = text
        .lines()
        .find(|l| l.starts_with("/v1/play/sample/360p/index.m3u8"))
        .unwrap();
    let (st, playlist) = call(s.addr, "GET", media, &[], b"");
    assert_eq!(st, 200, "{playlist}");
    let key_uri = format!("{session_url}/keys/{}", nearcast_packager::cenc::keys::hex(&video.kid));
    assert!(
        playlist.contains(&format!("URI=\"{key_uri}\",KEYFORMAT=\"identity\"")),
        "{playlist}"
    );
    let path = key_uri.trim_start_matches("http://test");
    let (st, key) = call_bytes(s.addr, "GET", path, &[], b"");
    assert_eq!((st, key.as_slice()), (200, video.key.as_slice()));
    // DASH: the Clear Key license URL is the session's, and it licenses.
    let (st, mpd) = call(
        s.addr,
        "GET",
        &format!("/v1/play/sample/manifest.mpd?entitlement={ok}"),
        &[],
        b"",
    );
    assert_eq!(st, 200);
    let laurl = mpd
        .split("<dashif:Laurl>")
        .nth(1)
        .and_then(|r| r.split("</dashif:Laurl>").next())
        .unwrap();
    assert!(
        laurl.starts_with("http://test/v1/license/s/") && !mpd.contains("license.packaged.test"),
        "{mpd}"
    );
    let lpath = laurl.trim_start_matches("http://test");
    let (st, license) = call(s.addr, "POST", lpath, &[], &license_request(&video.kid));
    assert_eq!(st, 200, "{license}");
    let license: serde_json::Value = serde_json::from_str(&license).unwrap();
    assert_eq!(license["keys"][0]["k"], B64.encode(video.key));
    refusals(&s, &video.kid, now);
    rights_refuse_licenses(&s, &video.kid, &ok);
    no_key_reaches_a_box(&s, &keys);
}

/// A title not shown in the client's country gets no license or key
/// (451), entitlement or not.
fn rights_refuse_licenses(s: &Server, kid: &[u8; 16], entitlement: &str) {
    assert_eq!(
        admin(
            s.admin,
            "PUT",
            "/v1/admin/countries",
            "127.0.0.0/8,FR
"
        )
        .0,
        200
    );
    let deny = r#"{"territories":{"deny":["FR"]}}"#;
    assert_eq!(admin(s.admin, "PUT", "/v1/admin/titles/sample/rights", deny).0, 200);
    let (st, body) = call(
        s.addr,
        "POST",
        "/v1/license",
        &bearer(entitlement),
        &license_request(kid),
    );
    assert_eq!(st, 451, "{body}");
    assert!(body.contains("not available in FR"), "{body}");
    let key = format!("/v1/license/keys/{}", nearcast_packager::cenc::keys::hex(kid));
    assert_eq!(call(s.addr, "GET", &key, &bearer(entitlement), b"").0, 451);
    let master = format!("/v1/play/sample/master.m3u8?entitlement={entitlement}");
    assert_eq!(call(s.addr, "GET", &master, &[], b"").0, 451);
    // Outside its window: 451 too, whatever the country.
    let now = nearcast_common::unix_now();
    let closed = format!(r#"{{"windows":[{{"from":{},"until":{}}}]}}"#, now - 7200, now - 3600);
    assert_eq!(admin(s.admin, "PUT", "/v1/admin/titles/sample/rights", &closed).0, 200);
    let (st, body) = call(
        s.addr,
        "POST",
        "/v1/license",
        &bearer(entitlement),
        &license_request(kid),
    );
    assert!(st == 451 && body.contains("outside_window"), "{st} {body}");
    assert_eq!(admin(s.admin, "DELETE", "/v1/admin/titles/sample/rights", "").0, 200);
    assert_eq!(
        call(
            s.addr,
            "POST",
            "/v1/license",
            &bearer(entitlement),
            &license_request(kid)
        )
        .0,
        200
    );
}

/// Each refusal of the license routes, with its status.
fn refusals(s: &Server, kid: &[u8; 16], now: u64) {
    let req = license_request(kid);
    assert_eq!(call(s.addr, "POST", "/v1/license", &[], &req).0, 401);
    assert_eq!(call(s.addr, "POST", "/v1/license/s/not.a.session", &[], &req).0, 401);
    let other = entitlement("bob", &["other"], now + 600, None);
    assert_eq!(call(s.addr, "POST", "/v1/license", &bearer(&other), &req).0, 403);
    let all = entitlement("carol", &["*"], now + 600, Some(1));
    assert_eq!(
        call(s.addr, "POST", "/v1/license", &bearer(&all), &license_request(&[7; 16])).0,
        404
    );
    assert_eq!(call(s.addr, "POST", "/v1/license", &bearer(&all), b"{\"kids\":").0, 400);
    assert_eq!(call(s.addr, "POST", "/v1/license", &bearer(&all), &req).0, 200);
    assert_eq!(call(s.addr, "POST", "/v1/license/renew", &bearer(&all), b"").0, 200);
    // carol may play one stream: a second session of hers is refused.
    let (_, master) = call(
        s.addr,
        "GET",
        &format!("/v1/play/sample/master.m3u8?entitlement={all}"),
        &[],
        b"",
    );
    let second = master
        .split("/v1/license/s/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let (st, body) = call(s.addr, "POST", &format!("/v1/license/s/{second}"), &[], &req);
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("already plays 1 streams"), "{body}");
    let big = vec![b' '; 8 * 1024];
    assert_eq!(call(s.addr, "POST", "/v1/license", &bearer(&all), &big).0, 413);
    let r = nearcast_testkit::http::call(
        s.addr,
        "OPTIONS",
        "/v1/license",
        &[("origin", "http://player.test")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

/// A box in the fleet fills the title: its manifest lists the files,
/// and no key is in it.
fn no_key_reaches_a_box(s: &Server, keys: &nearcast_packager::cenc::TitleKeys) {
    let key = fleet(s);
    let reg = r#"{"site":"s1","url":"http://box-1.test:8080","capacity_bytes":100000000}"#;
    assert_eq!(
        signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/register", reg).0,
        200
    );
    let release = format!(
        r#"{{"title":"sample","day":{},"boost":2.0}}"#,
        nearcast_common::unix_now() / 86_400
    );
    assert_eq!(admin(s.admin, "POST", "/v1/admin/releases", &release).0, 200);
    let (st, manifest) = signed(s.addr, &key, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(st, 200);
    assert!(
        manifest.contains("360p/seg-00001.m4s") && manifest.contains("360p/init.mp4"),
        "{manifest}"
    );
    for k in keys.all().unwrap() {
        let hex = nearcast_packager::cenc::keys::hex(&k.key);
        assert!(
            !manifest.contains(&hex) && !manifest.contains(&B64.encode(k.key)),
            "a key in the fill manifest"
        );
    }
}

/// Two replicas on one PostgreSQL: a stream admitted on one counts on the
/// other within the sharing interval, so the subject's limit holds across
/// them.
fn the_stream_limit_holds_across_replicas(backend: &Backend) {
    let root = TempDir::new(&format!("fs-license-replicas-{}", backend.label()));
    package_encrypted(&root);
    let a = start_full(
        backend,
        "lic_replicas",
        30,
        Some(root.join("origin")),
        license_config(&root),
    );
    let dir_b = TempDir::new("fs-license-replica-b");
    let b = start_on(
        backend.join("lic_replicas"),
        dir_b,
        30,
        Some(root.join("origin")),
        license_config(&root),
    );
    let kid = KeyStore::new(&root.join("keys"))
        .load("sample")
        .unwrap()
        .unwrap()
        .key("video")
        .unwrap()
        .kid;
    let now = nearcast_common::unix_now();
    let token = |jti: &str| {
        let secret = nearcast_common::token::decode_hex(ACCOUNTS_HEX).unwrap();
        let c = serde_json::json!({ "sub": "gina", "exp": now + 600, "titles": ["*"], "max_streams": 1, "jti": jti });
        sign_hs256("accounts-1", &secret, &c)
    };
    assert_eq!(
        call(
            a.addr,
            "POST",
            "/v1/license",
            &bearer(&token("tv")),
            &license_request(&kid)
        )
        .0,
        200
    );
    // Shared twice a second, followed at once (LISTEN/NOTIFY): 2 s is ample.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (st, body) = call(
        b.addr,
        "POST",
        "/v1/license",
        &bearer(&token("phone")),
        &license_request(&kid),
    );
    assert_eq!(st, 429, "the other replica let a second stream through: {body}");
    assert_eq!(
        call(
            b.addr,
            "POST",
            "/v1/license",
            &bearer(&token("tv")),
            &license_request(&kid)
        )
        .0,
        200,
        "the same stream renews anywhere"
    );
}

#[test]
fn the_stream_limit_holds_across_replicas_on_postgres() {
    on_postgres(the_stream_limit_holds_across_replicas);
}
