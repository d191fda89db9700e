//! What boxes learn from the heartbeat answer: OS releases, and where to
//! pull live objects from.

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;

use crate::support::*;

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
    let put = |path: &str, body: &[u8]| call(s.admin, "PUT", path, &auth, body);
    // Refused: not a bundle, a truncated one, another release's name, a
    // name that is a path, no admin token.
    assert_eq!(put("/v1/admin/os/2", b"hsqs not a bundle").0, 422);
    assert_eq!(put("/v1/admin/os/2", &bundle[..bundle.len() - 1]).0, 422);
    assert_eq!(put("/v1/admin/os/3", &bundle).0, 422);
    assert_eq!(put("/v1/admin/os/..", &bundle).0, 422);
    assert_eq!(call(s.admin, "PUT", "/v1/admin/os/2", &[], &bundle).0, 401);
    // Nothing set yet: the box has nothing to fetch, an unknown release
    // cannot be set.
    assert_eq!(
        signed(s.addr, &key, "box-1", "GET", "/v1/appliances/box-1/os", "").0,
        404
    );
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 404);
    let (st, body) = put("/v1/admin/os/2", &bundle);
    assert_eq!(st, 200, "{body}");
    let (_, list) = admin(s.admin, "GET", "/v1/admin/os", "");
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
    live_plan_in_the_heartbeat(&s, &key);
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

/// Every heartbeat answer names the box's site (healthy boxes, itself
/// included) and the live door, for the agent to hand to the appliance.
fn live_plan_in_the_heartbeat(s: &Server, key: &ApplianceKey) {
    let hb = r#"{"health":"ok","load":0.1,"free_bytes":5000}"#;
    let (_, body) = signed(s.addr, key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", hb);
    let live = serde_json::from_str::<serde_json::Value>(&body).unwrap()["live"].clone();
    assert_eq!(live["self_id"], "box-1", "{body}");
    assert_eq!(
        live["peers"],
        serde_json::json!([{"id": "box-1", "url": "http://box-1.test:8080"}])
    );
    assert_eq!(live["origins"], serde_json::json!(["http://127.0.0.1:7073"]));
    assert!(live["cache_mib"].as_u64() > Some(0));
}

on_both_stores!(os_updates);
