//! HTTP semantics against the running binary: ranges, HEAD, conditionals,
//! keep-alive, pipelining, content types, multiple disks, metrics.

mod support;

use std::io::{BufReader, Write};

use support::*;

struct Fixture {
    app: Appliance,
    seg: Vec<u8>,
}

fn fixture(name: &str) -> Fixture {
    let dir = temp_dir(name);
    let (d1, d2) = (dir.join("disk1"), dir.join("disk2"));
    let seg = write_file(&d1.join("t/720p/seg-1.m4s"), 100_000, 1);
    write_file(&d2.join("t/720p/init.mp4"), 1000, 2);
    std::fs::write(d2.join("t/master.m3u8"), "#EXTM3U\n").unwrap();
    write_file(&d2.join("t/720p/empty.vtt"), 0, 3);
    let app = Appliance::start(&dir, &[d1, d2], "").owning(dir);
    Fixture { app, seg }
}

#[test]
fn ranges() {
    let f = fixture("ranges");
    let len = f.seg.len();
    let p = signed("/c/t/720p/seg-1.m4s");
    let get = |range: &str| {
        f.app.request(&format!(
            "GET {p} HTTP/1.1\r\nHost: t\r\nRange: {range}\r\nConnection: close\r\n\r\n"
        ))
    };
    let full = f.app.get(&p);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, f.seg);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        full.header("access-control-allow-origin"),
        Some("*"),
        "browser players on another origin"
    );

    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=99990-", 99_990, len - 1),
        ("bytes=-10", len - 10, len - 1),
        ("bytes=-200000", 0, len - 1),
        ("bytes=99999-200000", 99_999, len - 1),
    ];
    for &(range, a, b) in cases {
        let r = get(range);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, f.seg[a..=b], "{range}");
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes {a}-{b}/{len}"),
            "{range}"
        );
    }
    for range in ["bytes=100000-", "bytes=-0", "bytes=200000-300000"] {
        let r = get(range);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range").unwrap(), format!("bytes */{len}"));
    }
    // Several ranges and invalid syntax both get the full body.
    for range in ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2"] {
        let r = get(range);
        assert_eq!((r.status, r.body.len()), (200, len), "{range}");
    }
    // Empty file: any range is unsatisfiable, a plain GET is an empty 200.
    let empty = signed("/c/t/720p/empty.vtt");
    assert_eq!(f.app.get(&empty).status, 200);
    let r = f
        .app
        .request(&format!("GET {empty} HTTP/1.1\r\nHost: t\r\nRange: bytes=0-\r\n\r\n"));
    assert_eq!(r.status, 416);
}

#[test]
fn head_types_and_disks() {
    let f = fixture("head");
    let p = signed("/c/t/720p/seg-1.m4s");
    let r = f
        .app
        .request(&format!("HEAD {p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.header("content-type"), Some("video/iso.segment"));
    assert!(r.body.is_empty());
    // The files of the second disk are found too.
    let m = f.app.get(&signed("/c/t/master.m3u8"));
    assert_eq!((m.status, m.body.as_slice()), (200, &b"#EXTM3U\n"[..]));
    assert_eq!(m.header("content-type"), Some("application/vnd.apple.mpegurl"));
    let i = f.app.get(&signed("/c/t/720p/init.mp4"));
    assert_eq!((i.status, i.header("content-type")), (200, Some("video/mp4")));
    assert_eq!(f.app.get(&signed("/c/t/720p/missing.m4s")).status, 404);
    assert_eq!(f.app.get("/favicon.ico").status, 404);
    // Per-disk byte counters: HEAD sent no body bytes from disk 0, a GET does.
    assert_eq!(f.app.metric("nearcast_disk_sent_bytes_total{disk=\"0\"}"), 0.0);
    assert_eq!(f.app.get(&p).body, f.seg);
    assert_eq!(
        f.app
            .metric_at_least("nearcast_disk_sent_bytes_total{disk=\"0\"}", 100_000.0),
        100_000.0
    );
    assert!(
        f.app
            .metric_at_least("nearcast_disk_sent_bytes_total{disk=\"1\"}", 1008.0)
            >= 1008.0
    );
}

#[test]
fn conditionals() {
    let f = fixture("cond");
    let p = signed("/c/t/720p/seg-1.m4s");
    let first = f.app.get(&p);
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let req = |h: &str| {
        f.app.request(&format!(
            "GET {p} HTTP/1.1\r\nHost: t\r\n{h}\r\nConnection: close\r\n\r\n"
        ))
    };

    let r = req(&format!("If-None-Match: {etag}"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(req("If-None-Match: \"other\"").status, 200);
    assert_eq!(req(&format!("If-Modified-Since: {lm}")).status, 304);
    assert_eq!(req("If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT").status, 200);
    // If-Range with the current ETag honours the range; a stale one sends all.
    let r = req(&format!("Range: bytes=0-9\r\nIf-Range: {etag}"));
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = req("Range: bytes=0-9\r\nIf-Range: \"stale\"");
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    let r = req(&format!("Range: bytes=0-9\r\nIf-Range: {lm}"));
    assert_eq!(r.status, 206);
}

#[test]
fn keep_alive_and_pipelining() {
    let f = fixture("pipeline");
    let seg = signed("/c/t/720p/seg-1.m4s");
    let m3u8 = signed("/c/t/master.m3u8");
    let mut s = f.app.connect();
    // Three requests in one write, then one more after the answers.
    let batch = format!(
        "GET {seg} HTTP/1.1\r\nHost: t\r\n\r\nHEAD {m3u8} HTTP/1.1\r\nHost: t\r\n\r\nGET {m3u8} HTTP/1.1\r\nHost: t\r\nRange: bytes=1-3\r\n\r\n"
    );
    s.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let a = read_response(&mut r, false).unwrap();
    assert_eq!((a.status, a.body == f.seg), (200, true));
    let b = read_response(&mut r, true).unwrap();
    assert_eq!((b.status, b.header("content-length")), (200, Some("8")));
    let c = read_response(&mut r, false).unwrap();
    assert_eq!((c.status, c.body.as_slice()), (206, &b"EXT"[..]));
    // A request split across writes on the same kept-alive connection.
    s.write_all(format!("GET {m3u8} HTTP/1.1\r\nHo").as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    s.write_all(b"st: t\r\nConnection: close\r\n\r\n").unwrap();
    let d = read_response(&mut r, false).unwrap();
    assert_eq!((d.status, d.header("connection")), (200, Some("close")));
    assert!(read_response(&mut r, false).is_none(), "closed after Connection: close");
    // HTTP/1.0 closes by default.
    let e = f.app.request(&format!("GET {m3u8} HTTP/1.0\r\n\r\n"));
    assert_eq!((e.status, e.header("connection")), (200, Some("close")));
}

#[test]
fn metrics_and_health() {
    let f = fixture("metrics");
    f.app.get(&signed("/c/t/master.m3u8"));
    f.app.get("/c/t/master.m3u8"); // no token: 403
    let m = f.app.metrics();
    assert!(m.contains("# TYPE nearcast_requests_total counter"));
    assert!(f.app.metric_at_least("nearcast_requests_total{code=\"200\"}", 1.0) >= 1.0);
    assert!(f.app.metric_at_least("nearcast_requests_total{code=\"403\"}", 1.0) >= 1.0);
    assert!(f.app.metric_at_least("nearcast_request_duration_seconds_count", 2.0) >= 2.0);
    assert!(f.app.metric_at_least("nearcast_sent_bytes_total", 1.0) > 0.0);
    let mut s = std::net::TcpStream::connect(f.app.admin).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
}

#[test]
fn bytes_served_per_title_for_the_agent() {
    let f = fixture("titles");
    let seg = signed("/c/t/720p/seg-1.m4s");
    assert_eq!(f.app.get(&seg).body.len(), 100_000);
    f.app
        .request(&format!("HEAD {seg} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    let r = f.app.request(&format!(
        "GET {seg} HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.body.len(), 10);
    assert_eq!(f.app.get(&signed("/c/t/master.m3u8")).body.len(), 8);
    assert_eq!(f.app.get(&signed("/c/nothing/x.m4s")).status, 404);
    // Workers merge their tallies every tick: wait for the totals.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let body = loop {
        let mut s = std::net::TcpStream::connect(f.app.admin).unwrap();
        s.write_all(b"GET /titles HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let r = read_response(&mut BufReader::new(s), false).unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = String::from_utf8(r.body).unwrap();
        if body.contains("100018") || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(body, "{\"t\":100018}\n");
    // The typed status the agent reads says the same, and names the disks.
    let status: nearcast_common::appliance::ApplianceStatus =
        serde_json::from_str(&f.app.admin_call("GET", "/status").text()).unwrap();
    assert!(status.serving);
    assert_eq!(status.titles.get("t"), Some(&100_018));
    assert_eq!(status.disks.len(), 2);
    assert!(status.disks.iter().all(|d| !d.failed && d.read_errors == 0));
}

#[test]
fn a_failed_disk_answers_404_at_once_and_the_others_serve_on() {
    let f = fixture("faildisk");
    let on_disk1 = signed("/c/t/720p/seg-1.m4s");
    let on_disk2 = signed("/c/t/720p/init.mp4");
    assert_eq!(f.app.get(&on_disk1).status, 200);
    assert_eq!(f.app.admin_call("GET", "/disks/0/fail").status, 405);
    assert_eq!(f.app.admin_call("POST", "/disks/9/fail").status, 404);
    assert_eq!(f.app.admin_call("POST", "/disks/0/explode").status, 404);
    assert_eq!(f.app.admin_call("POST", "/disks/0/fail").status, 200);
    let t0 = std::time::Instant::now();
    assert_eq!(f.app.get(&on_disk1).status, 404, "cached before, out now");
    assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(f.app.get(&on_disk2).status, 200);
    assert_eq!(f.app.metric("nearcast_disk_failed{disk=\"0\"}"), 1.0);
    assert_eq!(f.app.admin_call("POST", "/disks/0/restore").status, 200);
    let back = f.app.get(&on_disk1);
    assert_eq!((back.status, back.body.len()), (200, f.seg.len()));
    assert_eq!(f.app.metric("nearcast_disk_failed{disk=\"0\"}"), 0.0);
}
