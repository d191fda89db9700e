//! `bgp-learn V4 V6 DB`: starts BIRD announcing V4 IPv4 /24s and V6 IPv6
//! /48s (generated, distinct), peers with it as the box does, and prints
//! how long the table took to arrive and what it cost in memory; then
//! seeds the fill-server database DB with one appliance holding the title
//! `bench` and the learned table as its BGP routes, for the steering run.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use nearcast_bgp::bird::{Bird, BOX_ADDRESS, BOX_AS, ROUTER_AS};
use nearcast_bgp::{Neighbor, SessionState, Speaker};
use nearcast_common::control::{Health, Heartbeat, Inventory, Registration};
use nearcast_common::{unix_now, Name};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix(" kB")?.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n4: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let n6: u128 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let db = args.get(3).cloned().unwrap_or_else(|| "bgp-bench.db".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (bird, speaker) = learn(&rt, n4, n6);
    seed(&speaker, &db);
    drop(bird);
}

/// Starts BIRD with the generated table, peers with it and prints how long
/// the table took and what it cost; BIRD is returned to keep it running.
fn learn(rt: &tokio::runtime::Runtime, n4: u32, n6: u128) -> (Bird, std::sync::Arc<Speaker>) {
    // 1.0.0.0/24 upward, and 2a00:0:i::/48.
    let v4: Vec<String> = (0..n4)
        .map(|i| format!("{}/24", Ipv4Addr::from((1u32 << 24) + i * 256)))
        .collect();
    let v6: Vec<String> = (0..n6)
        .map(|i| format!("{}/48", Ipv6Addr::from((0x2a00u128 << 112) | (i << 80))))
        .collect();
    let t = Instant::now();
    let bird = Bird::start("bench", &v4, &v6).expect("bird2 installed");
    let before = rss_kib("VmRSS:");
    let speaker = Speaker::new(Neighbor {
        address: bird.address(),
        local_address: Some(BOX_ADDRESS.into()),
        local_as: BOX_AS,
        peer_as: ROUTER_AS,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        max_prefixes: 2_000_000,
        md5_password: None,
    });
    rt.spawn(speaker.clone().run());
    let want = v4.len() + v6.len();
    let mut established = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    while speaker.table_len() < want {
        if established.is_none() && speaker.state() == SessionState::Established {
            established = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "table incomplete: {}", speaker.table_len());
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    let est = established.unwrap_or(done);
    let after = rss_kib("VmRSS:");
    println!(
        "learned {want} prefixes ({} IPv4, {} IPv6) from BIRD",
        v4.len(),
        v6.len()
    );
    println!(
        "  BIRD start to session up: {:.1} s (BIRD loads its config, the speaker retries)",
        est.duration_since(t).as_secs_f64()
    );
    println!(
        "  session up to full table: {:.2} s",
        done.duration_since(est).as_secs_f64()
    );
    println!(
        "  speaker memory for the table: {:.0} MiB (RSS {:.0} → {:.0} MiB)",
        (after - before) as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    (bird, speaker)
}

/// The fill server's view of it: one box holding `bench`, with the table.
fn seed(speaker: &Speaker, db: &str) {
    let t = Instant::now();
    let mut routes = speaker.report();
    routes.session = "established".into();
    let store = nearcast_fill_server::store::open(db).expect("database");
    let now = unix_now();
    store.add_isp("isp-bgp", &[64999]).unwrap();
    store.add_site("site-bgp", "isp-bgp").unwrap();
    store.enroll("box-bgp", &"00".repeat(32)).unwrap();
    store
        .register(
            "box-bgp",
            &Registration {
                site: "site-bgp".into(),
                url: "http://10.99.0.1:8080".into(),
                capacity_bytes: 1 << 40,
                disks: Vec::new(),
            },
            now,
        )
        .unwrap();
    store
        .heartbeat("box-bgp", &Heartbeat::new(Health::Ok, 0.1, 1 << 39), now)
        .unwrap();
    store
        .set_inventory(
            "box-bgp",
            &Inventory {
                version: "1".into(),
                titles: vec![Name::new("bench").expect("a plain name")],
            },
        )
        .unwrap();
    store.set_routes("box-bgp", &routes, now).unwrap();
    println!(
        "  report as the agent sends it: {} groups; stored in {:.1} s",
        routes.groups.len(),
        t.elapsed().as_secs_f64()
    );
}
