//! The remaining routes: BGP reports, QoE events, the player page and the
//! OpenAPI document.

use crate::support::*;

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
    let (st, body) = admin(s.admin, "GET", "/v1/admin/bgp", "");
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
    let (st, body) = admin(s.admin, "GET", "/v1/admin/qoe", "");
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
    assert_eq!(call(s.admin, "GET", "/v1/admin/qoe", &[], b"").0, 401);
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
                .replace("{release}", "r1")
                .replace("{name}", "n")
                .replace("{session}", "s1")
                .replace("{kid}", "00112233445566778899aabbccddeeff")
                .replace("{sha256}", &"0".repeat(64));
            // Operators' routes are on the admin listener.
            let door = if concrete.starts_with("/v1/admin") || concrete == "/dashboard" {
                s.admin
            } else {
                s.addr
            };
            let (_, body) = call(door, &method.to_uppercase(), &concrete, &[], b"");
            for unrouted in ["no route", "no such", "no appliance action"] {
                assert!(
                    !body.contains(unrouted),
                    "{method} {path} is documented but not routed: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 21, "{checked} operations");
}

on_both_stores!(bgp_routes_are_checked_stored_and_shown);
