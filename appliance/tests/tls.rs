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
