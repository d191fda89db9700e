//! The player routes and the origin: steered URLs carry tokens the origin
//! checks, and playlists are refused without the right one.

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::{unix_now, Keyring, SigningKey};
use nearcast_fill_server::config::Config;
use nearcast_testkit::TempDir;

use crate::support::*;

#[test]
fn the_origin_serves_steered_urls_with_the_same_token_check() {
    let root = TempDir::new("fs-originsrv");
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
    // And with the token in the path, as pathways' playlists carry it.
    let in_path = format!("/t/{}/c/movie/master.m3u8", token.replace('/', "%2F"));
    assert_eq!(call(origin.http_addr, "GET", &in_path, &[], b"").0, 200);
    origin.shutdown();
    origin.join().unwrap();
}

fn play_routes_refuse_missing_or_foreign_tokens(backend: &Backend) {
    let root = TempDir::new(&format!("fs-playorigin-{}", backend.label()));
    write_movie(&root);
    let s = start_with_origin(backend, "play", 30, Some(root.join("origin")));
    let key = fleet(&s);
    add_box(&s, &key, "box-2", 0.5);
    let client = [("x-forwarded-for", "198.51.100.7".to_string())];
    let (st, master) = call(s.addr, "GET", "/v1/play/movie/master.m3u8", &client, b"");
    assert_eq!(st, 200, "{master}");
    // In the clear, each pathway's media playlists are its box's own,
    // the title's token in the path (relative segment URIs keep it).
    let media = master
        .lines()
        .find(|l| l.starts_with("http://box-1.test:8080/t/") && l.ends_with("/c/movie/360p/index.m3u8"))
        .unwrap_or_else(|| panic!("{master}"));
    let token = media["http://box-1.test:8080/t/".len()..]
        .split('/')
        .next()
        .unwrap()
        .replace("%2F", "/");
    let ring = Keyring::new(vec![SigningKey::from_hex("k1", KEY_HEX).unwrap()]);
    let verifies = |path: &str, ip: &str| ring.verify(path, &token, ip.parse().unwrap(), unix_now()).is_ok();
    assert!(verifies("/c/movie/360p/seg-00001.m4s", "198.51.100.7"), "{token}");
    assert!(
        !verifies("/c/movie/360p/seg-00001.m4s", "198.51.101.7"),
        "bound to the client's /24"
    );
    assert!(
        !verifies("/c/other/360p/seg-00001.m4s", "198.51.100.7"),
        "and to the title"
    );
    // Content steering: the box's pathway first, the origin's as fallback,
    // and the steering manifest the player re-reads for the order.
    assert!(
        master.contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"/v1/play/movie/steering.json\",PATHWAY-ID=\"box-1\""),
        "{master}"
    );
    assert!(master.contains("BANDWIDTH=1,PATHWAY-ID=\"box-1\"\n"), "{master}");
    assert!(
        master
            .lines()
            .any(|l| l.starts_with("http://origin.test/t/") && l.ends_with("/c/movie/360p/index.m3u8")),
        "{master}"
    );
    assert!(
        master.contains("PATHWAY-ID=\"box-2\"\nhttp://box-2.test:8080/t/"),
        "{master}"
    );
    // The fill server's own media playlist (what encrypted titles use).
    let via = |id: &str| {
        format!(
            "/v1/play/movie/360p/index.m3u8?via={id}&token={}",
            token.replace('/', "%2F")
        )
    };
    let (st, list) = call(s.addr, "GET", &via("origin"), &client, b"");
    assert_eq!(st, 200, "{list}");
    assert!(
        list.contains("\nhttp://origin.test/c/movie/360p/seg-00001.m4s?token="),
        "{list}"
    );
    steering_manifest_orders_pathways(&s, &key, &client);
    media_playlist_is_bound_to_the_client(&s, &via("box-1"), &client);
}

/// A two-line master playlist and one media playlist under `root/origin`.
fn write_movie(root: &TempDir) {
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
}

/// The content-steering manifest: least loaded first, a player stays on
/// its pathway, a failed box's players are moved off it, a client no box
/// serves gets the origin alone.
fn steering_manifest_orders_pathways(s: &Server, key: &ApplianceKey, client: &[(&str, String)]) {
    let priority = |current: &str| {
        let target = format!("/v1/play/movie/steering.json{current}");
        let (st, steering) = call(s.addr, "GET", &target, client, b"");
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
    heartbeat(s, key, "box-2", "failed", 0.5);
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
}

/// The media playlist names the box's URLs with tokens, and is refused to
/// another /24, without a token or with a forged one; unknown titles and
/// path tricks are refused.
fn media_playlist_is_bound_to_the_client(s: &Server, media: &str, client: &[(&str, String)]) {
    let (st, list) = call(s.addr, "GET", media, client, b"");
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
        call(s.addr, "GET", "/v1/play/movie/360p/index.m3u8?via=box-1", client, b"").0,
        403
    );
    let forged = media.replace("token=k1-", "token=k1-1");
    assert_eq!(call(s.addr, "GET", &forged, client, b"").0, 403);
    // Unknown titles and path tricks.
    assert_eq!(call(s.addr, "GET", "/v1/play/nothing/master.m3u8", client, b"").0, 404);
    assert_eq!(call(s.addr, "GET", "/v1/play/../etc/master.m3u8", client, b"").0, 400);
    assert_eq!(
        call(s.addr, "GET", "/v1/play/movie/%2e%2e/index.m3u8", client, b"").0,
        400
    );
}

on_both_stores!(play_routes_refuse_missing_or_foreign_tokens);
