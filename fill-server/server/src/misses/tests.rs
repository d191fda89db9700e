use std::sync::Arc;

use nearcast_common::PrefixTable;

use super::*;
use crate::steer::Appliance;

const NOW: u64 = 1_800_000_000;

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn view() -> View {
    let mut prefixes = PrefixTable::new();
    prefixes.insert("198.51.100.0/24".parse().unwrap(), "isp-a".to_string());
    prefixes.insert("203.0.113.0/24".parse().unwrap(), "isp-b".to_string());
    let b = |id: &str, healthy: bool, titles: &[&str]| Appliance {
        id: id.into(),
        isp: "isp-a".into(),
        site: "s".into(),
        url: format!("http://{id}.example"),
        capacity_bytes: 1 << 40,
        last_heartbeat: NOW - 1,
        load: 0.1,
        healthy,
        titles: titles.iter().map(|t| n(t)).collect(),
        quality: Default::default(),
    };
    let boxes = vec![b("a1", true, &["movie"]), b("a2", false, &["show"])];
    View::new(Arc::new(prefixes), boxes, "http://origin.example".into(), 30, 4)
}

#[test]
fn each_reason_for_the_origin() {
    let v = view();
    let why = |ip: &str, title: &str| reason(&v, ip.parse().unwrap(), title, NOW);
    assert_eq!(why("198.51.100.7", "movie"), None, "a box serves it");
    assert_eq!(why("192.0.2.1", "movie"), Some((Reason::NoPrefix, String::new())));
    assert_eq!(why("203.0.113.9", "movie"), Some((Reason::NoBox, "isp-b".into())));
    assert_eq!(why("198.51.100.7", "news"), Some((Reason::NotFilled, "isp-a".into())));
    assert_eq!(why("198.51.100.7", "show"), Some((Reason::BoxesDown, "isp-a".into())));
}

fn served(pairs: &[(&str, u64)]) -> BTreeMap<Name, u64> {
    pairs.iter().map(|(t, b)| (n(t), *b)).collect()
}

fn by(rows: &[EgressRow], reason: Reason, isp: &str) -> (u64, u64) {
    rows.iter()
        .filter(|r| r.reason == reason.name() && r.isp == isp)
        .fold((0, 0), |(s, b), r| (s + r.sessions, b + r.bytes))
}

#[test]
fn origin_bytes_are_shared_by_recent_misses() {
    let l = Ledger::default();
    // What the origin served before the first miss: nothing explains it.
    assert!(l
        .sample(served(&[("movie", 500)]), 5.0, 1)
        .iter()
        .all(|r| r.reason == "fallback"));
    for _ in 0..3 {
        l.miss(Reason::NotFilled, "isp-a", &n("movie"));
    }
    l.miss(Reason::NoPrefix, "", &n("movie"));
    let rows = l.sample(served(&[("movie", 500 + 4_000)]), 5.0, 1);
    assert_eq!(by(&rows, Reason::NotFilled, "isp-a"), (3, 3_000));
    assert_eq!(by(&rows, Reason::NoPrefix, ""), (1, 1_000));
    assert!(rows
        .iter()
        .all(|r| r.day == 1 && r.title == "movie" && r.source == Source::Origin));
    // The same viewers keep fetching: their bytes follow the same shares,
    // and the sessions are not counted again.
    let rows = l.sample(served(&[("movie", 500 + 8_000)]), 5.0, 1);
    assert_eq!(by(&rows, Reason::NotFilled, "isp-a"), (0, 3_000));
    assert_eq!(by(&rows, Reason::NoPrefix, ""), (0, 1_000));
    // A title no miss explains is fallback; every byte is attributed.
    let rows = l.sample(served(&[("movie", 8_500), ("show", 777)]), 5.0, 1);
    assert_eq!(by(&rows, Reason::Fallback, ""), (0, 777));
    // An hour later the old misses no longer draw the bytes.
    let rows = l.sample(served(&[("movie", 9_500), ("show", 777)]), 3_600.0, 2);
    assert_eq!(by(&rows, Reason::Fallback, ""), (0, 1_000));
    // The origin restarted and counts from zero.
    let rows = l.sample(served(&[("movie", 300)]), 5.0, 2);
    assert_eq!(by(&rows, Reason::Fallback, ""), (0, 300));
    let totals = l.totals.lock().unwrap();
    assert_eq!(totals[&Reason::NotFilled], (3, 6_000));
}
