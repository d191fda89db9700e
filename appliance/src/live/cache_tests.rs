use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::path::ContentPath;

fn key(path: &str) -> LiveKey {
    LiveKey::new(&ContentPath::parse(path.as_bytes()).unwrap(), b"").unwrap()
}

fn fetch(c: &mut LiveCache, path: &str, now: Instant) -> Arc<Object> {
    try_fetch(c, path, now).unwrap_or_else(|| panic!("{path}: no fetch"))
}

fn try_fetch(c: &mut LiveCache, path: &str, now: Instant) -> Option<Arc<Object>> {
    match c.lookup(&key(path), now) {
        Lookup::Fetch(o) => Some(o),
        _ => None,
    }
}

/// Fills `obj` with `n` bytes and finishes it, fresh for `ttl`.
fn fill(c: &mut LiveCache, obj: &Object, n: usize, ttl: Duration, now: Instant) -> bool {
    if !c.charge(obj, n as u64) {
        obj.fail();
        c.failed(obj, now);
        return false;
    }
    obj.push(Bytes::from(vec![0u8; n]));
    obj.complete();
    c.finish(obj, ttl, Duration::from_secs(5), now);
    true
}

#[test]
fn concurrent_lookups_share_one_fetch() {
    let now = Instant::now();
    let mut c = LiveCache::new(1 << 20);
    let o = fetch(&mut c, "/l/e/v/1.m4s", now);
    for _ in 0..3 {
        match c.lookup(&key("/l/e/v/1.m4s"), now) {
            Lookup::Hit { obj, stale } => assert!(obj.id == o.id && !stale),
            _ => panic!("a second fetch"),
        }
    }
    assert!(fill(&mut c, &o, 1000, Duration::from_secs(60), now));
    assert!(matches!(c.lookup(&key("/l/e/v/1.m4s"), now), Lookup::Hit { .. }));
    // Expired: fetched again.
    let later = now + Duration::from_secs(61);
    assert!(matches!(c.lookup(&key("/l/e/v/1.m4s"), later), Lookup::Fetch(_)));
}

#[test]
fn never_grows_past_its_cap() {
    let now = Instant::now();
    let cap = 100_000;
    let mut c = LiveCache::new(cap);
    let mut x: u64 = 7;
    let mut full = 0;
    for i in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Objects of every size, many tiny (404s), some larger than the cap.
        let n = match x % 4 {
            0 => 0,
            1 => (x % 2_000) as usize,
            2 => (x % 40_000) as usize,
            _ => (x % 150_000) as usize,
        };
        let Some(o) = try_fetch(&mut c, &format!("/l/e/v/{i}.m4s"), now) else {
            // Full of objects in flight: refused, not grown.
            full += 1;
            assert!(c.bytes() <= cap);
            continue;
        };
        // Some stay in flight a while.
        if i % 7 == 0 {
            let _ = c.charge(&o, (n / 2) as u64);
        } else {
            fill(&mut c, &o, n, Duration::from_secs(60), now);
        }
        assert!(c.bytes() <= cap, "{} > {cap} after {i}", c.bytes());
    }
    assert!(c.entries() > 1);
    assert!(full > 0, "the mix should fill the cache with objects in flight");
}

#[test]
fn an_object_that_cannot_fit_fails_and_others_stay() {
    let now = Instant::now();
    let mut c = LiveCache::new(10_000);
    let small = fetch(&mut c, "/l/e/v/a.m4s", now);
    assert!(fill(&mut c, &small, 1_000, Duration::from_secs(60), now));
    let big = fetch(&mut c, "/l/e/v/b.m4s", now);
    assert!(!c.charge(&big, 20_000));
    // The filled one was evicted trying to make room; the cache is sane.
    assert!(c.bytes() <= 10_000);
    // Shrinking the cap evicts at once.
    let o = fetch(&mut c, "/l/e/v/c.m4s", now);
    assert!(fill(&mut c, &o, 5_000, Duration::from_secs(60), now));
    c.set_cap(1_000);
    assert!(c.bytes() <= 1_000, "{}", c.bytes());
}

#[test]
fn a_failed_refresh_answers_the_stale_playlist() {
    let now = Instant::now();
    let mut c = LiveCache::new(1 << 20);
    let first = fetch(&mut c, "/l/e/v/index.m3u8", now);
    assert!(fill(&mut c, &first, 300, Duration::from_millis(500), now));
    let later = now + Duration::from_secs(1);
    let refresh = fetch(&mut c, "/l/e/v/index.m3u8", later);
    assert_eq!(refresh.stale().map(|o| o.id), Some(first.id));
    refresh.fail();
    let old = c.failed(&refresh, later).expect("the stale copy");
    assert_eq!(old.id, first.id);
    match c.lookup(&key("/l/e/v/index.m3u8"), later) {
        Lookup::Hit { obj, stale } => assert!(obj.id == first.id && stale),
        _ => panic!("the stale copy should be answered for a moment"),
    }
    // Past its stale time it is gone: a fetch with no fallback.
    let much_later = now + Duration::from_secs(30);
    let o = fetch(&mut c, "/l/e/v/index.m3u8", much_later);
    assert!(o.stale().is_none());
    // A refresh that succeeds lets go of the copy it replaced: versions
    // of a playlist never chain.
    assert!(fill(&mut c, &o, 300, Duration::from_millis(500), much_later));
    let next = fetch(&mut c, "/l/e/v/index.m3u8", much_later + Duration::from_secs(1));
    assert_eq!(next.stale().map(|s| s.id), Some(o.id));
    assert!(fill(&mut c, &next, 300, Duration::from_millis(500), much_later));
    assert!(next.stale().is_none());
    // Media are never answered stale.
    let m = fetch(&mut c, "/l/e/v/1.m4s", now);
    assert!(fill(&mut c, &m, 10, Duration::from_millis(10), now));
    let m2 = fetch(&mut c, "/l/e/v/1.m4s", later);
    m2.fail();
    assert!(c.failed(&m2, later).is_none());
}
