//! The per-connection rate cap against the running binary: a capped
//! connection gets exact bytes no faster than the cap, across kept-alive
//! requests and over HTTPS, and the cap is per connection (two at once
//! each get the full rate, not half of it).

mod support;

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use support::*;

/// 4000 kbit/s = 500 kB/s per connection, after a 20 kB burst.
const RATE: f64 = 500_000.0;
const BURST: usize = 20_000;

#[test]
fn each_connection_is_held_to_the_cap() {
    let dir = temp_dir("rate");
    make_cert(&dir);
    let disk = dir.join("disk");
    let seg = write_file(&disk.join("t/r/seg.m4s"), 600_000, 9);
    let extra = format!(
        "[rate_limit]\nkbit_per_connection = 4000\nburst_bytes = {BURST}\n{}",
        tls_toml(&dir)
    );
    let app = Appliance::start(&dir, &[disk], &extra);
    let url = signed("/c/t/r/seg.m4s");

    // Two connections at once, each asking for the file twice (pipelined).
    let started = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let mut s = app.connect();
            let url = url.clone();
            std::thread::spawn(move || {
                let req = format!("GET {url} HTTP/1.1\r\nHost: t\r\n\r\n");
                s.write_all(format!("{req}{req}").as_bytes()).unwrap();
                let mut r = BufReader::new(s);
                let bodies = [0, 1].map(|_| read_response(&mut r, false).expect("a response").body);
                (bodies, started.elapsed())
            })
        })
        .collect();
    let least = (2 * seg.len() - BURST) as f64 / RATE;
    for c in clients {
        let (bodies, took) = c.join().unwrap();
        for b in &bodies {
            assert_eq!(sha256(b), sha256(&seg), "exact bytes under the cap");
        }
        let took = took.as_secs_f64();
        assert!(
            took >= least * 0.97,
            "{took:.2} s for 1.2 MB: faster than the cap allows"
        );
        // Shared between the two, the rate would need twice as long.
        assert!(took < least * 1.6, "{took:.2} s: the cap is per connection");
    }

    // A client that leaves in the middle of a paced body: the server
    // notices at its next chunk and frees the connection.
    let mut s = app.connect();
    s.write_all(format!("GET {url} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(&mut s, &mut first).unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.metric("nearcast_connections_active") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned paced connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // HTTPS bodies are paced too (they go through rustls, not sendfile).
    let addr = app.https.expect("https listener");
    let t = Instant::now();
    let body = curl_https(&dir, addr, &url);
    let took = t.elapsed();
    assert_eq!(sha256(&body), sha256(&seg));
    let least = Duration::from_secs_f64((seg.len() - BURST) as f64 / RATE * 0.97);
    assert!(took >= least, "{took:?} over HTTPS: faster than the cap");
    assert!(app.metric_at_least("nearcast_sent_bytes_total", 5.0 * 600_000.0) >= 5.0 * 600_000.0);
}
