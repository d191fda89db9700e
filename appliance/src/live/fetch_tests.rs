use std::time::{Duration, Instant};

use super::*;
use crate::live::key::LiveKey;
use crate::live::object::{Cursor, Next};
use crate::path::ContentPath;

struct Room(u64);

impl Sink for Room {
    fn charge(&mut self, n: u64) -> bool {
        if n > self.0 {
            return false;
        }
        self.0 -= n;
        true
    }
}

const LIMITS: Limits = Limits {
    connect: Duration::from_secs(1),
    first_byte: Duration::from_secs(2),
    blocking: Duration::from_secs(10),
    idle: Duration::from_secs(3),
    max_object: 1 << 20,
};

const TTLS: Ttls = Ttls {
    playlist: Duration::from_millis(500),
    blocking: Duration::from_secs(6),
    media: Duration::from_secs(5),
    negative: Duration::from_millis(250),
};

fn fetch(path: &str, query: &str, upstreams: usize) -> Fetch {
    let key = LiveKey::new(&ContentPath::parse(path.as_bytes()).unwrap(), query.as_bytes()).unwrap();
    let obj = Arc::new(Object::new(1, key, None));
    let ups = (0..upstreams)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)))
        .collect();
    Fetch::new(obj, ups, LIMITS, Instant::now())
}

fn body_of(f: &Fetch) -> Vec<u8> {
    let mut cur = Cursor::default();
    let mut out = Vec::new();
    while let Next::Data(d) = f.obj.next(&mut cur, 0) {
        out.extend_from_slice(&d);
    }
    out
}

#[test]
fn sends_the_key_with_the_boxs_token() {
    let mut f = fetch("/l/ev/v1/index.m3u8", "_HLS_msn=3&token=client", 1);
    let now = Instant::now();
    f.connected("BOXTOKEN", "box.example:8080", now);
    let req = String::from_utf8(f.unsent().to_vec()).unwrap();
    assert!(
        req.starts_with("GET /l/ev/v1/index.m3u8?_HLS_msn=3&token=BOXTOKEN HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(req.contains("\r\nHost: box.example:8080\r\n") && req.contains("\r\nVia: 1.1 nearcast\r\n"));
    f.sent(10, now);
    assert!(!f.unsent().is_empty());
    f.sent(req.len() - 10, now);
    assert!(f.unsent().is_empty());
    // A blocking reload may take the upstream's hold time.
    assert!(f.deadline() >= now + LIMITS.blocking);
}

#[test]
fn reads_a_chunked_answer_as_it_arrives() {
    let mut f = fetch("/l/ev/v1/3.0.m4s", "", 1);
    let now = Instant::now();
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let mut room = Room(1 << 20);
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nmoof\r\n4\r\nmdat\r\n0\r\n\r\n";
    for (i, b) in raw.iter().enumerate() {
        let done = f.on_data(&[*b], &mut room, now).unwrap();
        assert_eq!(done, i == raw.len() - 1);
    }
    assert_eq!(body_of(&f), b"moofmdat");
    assert!(f.obj.is_complete());
    assert_eq!(f.ttl(&TTLS), Duration::from_secs(60));
}

#[test]
fn server_errors_move_on_and_a_cut_body_fails() {
    let mut f = fetch("/l/ev/v1/3.m4s", "", 2);
    let now = Instant::now();
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let mut room = Room(1 << 20);
    let e = f
        .on_data(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", &mut room, now)
        .unwrap_err();
    assert_eq!(e, FetchError::Status(500));
    assert_eq!(f.failed(now), After::Retry);
    assert_eq!(f.target(), Some(SocketAddr::from(([127, 0, 0, 1], 7001))));
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    assert!(!f
        .on_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", &mut room, now)
        .unwrap());
    assert_eq!(f.on_eof(), Err(FetchError::Truncated));
    // Bound to this upstream now: the object fails, never completes.
    assert!(matches!(f.failed(now), After::GaveUp(_)));
    assert!(!f.obj.is_complete() && !f.obj.is_open());
}

#[test]
fn bounds_the_object() {
    let mut f = fetch("/l/ev/v1/3.m4s", "", 1);
    let now = Instant::now();
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let mut room = Room(1 << 30);
    let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 << 20);
    assert_eq!(
        f.on_data(big.as_bytes(), &mut room, now).unwrap_err(),
        FetchError::TooLarge
    );
    let mut f = fetch("/l/ev/v1/4.m4s", "", 1);
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let mut small = Room(3);
    let e = f
        .on_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345", &mut small, now)
        .unwrap_err();
    assert_eq!(e, FetchError::CacheFull);
    let mut f = fetch("/l/ev/v1/5.m4s", "", 1);
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let e = f
        .on_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            &mut room,
            now,
        )
        .unwrap_err();
    assert_eq!(e, FetchError::Response(ResponseError::BadChunk));
}

#[test]
fn a_404_is_kept_briefly() {
    let mut f = fetch("/l/ev/v1/99.m4s", "", 1);
    let now = Instant::now();
    f.connected("T", "h", now);
    f.sent(f.unsent().len(), now);
    let mut room = Room(1 << 20);
    assert!(f
        .on_data(
            b"HTTP/1.1 404 Not Found\r\nCache-Control: no-store\r\nContent-Length: 3\r\n\r\nno\n",
            &mut room,
            now
        )
        .unwrap());
    assert_eq!(f.ttl(&TTLS), TTLS.negative);
    // A blocking reload's answer lists its part for good; a plain
    // playlist lives at most a part.
    for (query, want) in [("_HLS_msn=3&_HLS_part=1", TTLS.blocking), ("", TTLS.playlist)] {
        let mut f = fetch("/l/ev/v1/index.m3u8", query, 1);
        f.connected("T", "h", now);
        f.sent(f.unsent().len(), now);
        assert!(f
            .on_data(
                b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: 2\r\n\r\n#E",
                &mut room,
                now
            )
            .unwrap());
        assert_eq!(f.ttl(&TTLS), want, "{query}");
    }
}
