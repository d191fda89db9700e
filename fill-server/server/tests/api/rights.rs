//! Rights over the API: a title's territories and windows, the operator's
//! IP-to-country table, and what players and boxes then get: 451 with the
//! reason in steering and playback, a fill manifest without the title for
//! an ISP in a country where it may not be shown, and without it once its
//! window closes. Bad rights and bad country tables are refused.

use nearcast_common::unix_now;

use crate::support::*;

fn titles_in_manifest(s: &Server, key: &nearcast_common::request_auth::ApplianceKey) -> Vec<String> {
    let (st, body) = signed(s.addr, key, "box-1", "GET", "/v1/appliances/box-1/manifest", "");
    assert_eq!(st, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    m["titles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect()
}

fn steer_status(s: &Server, client: &str, path: &str) -> (u16, serde_json::Value) {
    let (st, body) = call(s.addr, "GET", path, &[("x-forwarded-for", client.into())], b"");
    (st, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

fn rights_decide_who_watches_and_what_boxes_hold(backend: &Backend) {
    let s = start(backend, "rights", 30);
    let key = fleet(&s);
    // isp-a's prefixes are in Germany; 203.0.113.0/24 in France.
    let table = "network,country\n198.51.100.0/22,DE\n203.0.113.0/24,FR\n";
    assert_eq!(
        admin(s.admin, "PUT", "/v1/admin/countries", table),
        (200, r#"{"countries":2}"#.into())
    );
    let release = format!(r#"{{"title":"movie","day":{},"boost":2.0}}"#, unix_now() / 86_400);
    assert_eq!(admin(s.admin, "POST", "/v1/admin/releases", &release).0, 200);
    assert_eq!(titles_in_manifest(&s, &key), ["movie"]);
    let set = |rights: &str| admin(s.admin, "PUT", "/v1/admin/titles/movie/rights", rights);
    assert_eq!(set(r#"{"territories":{"allow":["DE","AT"]}}"#).0, 200);
    let steer = "/v1/steer?title=movie&file=master.m3u8";
    assert_eq!(steer_status(&s, "198.51.100.7", steer).0, 200, "Germany");
    let (st, body) = steer_status(&s, "203.0.113.5", steer);
    assert_eq!(
        (st, &body["reason"]),
        (451, &serde_json::json!({"kind": "territory", "country": "FR"})),
        "{body}"
    );
    assert_eq!(
        steer_status(&s, "192.0.2.1", steer).0,
        200,
        "unknown addresses follow unknown_country = allow"
    );
    assert_eq!(steer_status(&s, "203.0.113.5", "/v1/play/movie/master.m3u8").0, 451);
    assert_eq!(titles_in_manifest(&s, &key), ["movie"], "isp-a is in Germany");
    // Denied in Germany: the box of isp-a no longer fills it.
    assert_eq!(set(r#"{"territories":{"deny":["DE"]}}"#).0, 200);
    assert!(titles_in_manifest(&s, &key).is_empty());
    assert_eq!(steer_status(&s, "203.0.113.5", steer).0, 200, "France is not denied");
    // A window that closes in a second: shown, then refused and dropped.
    let now = unix_now();
    let window = format!(r#"{{"windows":[{{"from":{},"until":{}}}]}}"#, now - 100, now + 2);
    assert_eq!(set(&window).0, 200);
    assert_eq!(titles_in_manifest(&s, &key), ["movie"]);
    assert_eq!(steer_status(&s, "198.51.100.7", steer).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (st, body) = steer_status(&s, "198.51.100.7", steer);
    assert_eq!(
        (st, &body["reason"]["kind"]),
        (451, &serde_json::json!("outside_window")),
        "{body}"
    );
    assert!(
        titles_in_manifest(&s, &key).is_empty(),
        "the window closed: the box evicts it"
    );
    let (st, all) = admin(s.admin, "GET", "/v1/admin/rights", "");
    assert!(
        st == 200 && all.contains("\"movie\"") && all.contains("\"windows\""),
        "{all}"
    );
    assert_eq!(admin(s.admin, "DELETE", "/v1/admin/titles/movie/rights", "").0, 200);
    assert_eq!(steer_status(&s, "198.51.100.7", steer).0, 200, "rights cleared");
    bad_rights_are_refused(&s);
}

fn bad_rights_are_refused(s: &Server) {
    for (path, body) in [
        (
            "/v1/admin/titles/movie/rights",
            r#"{"territories":{"allow":["Germany"]}}"#,
        ),
        (
            "/v1/admin/titles/movie/rights",
            r#"{"windows":[{"from":10,"until":5}]}"#,
        ),
        ("/v1/admin/titles/movie/rights", r#"{"window":[]}"#),
        ("/v1/admin/titles/..%2Fx/rights", r#"{}"#),
        ("/v1/admin/countries", "10.0.0.0/8,DE\n10.0.0.0/40,DE\n"),
        ("/v1/admin/countries", "10.0.0.0/8\n"),
    ] {
        let (st, answer) = admin(s.admin, "PUT", path, body);
        assert_eq!(st, 400, "{path} {body}: {answer}");
    }
    let (_, answer) = admin(s.admin, "PUT", "/v1/admin/countries", "10.0.0.0/8,DE\n10.0.0.0/40,DE\n");
    assert!(answer.contains("line 2"), "{answer}");
    // The table stands as it was: France is still France.
    let (st, body) = steer_status(s, "203.0.113.5", "/v1/steer?title=movie&file=master.m3u8");
    assert_eq!(st, 200, "{body}");
}

on_both_stores!(rights_decide_who_watches_and_what_boxes_hold);
