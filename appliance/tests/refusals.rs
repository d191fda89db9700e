//! Bad input: every token failure, path tricks, malformed requests, slow
//! and idle clients, the connection cap — and that none of it disturbs a
//! well-behaved client meanwhile.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nearcast_common::{Grant, SigningKey};
use support::*;

const PATH: &str = "/c/t/720p/seg-1.m4s";

fn start(name: &str, extra: &str) -> (Appliance, Vec<u8>) {
    let dir = temp_dir(name);
    let disk = dir.join("disk");
    let seg = write_file(&disk.join("t/720p/seg-1.m4s"), 50_000, 9);
    (Appliance::start(&dir, &[disk], extra).owning(dir), seg)
}

fn with_token(token: &str) -> String {
    format!("{PATH}?token={token}")
}

#[test]
fn tokens() {
    // Two keys active, as during a rotation.
    let (app, seg) = start(
        "tokens",
        "[[auth.keys]]\nid = \"k0\"\nsecret_hex = \"ffeeddccbbaa99887766554433221100\"\n",
    );
    let now = unix_now();
    let sign = |key: &SigningKey, exp: u64, prefix: Option<&str>| {
        key.sign(
            PATH,
            &Grant {
                expires: exp,
                client_prefix: prefix.map(|p| p.parse().unwrap()),
            },
        )
    };
    let ok = app.get(&with_token(&sign(&key(), now + 60, Some("127.0.0.0/8"))));
    assert_eq!((ok.status, ok.body == seg), (200, true));
    let old = SigningKey::from_hex("k0", "ffeeddccbbaa99887766554433221100").unwrap();
    assert_eq!(
        app.get(&with_token(&sign(&old, now + 60, None))).status,
        200,
        "second key accepted"
    );
    // URL-encoded prefix separators are decoded before checking.
    let enc = sign(&key(), now + 60, Some("127.0.0.0/8")).replace('/', "%2F");
    assert_eq!(app.get(&with_token(&enc)).status, 200);

    let forged_key = SigningKey::from_hex(KEY_ID, "0000000000000000000000000000000000").unwrap();
    let unknown = SigningKey::from_hex("k9", KEY_HEX).unwrap();
    let good = sign(&key(), now + 60, None);
    let refused = [
        ("missing", PATH.to_string()),
        ("empty", with_token("")),
        ("garbage", with_token("hello")),
        ("forged", with_token(&sign(&forged_key, now + 60, None))),
        ("unknown key", with_token(&sign(&unknown, now + 60, None))),
        ("expired", with_token(&sign(&key(), now - 1, None))),
        (
            "wrong prefix",
            with_token(&sign(&key(), now + 60, Some("192.0.2.0/24"))),
        ),
        ("other path", format!("/c/t/720p/seg-2.m4s?token={good}")),
        (
            "extended expiry",
            with_token(&good.replacen(&(now + 60).to_string(), &(now + 9999).to_string(), 1)),
        ),
    ];
    for (what, target) in refused {
        let r = app.get(&target);
        assert_eq!(r.status, 403, "{what}");
        assert!(r.body.len() < 100, "{what}: no content leaked");
    }
    assert!(app.metric_at_least("nearcast_requests_total{code=\"403\"}", 9.0) >= 9.0);
    tokens_in_the_path(&app, &seg);
}

/// `/t/{token}/c/…`: what a playlist's relative segment URIs keep. A
/// title's token covers its files there too; the same refusals apply.
fn tokens_in_the_path(app: &Appliance, seg: &[u8]) {
    let now = unix_now();
    let title = key().sign(
        "/c/t/",
        &Grant {
            expires: now + 60,
            client_prefix: Some("127.0.0.0/8".parse().unwrap()),
        },
    );
    let in_path = |token: &str, rest: &str| format!("/t/{}{rest}", token.replace('/', "%2F"));
    let ok = app.get(&in_path(&title, PATH));
    assert_eq!((ok.status, ok.body == seg), (200, true));
    let other = key().sign(
        "/c/u/",
        &Grant {
            expires: now + 60,
            client_prefix: None,
        },
    );
    for (what, target, status) in [
        ("another title's token", in_path(&other, PATH), 403),
        (
            "expired",
            in_path(
                &key().sign(
                    "/c/t/",
                    &Grant {
                        expires: now - 1,
                        client_prefix: None,
                    },
                ),
                PATH,
            ),
            403,
        ),
        ("forged", in_path(&title.replacen('-', "-9", 1), PATH), 403),
        ("undecodable", format!("/t/%zz{PATH}"), 403),
        ("no path after it", format!("/t/{title}"), 404),
        (
            "dot segments after it",
            in_path(&title, "/c/t/../t/720p/seg-1.m4s"),
            400,
        ),
    ] {
        assert_eq!(app.get(&target).status, status, "{what}: {target}");
    }
}

#[test]
fn path_tricks() {
    let (app, _) = start("paths", "");
    let targets = [
        "/c/../../etc/passwd",
        "/c/t/../../../etc/passwd",
        "/c/t/%2e%2e/%2e%2e/etc/passwd",
        "/c/t/%2E%2E%2F%2E%2E%2Fetc/passwd",
        "/c/t/720p%2f..%2f..%2fx",
        "/c/t/720p/seg-1.m4s%00.txt",
        "/c/t/720p/.hidden",
        "/c//etc/passwd",
        "/c/t/720p/%",
    ];
    for t in targets {
        let r = app.get(&signed(t));
        assert_eq!(r.status, 400, "{t}");
    }
    // Absolute-form targets and a raw NUL are malformed requests.
    assert_eq!(
        app.request("GET http://x/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        400
    );
    assert_eq!(app.request("GET /c/t/a\0b HTTP/1.1\r\nHost: t\r\n\r\n").status, 400);
    assert_eq!(app.get("/etc/passwd").status, 404);
}

#[test]
fn malformed_requests() {
    let (app, _) = start("malformed", "max_header_bytes = 2048\n");
    let long_uri = format!("GET /c/{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(4000));
    let long_hdr = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "b".repeat(4000));
    let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(String, u16)> = vec![
        ("garbage\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nno colon\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("GET / HTTP/9.9\r\nHost: t\r\n\r\n".into(), 400),
        (
            "POST /c/t/720p/seg-1.m4s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".into(),
            405,
        ),
        ("DELETE /c/t/720p/seg-1.m4s HTTP/1.1\r\nHost: t\r\n\r\n".into(), 405),
        ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc".into(), 400),
        (
            "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        (long_uri, 414),
        (long_hdr, 431),
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"), 431),
    ];
    for (raw, want) in cases {
        let mut s = app.connect();
        s.write_all(raw.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false).unwrap_or_else(|| panic!("no answer to {raw:.40?}"));
        assert_eq!(resp.status, want, "{raw:.60?}");
        assert_eq!(resp.header("connection"), Some("close"));
        if want == 405 {
            assert_eq!(resp.header("allow"), Some("GET, HEAD"));
        }
        // The server closes after refusing.
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
    }
    // A TLS ClientHello on the plain port is just a malformed request.
    let mut s = app.connect();
    s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap();
    s.write_all(&[0u8; 64]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.starts_with(b"HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&buf));
}

#[test]
fn slow_and_idle_clients_are_closed_without_disturbing_others() {
    let (app, seg) = start("slow", "[timeouts]\nheader_ms = 600\nkeepalive_ms = 900\n");
    let good = signed(PATH);
    // A slowloris: one header byte at a time, never finishing.
    let mut slow = app.connect();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        for _ in 0..40 {
            if slow.write_all(b"X").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut buf = [0u8; 64];
        let closed = matches!(slow.read(&mut buf), Ok(0) | Err(_));
        (closed, started.elapsed())
    });
    // A client that connects and says nothing.
    let mut mute = app.connect();
    // Meanwhile well-behaved clients are served.
    for _ in 0..20 {
        let r = app.get(&good);
        assert_eq!((r.status, r.body == seg), (200, true));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (closed, took) = dripper.join().unwrap();
    assert!(closed, "slow client was closed");
    assert!(
        took < Duration::from_millis(2500),
        "closed by the header timeout, took {took:?}"
    );
    let t = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(mute.read(&mut buf), Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(2));
    // A kept-alive connection that goes idle is closed after keepalive_ms.
    let mut ka = app.connect();
    ka.write_all(format!("GET {good} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut r = BufReader::new(ka.try_clone().unwrap());
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    let idle_from = Instant::now();
    assert!(read_response(&mut r, false).is_none());
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(700) && idle < Duration::from_secs(3),
        "idle close after {idle:?}"
    );
    assert!(app.metric_at_least("nearcast_timeouts_total", 3.0) >= 3.0);
}

#[test]
fn connection_cap() {
    let (app, _) = start("cap", "max_connections = 8\n");
    let held: Vec<TcpStream> = (0..8).map(|_| app.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // Over the cap: accepted and closed at once.
    let mut extra = app.connect();
    let mut buf = [0u8; 16];
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)));
    assert!(app.metric_at_least("nearcast_connections_refused_total", 1.0) >= 1.0);
    drop(held);
    // Room again once the held connections are gone.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.get(&signed(PATH)).status, 200);
}
