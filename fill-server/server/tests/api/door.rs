//! The public door's bounds: a request head that does not arrive in time
//! is cut off; connections over the cap are closed at accept while the
//! established ones keep being served; a body over its route's limit is
//! refused before it is read, declared or streamed (a 60 MB body to the
//! 64 KiB QoE route: 413, and this process, which runs the server, grows
//! by a few MB at most); a wrong admin token is refused; operators' calls
//! are served only on the admin listener.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nearcast_testkit::http;

use crate::support::*;

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Bytes the server sends before it closes (or the read times out).
fn read_all(mut c: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    got
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn slow_heads_are_cut(backend: &Backend) {
    let s = start_tuned(backend, "door_slow", |c| c.door_header_timeout_ms = 500);
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let got = read_all(c);
    let took = started.elapsed();
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).contains("408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "cut after {took:?}"
    );
    // A kept-alive connection idle past the timeout is closed too.
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    assert_eq!(http::read_response(&mut r, false).unwrap().unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").is_err()
            || http::read_response(&mut r, false).map_or(true, |r| r.is_none())
    );
}

fn over_the_cap_is_refused(backend: &Backend) {
    let s = start_tuned(backend, "door_cap", |c| c.door_max_connections = 8);
    let held: Vec<(TcpStream, BufReader<TcpStream>)> = (0..8)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            assert_eq!(http::read_response(&mut r, false).unwrap().unwrap().status, 200);
            (c, r)
        })
        .collect();
    // The ninth is closed at accept: no answer.
    let mut extra = connect(&s);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(read_all(extra).is_empty(), "a connection over the cap was served");
    // The held ones are still served.
    for (mut c, mut r) in held {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(http::read_response(&mut r, false).unwrap().unwrap().status, 200);
    }
    // Their slots are free again once they left.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(s.addr, "GET", "/healthz", &[], b"").0, 200);
    let (_, m) = call(s.addr, "GET", "/metrics", &[], b"");
    assert!(!m.contains("nearcast_fill_connections_refused_total 0"), "{m}");
}

/// Sends a 60 MB body (declared, or chunked) 64 KiB at a time until the
/// server answers or closes; returns its status.
fn big_body(s: &Server, path: &str, declared: bool) -> u16 {
    let mut c = connect(s);
    let framing = if declared {
        "Content-Length: 62914560"
    } else {
        "Transfer-Encoding: chunked"
    };
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    )
    .unwrap();
    let piece = vec![b' '; 64 * 1024];
    for _ in 0..960 {
        let ok = if declared {
            c.write_all(&piece).is_ok()
        } else {
            c.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .and_then(|_| c.write_all(&piece))
                .and_then(|_| c.write_all(b"\r\n"))
                .is_ok()
        };
        if !ok {
            break;
        }
    }
    let mut r = BufReader::new(c);
    http::read_response(&mut r, false)
        .ok()
        .flatten()
        .map_or(0, |r| r.status)
}

fn big_bodies_are_refused_unread(backend: &Backend) {
    let s = start(backend, "door_body", 30);
    let before = rss_kib();
    assert_eq!(big_body(&s, "/v1/qoe", true), 413);
    let status = big_body(&s, "/v1/qoe", false);
    assert!(status == 413 || status == 0, "streamed 60 MB: {status}");
    let grew = rss_kib().saturating_sub(before);
    assert!(grew < 16 * 1024, "the process grew by {grew} KiB");
    // A small body is still taken; a wrong admin token is refused.
    assert_ne!(call(s.addr, "POST", "/v1/qoe", &[], b"[]").0, 413);
    let wrong = [("authorization", "Bearer not-the-admin-token".to_string())];
    assert_eq!(call(s.admin, "GET", "/v1/admin/live", &wrong, b"").0, 401);
    each_call_on_its_listener(&s);
}

/// Operators' calls are refused on the public listener, even with the
/// token; the admin listener serves nothing else.
fn each_call_on_its_listener(s: &Server) {
    let auth = [("authorization", format!("Bearer {ADMIN}"))];
    for path in ["/v1/admin/live", "/v1/admin/appliances", "/dashboard"] {
        let (st, body) = call(s.addr, "GET", path, &auth, b"");
        assert_eq!(st, 404, "{path} on the public listener: {body}");
        assert!(body.contains("admin listener"), "{body}");
        assert_eq!(
            call(s.admin, "GET", path, &auth, b"").0,
            200,
            "{path} on the admin listener"
        );
    }
    for path in ["/v1/steer?title=movie", "/player", "/v1/play/movie/master.m3u8"] {
        assert_eq!(
            call(s.admin, "GET", path, &[], b"").0,
            404,
            "{path} on the admin listener"
        );
    }
    assert_eq!(call(s.admin, "GET", "/healthz", &[], b"").0, 200);
}

fn door(backend: &Backend) {
    slow_heads_are_cut(backend);
    over_the_cap_is_refused(backend);
    big_bodies_are_refused_unread(backend);
}

on_both_stores!(door);
