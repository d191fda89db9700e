//! Steering answers over a small fleet.

use super::*;
use nearcast_common::Keyring;

const NOW: u64 = 1_800_000_000;

fn view() -> View {
    let mut prefixes = PrefixTable::new();
    prefixes.insert("198.51.100.0/22".parse().unwrap(), "isp-a".to_string());
    prefixes.insert("2001:db8::/32".parse().unwrap(), "isp-a".to_string());
    prefixes.insert("203.0.113.0/24".parse().unwrap(), "isp-b".to_string());
    let b = |id: &str, isp: &str, load: f64, beat: u64, healthy: bool, titles: &[&str]| Appliance {
        id: id.into(),
        isp: isp.into(),
        site: format!("{isp}-site"),
        url: format!("http://{id}.example:8080"),
        capacity_bytes: 1 << 40,
        last_heartbeat: beat,
        load,
        healthy,
        titles: titles.iter().map(|t| nearcast_common::Name::new(*t).unwrap()).collect(),
        quality: Default::default(),
    };
    View::new(
        Arc::new(prefixes),
        vec![
            b("a1", "isp-a", 0.7, NOW - 5, true, &["movie", "show"]),
            b("a2", "isp-a", 0.2, NOW - 5, true, &["movie"]),
            b("a3", "isp-a", 0.1, NOW - 500, true, &["movie"]), // stale heartbeat
            b("a4", "isp-a", 0.0, NOW - 5, false, &["movie"]),  // failed
            b("b1", "isp-b", 0.1, NOW - 5, true, &["movie"]),
        ],
        "http://origin.example/".into(),
        30,
        4,
    )
}

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn p(s: &str) -> TitlePath {
    TitlePath::new(s).unwrap()
}

fn key() -> SigningKey {
    SigningKey::new("k1", &[9; 32]).unwrap()
}

/// `view.steer` for `client` asking for `title`'s `file`, now.
fn ask(view: &View, client: &str, title: &str, file: &str) -> Answer {
    view.steer(&key(), client.parse().unwrap(), &n(title), &p(file), NOW, 60)
}

#[test]
fn healthy_boxes_of_the_clients_isp_least_loaded_first_origin_last() {
    let a = ask(&view(), "198.51.101.7", "movie", "master.m3u8");
    assert_eq!(a.isp.as_deref(), Some("isp-a"));
    let hosts: Vec<&str> = a.urls.iter().map(|u| u.split("/c/").next().unwrap()).collect();
    assert_eq!(
        hosts,
        [
            "http://a2.example:8080",
            "http://a1.example:8080",
            "http://origin.example"
        ]
    );
    // The title filter applies; an unknown client gets the origin only.
    let s = ask(&view(), "2001:db8::5", "show", "master.m3u8");
    assert_eq!(s.urls.len(), 2);
    let none = ask(&view(), "192.0.2.1", "movie", "manifest.mpd");
    assert_eq!((none.isp, none.urls.len()), (None, 1));
}

#[test]
fn answers_name_at_most_max_appliances_then_the_origin() {
    let mut v = view();
    v.max_appliances = 1;
    let a = ask(&v, "198.51.101.7", "movie", "master.m3u8");
    let hosts: Vec<&str> = a.urls.iter().map(|u| u.split("/c/").next().unwrap()).collect();
    assert_eq!(hosts, ["http://a2.example:8080", "http://origin.example"]);
}

#[test]
fn a_silent_box_leaves_the_answers_after_the_timeout() {
    let v = view();
    let ip = "198.51.100.1".parse().unwrap();
    assert_eq!(v.candidates(ip, "movie", NOW, 4).1.len(), 2);
    let b = v.boxes[1].clone();
    let v = v.with_heartbeat(&b.id, NOW - 31, b.load, true).unwrap();
    let ids: Vec<&str> = v
        .candidates(ip, "movie", NOW, 4)
        .1
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(ids, ["a1"]);
}

#[test]
fn bgp_routes_steer_before_the_imported_prefixes() {
    let mut v = view();
    let mut bgp: PrefixTable<Arc<[String]>> = PrefixTable::new();
    // a1 hears 192.0.2.0/24 (in no imported prefix) and a more
    // specific part of isp-a's block.
    bgp.insert("192.0.2.0/24".parse().unwrap(), vec!["a1".to_string()].into());
    bgp.insert(
        "198.51.100.0/25".parse().unwrap(),
        vec!["a1".to_string(), "nobody".to_string()].into(),
    );
    v.bgp = Arc::new(bgp);
    let ids = |ip: &str, title: &str| -> Vec<String> {
        v.candidates(ip.parse().unwrap(), title, NOW, 4)
            .1
            .iter()
            .map(|b| b.id.clone())
            .collect()
    };
    assert_eq!(ids("192.0.2.9", "movie"), ["a1"], "BGP alone");
    assert_eq!(
        ids("198.51.100.9", "movie"),
        ["a1"],
        "the BGP box, not the ISP's least loaded"
    );
    assert_eq!(
        ids("198.51.100.200", "movie"),
        ["a2", "a1"],
        "outside the BGP prefix: the ISP's boxes"
    );
    assert!(ids("192.0.2.9", "nothing-here").is_empty(), "no box holds it: origin");
}

#[test]
fn a_heartbeat_reorders_and_can_take_a_box_out() {
    let ip = "198.51.100.1".parse().unwrap();
    let order = |v: &View| -> Vec<String> {
        v.candidates(ip, "movie", NOW, 4)
            .1
            .iter()
            .map(|b| b.id.clone())
            .collect()
    };
    let v = view();
    assert_eq!(order(&v), ["a2", "a1"]);
    let v = v.with_heartbeat("a1", NOW, 0.0, true).unwrap();
    assert_eq!(order(&v), ["a1", "a2"], "a1 is now the least loaded");
    let v = v.with_heartbeat("a1", NOW, 0.0, false).unwrap();
    assert_eq!(order(&v), ["a2"], "a1 reported a failure");
    assert!(v.with_heartbeat("nobody", NOW, 0.0, true).is_none());
}

#[test]
fn viewers_rebuffering_demote_a_box_and_failing_answers_drop_it() {
    use super::quality::Sample;
    let ip = "198.51.100.1".parse().unwrap();
    let order = |v: &View, now: u64| -> Vec<String> {
        v.candidates(ip, "movie", now, 4)
            .1
            .iter()
            .map(|b| b.id.clone())
            .collect()
    };
    let beat = |id: &str, at: u64, load: f64, sample: Sample| Beat {
        id: id.into(),
        at,
        load,
        healthy: true,
        sample,
    };
    let stalling = Sample {
        answers: 40,
        media: 40,
        stalled: 8,
        ..Sample::default()
    };
    let mut v = view();
    assert_eq!(order(&v, NOW), ["a2", "a1"]);
    // a2, the least loaded, has viewers that rebuffer: after two beats it
    // ranks after a1 though a1 is busier.
    for i in 0..2 {
        v = v
            .with_heartbeats(&[beat("a2", NOW + i, 0.2, stalling.clone())])
            .unwrap();
    }
    assert_eq!(order(&v, NOW + 2), ["a1", "a2"], "{:?}", v.get("a2").unwrap().quality);
    // A rebuild from the store keeps what the beats taught.
    let rebuilt = View::new(
        v.prefixes.clone(),
        v.boxes
            .iter()
            .map(|b| Appliance {
                quality: Default::default(),
                ..(**b).clone()
            })
            .collect(),
        v.origin_url.clone(),
        30,
        4,
    );
    assert_eq!(order(&rebuilt.keep_quality(&v), NOW + 2), ["a1", "a2"]);
    // a1 answers 404 to most of what it is asked: out at once, for a while.
    let failing = Sample {
        answers: 10,
        failed: 6,
        ..Sample::default()
    };
    v = v.with_heartbeats(&[beat("a1", NOW + 3, 0.7, failing)]).unwrap();
    assert_eq!(order(&v, NOW + 3), ["a2"]);
    let back = NOW + 3 + super::quality::FAIL_HOLD_SECS;
    v = v
        .with_heartbeats(&[
            beat("a1", back - 5, 0.7, Sample::default()),
            beat("a2", back - 5, 0.2, Sample::default()),
        ])
        .unwrap();
    assert_eq!(
        order(&v, back),
        ["a1", "a2"],
        "tried again after the hold; a2 still demoted"
    );
}

#[test]
fn urls_carry_tokens_the_appliance_accepts_for_that_client_only() {
    let ip: IpAddr = "198.51.101.7".parse().unwrap();
    let a = view().steer(&key(), ip, &n("movie"), &p("720p/seg-00001.m4s"), NOW, 60);
    assert_eq!(a.expires, NOW + 60);
    let ring = Keyring::new(vec![key()]);
    for url in &a.urls {
        let (path, token) = url
            .split_once("/c/")
            .map(|(_, rest)| rest.split_once("?token=").unwrap())
            .unwrap();
        let path = format!("/c/{path}");
        assert!(ring
            .verify(&path, token, "198.51.101.200".parse().unwrap(), NOW)
            .is_ok());
        assert!(
            ring.verify(&path, token, "198.51.102.1".parse().unwrap(), NOW).is_err(),
            "other /24"
        );
    }
}

/// A title few of the ISP's boxes hold is found from its holders, a
/// title most hold from the ISP's list by load: both least loaded first,
/// live boxes only, and a heartbeat reorders both.
#[test]
fn rare_and_common_titles_pick_the_same_way() {
    let mut prefixes = PrefixTable::new();
    prefixes.insert("198.51.100.0/22".parse().unwrap(), "isp-a".to_string());
    // 13 boxes: "rare" on 3 of them (under a quarter: looked up by its
    // holders), "common" on all (taken from the ISP's list).
    let boxes = (0..13)
        .map(|i| {
            let mut titles: BTreeSet<Name> = [n("common")].into();
            if i % 5 == 1 {
                titles.insert(n("rare")); // boxes 1, 6, 11
            }
            Appliance {
                id: format!("a{i:02}"),
                isp: "isp-a".into(),
                site: "s".into(),
                url: format!("http://a{i}.example"),
                capacity_bytes: 1 << 40,
                last_heartbeat: if i == 6 { NOW - 500 } else { NOW - 5 },
                load: f64::from(13 - i) / 20.0,
                healthy: true,
                titles,
                quality: Default::default(),
            }
        })
        .collect();
    let v = View::new(Arc::new(prefixes), boxes, "http://origin.example/".into(), 30, 4);
    let ip: IpAddr = "198.51.100.9".parse().unwrap();
    let ids = |v: &View, title: &str| -> Vec<String> {
        v.candidates(ip, title, NOW, 2).1.iter().map(|b| b.id.clone()).collect()
    };
    assert_eq!(ids(&v, "rare"), ["a11", "a01"], "a06 is stale");
    assert_eq!(ids(&v, "common"), ["a12", "a11"]);
    assert!(ids(&v, "nobody-has-it").is_empty());
    let v = v.with_heartbeat("a01", NOW, 0.0, true).unwrap();
    assert_eq!(ids(&v, "rare"), ["a01", "a11"]);
    assert_eq!(ids(&v, "common"), ["a01", "a12"]);
}
