//! HTTPS with a certificate made by openssl for the test, checked with a
//! rustls client and with curl.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use support::*;

#[test]
fn https_serves_ranges_keepalive_and_checks_tokens() {
    let dir = temp_dir("tls");
    make_cert(&dir);
    let disk = dir.join("disk");
    let seg = write_file(&disk.join("t/r/seg.m4s"), 2 * 1024 * 1024 + 17, 5);
    let app = Appliance::start(&dir, &[disk], &tls_toml(&dir));
    let addr = app.https.expect("https listener");
    let url = signed("/c/t/r/seg.m4s");

    let conn = rustls::ClientConnection::new(client_config(&dir), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let reqs = format!(
        "GET {url} HTTP/1.1\r\nHost: t\r\n\r\nGET {url} HTTP/1.1\r\nHost: t\r\nRange: bytes=100-199\r\n\r\nGET /c/t/r/seg.m4s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(reqs.as_bytes()).unwrap();
    let mut r = BufReader::new(tls);
    let full = read_response(&mut r, false).unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(sha256(&full.body), sha256(&seg));
    let part = read_response(&mut r, false).unwrap();
    assert_eq!((part.status, part.body.as_slice()), (206, &seg[100..200]));
    let denied = read_response(&mut r, false).unwrap();
    assert_eq!(denied.status, 403);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());

    // A real external client.
    assert_eq!(sha256(&curl_https(&dir, addr, &url)), sha256(&seg));

    // Garbage on the TLS port is a TLS error; the server carries on.
    let mut junk = TcpStream::connect(addr).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = junk.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/"), "no plaintext answer on the TLS port");
    assert!(app.metric_at_least("nearcast_tls_errors_total", 1.0) >= 1.0);
    assert_eq!(app.get(&url).body.len(), seg.len());
}

/// wrk and many players put the IP address in SNI (RFC 6066 forbids it);
/// the log must not grow with such handshakes, and each handshake is
/// counted by the mode its records take.
#[test]
fn ip_address_sni_does_not_fill_the_log() {
    let dir = temp_dir("tls-sni");
    make_cert(&dir);
    let disk = dir.join("disk");
    write_file(&disk.join("t/r/seg.m4s"), 1000, 1);
    let log = dir.join("appliance.log");
    let file = std::fs::File::create(&log).unwrap();
    let app = Appliance::start_with(&dir, &[disk], &tls_toml(&dir), |cmd| {
        cmd.env("RUST_LOG", "info").stderr(file);
    });
    let addr = app.https.unwrap();
    for _ in 0..10 {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), "-servername", "127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
            "a handshake"
        );
    }
    let userspace = app.metric_at_least("nearcast_tls_connections_total{mode=\"userspace\"}", 10.0);
    assert_eq!(
        userspace, 10.0,
        "this kernel has no kTLS: every session stays in rustls"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let per_handshake = text.lines().filter(|l| l.contains("SNI") || l.contains("WARN")).count();
    assert_eq!(per_handshake, 0, "{text}");
}
