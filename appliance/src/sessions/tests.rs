use super::*;
use crate::http::request::{parse_request, Parsed};

fn request(raw: &[u8]) -> Request<'_> {
    match parse_request(raw, 8192) {
        Ok(Parsed::Complete(r, _)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_the_query_form_and_the_headers() {
    let mut buf = [0u8; MAX_LEN];
    let q = request(b"GET /c/t/v/1.m4s?token=x&CMCD=br%3D3200%2Cbl%3D21300%2Cot%3Dv%2Csid%3D%226e2f%22%2Cbs HTTP/1.1\r\nHost: b\r\n\r\n");
    let c = read(&q, &mut buf).unwrap();
    assert_eq!(
        (c.session, c.bitrate_kbps, c.buffer_ms, c.starved),
        (Some("6e2f"), Some(3200), Some(21300), true)
    );

    let mut buf = [0u8; MAX_LEN];
    let h = request(b"GET /c/t/v/1.m4s HTTP/1.1\r\nHost: b\r\nCMCD-Object: br=800,ot=a\r\nCMCD-Request: bl=900,mtp=5000\r\nCMCD-Session: sid=\"s1\",cid=\"t\"\r\n\r\n");
    let c = read(&h, &mut buf).unwrap();
    assert_eq!(
        (c.session, c.content, c.bitrate_kbps, c.measured_kbps),
        (Some("s1"), Some("t"), Some(800), Some(5000))
    );
}

#[test]
fn malformed_or_anonymous_reports_are_none() {
    let cases: [&[u8]; 4] = [
        // No session id.
        b"GET /c/t/f?CMCD=br%3D1 HTTP/1.1\r\nHost: b\r\n\r\n",
        // A bad pair in one header spoils the whole report.
        b"GET /c/t/f HTTP/1.1\r\nHost: b\r\nCMCD-Session: sid=\"s\"\r\nCMCD-Object: br=fast\r\n\r\n",
        // A session id with a space.
        b"GET /c/t/f?CMCD=sid%3D%22a%20b%22 HTTP/1.1\r\nHost: b\r\n\r\n",
        // Not UTF-8.
        b"GET /c/t/f HTTP/1.1\r\nHost: b\r\nCMCD-Session: sid=\"\xff\"\r\n\r\n",
    ];
    for raw in cases {
        let mut buf = [0u8; MAX_LEN];
        assert!(
            read(&request(raw), &mut buf).is_none(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    // A 10 KB header: too long for the reader.
    let mut raw = b"GET /c/t/f HTTP/1.1\r\nHost: b\r\nCMCD-Session: sid=\"s\",x=".to_vec();
    raw.extend(std::iter::repeat_n(b'1', 10_000));
    raw.extend_from_slice(b"\r\n\r\n");
    let mut buf = [0u8; MAX_LEN];
    let r = match parse_request(&raw, 16_384) {
        Ok(Parsed::Complete(r, _)) => r,
        other => panic!("{other:?}"),
    };
    assert!(read(&r, &mut buf).is_none());
}

fn cmcd(text: &str) -> Cmcd<'_> {
    Cmcd::parse(text).unwrap()
}

#[test]
fn tallies_sessions_and_sums_them_in_the_book() {
    let t0 = Instant::now();
    let mut w = Sessions::default();
    assert_eq!(
        w.observe(&cmcd("sid=\"a\",ot=m,su"), "movie", t0).map(|s| s.media),
        Some(false)
    );
    w.observe(
        &cmcd("sid=\"a\",ot=v,br=800,su,bl=0"),
        "movie",
        t0 + Duration::from_millis(100),
    );
    let seen = w.observe(
        &cmcd("sid=\"a\",ot=v,br=3200,bl=4000,bs,mtp=9000"),
        "movie",
        t0 + Duration::from_millis(700),
    );
    assert_eq!(
        seen,
        Some(Seen {
            media: true,
            starved: true,
            bitrate_kbps: Some(3200)
        })
    );
    w.observe(&cmcd("sid=\"b\",ot=a,br=128"), "show", t0);
    let mut book = Book::default();
    let now = t0 + Duration::from_secs(1);
    for (sid, t) in w.drain() {
        book.add(&sid, t, now);
    }
    assert!(w.is_empty());
    // A second tick from another worker adds to the same session.
    w.observe(&cmcd("sid=\"a\",ot=v,br=3200,bl=8000"), "movie", now);
    for (sid, t) in w.drain() {
        book.add(&sid, t, now + Duration::from_secs(1));
    }
    let report = book.report(now + Duration::from_secs(1));
    assert_eq!(report.len(), 2);
    let a = &report[0];
    assert_eq!(a.sid, "a", "the most recently active first");
    assert_eq!(a.title.as_deref(), Some("movie"));
    assert_eq!(
        (a.media_requests, a.starved, a.bitrate_kbps, a.buffer_ms),
        (3, 1, 3200, Some(8000))
    );
    assert_eq!(
        (a.bitrate_sum_kbps, a.bitrate_samples, a.measured_kbps),
        (7200, 3, Some(9000))
    );
    assert_eq!(
        a.startup_ms,
        Some(700),
        "from the first request to the first one without su"
    );
    assert_eq!(book.active(now + Duration::from_secs(1), Duration::from_secs(5)), 2);
    // Idle sessions are forgotten.
    assert!(book.report(now + IDLE + Duration::from_secs(2)).is_empty());
}

#[test]
fn the_newest_report_wins_whichever_worker_ticks_last() {
    let t0 = Instant::now();
    let (mut a, mut b) = (Sessions::default(), Sessions::default());
    a.observe(&cmcd("sid=\"s\",ot=v,br=800,bl=100,cid=\"c\""), "t", t0);
    b.observe(
        &cmcd("sid=\"s\",ot=v,br=3200,bl=900"),
        "t",
        t0 + Duration::from_millis(50),
    );
    let mut book = Book::default();
    let now = t0 + Duration::from_millis(200);
    // The worker with the newer report ticks first.
    for (sid, t) in b.drain().chain(a.drain()) {
        book.add(&sid, t, now);
    }
    let s = &book.report(now)[0];
    assert_eq!((s.bitrate_kbps, s.buffer_ms, s.media_requests), (3200, Some(900), 2));
    assert_eq!(
        s.content_id.as_deref(),
        Some("c"),
        "the older report fills what the newer lacks"
    );
}

#[test]
fn tables_are_bounded() {
    let t0 = Instant::now();
    let mut w = Sessions::default();
    let sids: Vec<String> = (0..WORKER_MAX + 10)
        .map(|i| format!("sid=\"s{i}\",ot=v,br=1"))
        .collect();
    let counted = sids.iter().filter(|s| w.observe(&cmcd(s), "t", t0).is_some()).count();
    assert_eq!(counted, WORKER_MAX);
    let mut book = Book::default();
    for round in 0..(BOOK_MAX / WORKER_MAX + 2) {
        let mut w = Sessions::default();
        for i in 0..WORKER_MAX {
            let text = format!("sid=\"r{round}-{i}\",ot=v");
            w.observe(&cmcd(&text), "t", t0);
        }
        for (sid, t) in w.drain() {
            book.add(&sid, t, t0);
        }
    }
    assert_eq!(book.report(t0).len(), BOOK_MAX);
    // Once the old ones are idle, new sessions take their place.
    let later = t0 + IDLE + Duration::from_secs(1);
    book.add("new", Tally::new("t", later), later);
    assert_eq!(book.report(later).len(), 1);
}
