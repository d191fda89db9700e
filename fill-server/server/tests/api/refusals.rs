//! Every kind of refused request: bad Host headers, unknown or
//! impersonating appliances, replays, tampered bodies, bad admin input and
//! steering path tricks; none of them changes what is steered.

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;

use crate::support::*;

fn refusals(backend: &Backend) {
    let s = start(backend, "refuse", 30);
    host_headers(&s);
    let key = fleet(&s);
    appliance_requests(&s, &key);
    admin_requests(&s, &key);
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

/// RFC 9112 §3.2: one Host, an authority (IPv6 in brackets); HTTP/1.0 may
/// go without.
fn host_headers(s: &Server) {
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
}

/// Unknown or impersonating appliances, replays, tampered or missing
/// signatures, malformed bodies.
fn appliance_requests(s: &Server, key: &ApplianceKey) {
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
    enroll(s, &other, "box-2");
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
    assert_eq!(signed(s.addr, key, "box-1", "POST", path, "{not json").0, 400);
}

/// An unknown site, admin calls without the token, bad prefix lines (named
/// by line) and bad keys.
fn admin_requests(s: &Server, key: &ApplianceKey) {
    let (st, body) = signed(
        s.addr,
        key,
        "box-1",
        "POST",
        "/v1/appliances/box-1/register",
        r#"{"site":"nowhere","url":"http://x","capacity_bytes":1}"#,
    );
    assert_eq!((st, body.contains("unknown site")), (422, true), "{body}");
    // Admin calls need the token; bad prefix lines name their line.
    assert_eq!(call(s.admin, "POST", "/v1/admin/isps", &[], br#"{"name":"x"}"#).0, 401);
    assert_eq!(
        call(
            s.admin,
            "POST",
            "/v1/admin/isps",
            &[("authorization", "Bearer wrong".into())],
            br#"{"name":"x"}"#
        )
        .0,
        401
    );
    let (st, body) = admin(s.admin, "PUT", "/v1/admin/prefixes", "10.0.0.0/8 1\nnot-a-prefix 2\n");
    assert_eq!((st, body.contains("line 2")), (422, true), "{body}");
    assert_eq!(
        admin(
            s.admin,
            "POST",
            "/v1/admin/appliances",
            r#"{"id":"b","public_key":"abcd"}"#
        )
        .0,
        400
    );
}

on_both_stores!(refusals);
