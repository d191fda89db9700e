//! Steering: enrolled appliances are steered to with signed URLs, and a
//! silent or failed box leaves the answers.

use std::time::Duration;

use nearcast_common::{unix_now, Keyring, SigningKey};

use crate::support::*;

/// Whether the appliance would accept `token` for the sample playlist
/// from `client`.
fn verifies(token: &str, client: &str) -> bool {
    let ring = Keyring::new(vec![SigningKey::from_hex("k1", KEY_HEX).unwrap()]);
    ring.verify("/c/movie/master.m3u8", token, client.parse().unwrap(), unix_now())
        .is_ok()
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
    assert!(verifies(token, "198.51.101.99"));
    assert!(!verifies(token, "198.51.100.1"));
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
    assert_eq!(
        s.store.served().unwrap().get("box-1"),
        Some(&1200),
        "and its served total"
    );
}

fn a_silent_or_failed_box_leaves_the_answers(backend: &Backend) {
    let s = start(backend, "silent", 2);
    let key = fleet(&s);
    let answers = || steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len();
    let beat = |hb: &str| signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", hb);
    let inventory = |inv: &str| signed(s.addr, &key, "box-1", "PUT", "/v1/appliances/box-1/inventory", inv);
    assert_eq!(answers(), 2);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(answers(), 1, "timed out");
    // Beating again brings it back.
    beat(r#"{"health":"ok","load":0.2,"free_bytes":1}"#);
    assert_eq!(answers(), 2);
    // A failed disk alone keeps the box in (its titles leave with the next
    // inventory); a box that reports itself failed is out at once.
    beat(r#"{"health":"degraded","load":0.2,"free_bytes":1,"disks":[{"name":"d0","health":"failed","free_bytes":0}]}"#);
    assert_eq!(answers(), 2);
    inventory(r#"{"version":"v2","titles":[]}"#);
    assert_eq!(answers(), 1);
    inventory(r#"{"version":"v3","titles":["movie"]}"#);
    beat(r#"{"health":"failed","load":0.0,"free_bytes":1}"#);
    assert_eq!(answers(), 1);
}

on_both_stores!(
    enrolled_appliances_are_steered_to_with_signed_urls,
    a_silent_or_failed_box_leaves_the_answers
);
