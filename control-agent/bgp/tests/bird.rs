//! The speaker against a real router: BIRD 2 on loopback (a non-standard
//! port) announcing IPv4 and IPv6 prefixes. The session comes up, learns
//! exactly the announced set, follows a withdrawal and a re-announcement,
//! recovers after BIRD restarts, and closes with a NOTIFICATION when the
//! table outgrows max-prefix.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_bgp::bird::{Bird, BOX_ADDRESS, BOX_AS, ROUTER_AS};
use nearcast_bgp::{Neighbor, SessionState, Speaker};
use nearcast_common::IpPrefix;

fn speaker(bird: &Bird, max_prefixes: usize) -> Arc<Speaker> {
    speaker_with(bird, max_prefixes, None)
}

fn speaker_with(bird: &Bird, max_prefixes: usize, md5: Option<&str>) -> Arc<Speaker> {
    Speaker::new(Neighbor {
        address: bird.address(),
        local_address: Some(BOX_ADDRESS.into()),
        local_as: BOX_AS,
        peer_as: ROUTER_AS,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 9,
        max_prefixes,
        md5_password: md5.map(str::to_string),
    })
}

fn prefixes(s: &Speaker) -> Vec<String> {
    s.rib().prefixes().iter().map(IpPrefix::to_string).collect()
}

fn wait(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn learns_follows_and_recovers() {
    let (v4, v6) = (
        strings(&["198.51.100.0/24", "203.0.113.0/25"]),
        strings(&["2001:db8:100::/48"]),
    );
    let mut b = Bird::start("session", &v4, &v6).expect("bird2 installed (scripts/test installs it)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = speaker(&b, 1000);
    rt.spawn(s.clone().run());
    let all = || vec!["198.51.100.0/24", "203.0.113.0/25", "2001:db8:100::/48"];
    wait("session up, table learned", Duration::from_secs(20), || {
        s.state() == SessionState::Established && prefixes(&s) == all()
    });
    let r4 = s.rib().get(&"198.51.100.0/24".parse().unwrap()).cloned().unwrap();
    assert_eq!(r4.as_path, [ROUTER_AS]);
    assert_eq!(r4.next_hop, Some("127.0.0.1".parse().unwrap()));
    let r6 = s.rib().get(&"2001:db8:100::/48".parse().unwrap()).cloned().unwrap();
    assert_eq!(r6.next_hop, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(s.groups().iter().map(|(_, ps)| ps.len()).sum::<usize>(), 3);

    // Withdrawn, then announced again.
    b.announce(&v4[..1], &v6).unwrap();
    wait("withdrawal", Duration::from_secs(10), || {
        prefixes(&s) == ["198.51.100.0/24", "2001:db8:100::/48"]
    });
    b.announce(&v4, &v6).unwrap();
    wait("re-announcement", Duration::from_secs(10), || prefixes(&s) == all());

    // BIRD restarts: the session drops (and its routes with it), then
    // comes back by itself.
    b.stop();
    wait("session down", Duration::from_secs(20), || {
        s.state() != SessionState::Established
    });
    assert!(prefixes(&s).is_empty(), "a dead session's routes are forgotten");
    b.restart().unwrap();
    wait("session back", Duration::from_secs(30), || {
        s.state() == SessionState::Established && prefixes(&s) == all()
    });
    assert!(s.sessions.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[test]
fn more_prefixes_than_allowed_closes_the_session() {
    let v4 = strings(&["198.51.100.0/24", "203.0.113.0/25"]);
    let b = Bird::start("maxpfx", &v4, &strings(&["2001:db8:100::/48"])).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = speaker(&b, 2);
    rt.spawn(s.clone().run());
    wait("max-prefix NOTIFICATION", Duration::from_secs(20), || {
        s.last_error().is_some_and(|e| e.contains("NOTIFICATION 6/1"))
    });
    assert!(s.rib().len() <= 2, "never more than the limit");
    assert!(s.last_error().unwrap().contains("more than 2 prefixes"));
}

#[test]
fn a_router_that_requires_tcp_md5_gets_it() {
    let v4 = strings(&["198.51.100.0/24"]);
    let b = Bird::start_with("md5", &v4, &[], Some("s3cret-key")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let wrong = speaker_with(&b, 100, Some("not-the-key"));
    rt.spawn(wrong.clone().run());
    let right = speaker_with(&b, 100, Some("s3cret-key"));
    rt.spawn(right.clone().run());
    wait("signed session up", Duration::from_secs(20), || {
        right.state() == SessionState::Established && prefixes(&right) == ["198.51.100.0/24"]
    });
    // Segments signed with another key are dropped by the kernel: that
    // session never opens.
    std::thread::sleep(Duration::from_secs(2));
    assert_ne!(wrong.state(), SessionState::Established);
    assert_eq!(wrong.sessions.load(std::sync::atomic::Ordering::Relaxed), 0);
}
