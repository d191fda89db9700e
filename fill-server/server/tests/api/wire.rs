//! Boxes speak protobuf (`application/x-protobuf`, `common/proto/wire.proto`)
//! and people JSON, on the same calls: a box registers, beats and reports
//! its inventory in protobuf, gets its manifest and heartbeat answer in
//! protobuf when it asks, and they decode to what the JSON answers say. A
//! malformed protobuf body, or one that breaks the rules JSON enforces, is
//! refused with a reason.

use nearcast_common::control::{Health, Heartbeat, HeartbeatReply, Inventory, Registration};
use nearcast_common::manifest::FillManifest;
use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;
use nearcast_common::wire::{self, CONTENT_TYPE};
use prost::Message;

use crate::support::*;

/// A signed call with a protobuf body, asking for protobuf back; (status,
/// content type, body).
fn proto_call(s: &Server, key: &ApplianceKey, method: &str, action: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let path = format!("/v1/appliances/box-p/{action}");
    let mut headers: Vec<(&str, String)> = key.sign("box-p", method, &path, unix_now(), body).into_iter().collect();
    headers.push(("content-type", CONTENT_TYPE.into()));
    headers.push(("accept", CONTENT_TYPE.into()));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = nearcast_testkit::http::call(s.addr, method, &path, &h, body);
    let ct = r.header("content-type").unwrap_or("").to_string();
    (r.status, ct, r.body)
}

fn protobuf_and_json_say_the_same(backend: &Backend) {
    let s = start(backend, &format!("wire_{}", backend.label()), 30);
    fleet(&s);
    let key = new_key();
    enroll(&s, &key, "box-p");
    let reg = Registration {
        site: "s1".into(),
        url: "http://box-p.test:8080".into(),
        capacity_bytes: 1 << 30,
        disks: vec!["/d0".into()],
    };
    let (st, _, body) = proto_call(&s, &key, "POST", "register", &wire::encode(&reg).unwrap());
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let mut hb = Heartbeat::new(Health::Ok, 0.1, 5000);
    hb.bytes_by_title
        .insert(nearcast_common::Name::new("movie").unwrap(), 1200);
    let (st, ct, body) = proto_call(&s, &key, "POST", "heartbeat", &wire::encode(&hb).unwrap());
    assert_eq!((st, ct.as_str()), (200, CONTENT_TYPE));
    let reply: HeartbeatReply = wire::decode(&body).unwrap();
    assert_eq!(
        reply.live.as_ref().map(|l| l.self_id.as_str()),
        Some("box-p"),
        "{reply:?}"
    );
    let inv = Inventory {
        version: "v1".into(),
        titles: vec![nearcast_common::Name::new("movie").unwrap()],
    };
    assert_eq!(
        proto_call(&s, &key, "PUT", "inventory", &wire::encode(&inv).unwrap()).0,
        200
    );
    // The stored box is what was sent.
    let (_, fleet) = admin(s.admin, "GET", "/v1/admin/appliances", "");
    assert!(
        fleet.contains(r#""url":"http://box-p.test:8080""#) && fleet.contains(r#""titles":["movie"]"#),
        "{fleet}"
    );

    let (st, ct, body) = proto_call(&s, &key, "GET", "manifest", b"");
    assert_eq!((st, ct.as_str()), (200, CONTENT_TYPE));
    let from_proto: FillManifest = wire::decode(&body).unwrap();
    let (st, json) = signed(s.addr, &key, "box-p", "GET", "/v1/appliances/box-p/manifest", "");
    assert_eq!(st, 200);
    let from_json: FillManifest = serde_json::from_str(&json).unwrap();
    assert_eq!(from_proto, from_json);

    // Refused, saying why: not protobuf; a title that is a path.
    let (st, _, body) = proto_call(&s, &key, "POST", "heartbeat", b"\xff\xff\xff garbage");
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("bad protobuf"));
    let bad = nearcast_common::wire::v1::Inventory {
        version: "v2".into(),
        titles: vec!["../etc".into()],
    };
    assert_eq!(proto_call(&s, &key, "PUT", "inventory", &bad.encode_to_vec()).0, 400);
}

on_both_stores!(protobuf_and_json_say_the_same);
