//! A crawling disk slows its own fill and nothing else: the box's only
//! content disk is a FUSE filesystem whose every write and fsync takes
//! 1.5 s. While the fill crawls, the agent's heartbeats keep their
//! one-second beat, its BGP session with BIRD (hold time 3 s, so a
//! keepalive every second) never drops, and its admin listener answers at
//! once: the agent's disk work runs on the disk's own thread.

use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_bgp::bird::Bird;
use nearcast_e2e::{bgp_to, curl_get, metric, AgentProcess};
use nearcast_testkit::faultfs::{Fault, FaultFs};
use nearcast_testkit::TempDir;

#[test]
fn a_crawling_disk_delays_no_heartbeat_keepalive_or_admin_answer() {
    let root = TempDir::new("e2e-slowdisk");
    let bird = Bird::start("slowdisk", &["198.51.100.0/24".to_string()], &[]).expect("bird2 installed");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let fs = FaultFs::mount(&root.join("backing"), &root.join("box-1/slow")).expect("mount the FUSE test disk");
    fs.set_faults(vec![Fault::slow_writes("", Duration::from_millis(1500))]);
    stack
        .add_box(|c| {
            c.disks = vec![fs.path().to_path_buf()];
            c.concurrency = 4;
            c.bgp = Some(bgp_to(&bird, 3))
        })
        .unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let agent_metrics =
        || String::from_utf8_lossy(&curl_get(&format!("http://{}/metrics", agent.admin)).1).into_owned();
    let established = || metric(&agent_metrics(), "nearcast_agent_bgp_established") == Some(1.0);
    let t0 = Instant::now();
    while !established() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the BGP session never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let last_beat = || {
        stack
            .appliance("box-1")
            .ok()
            .and_then(|a| a["last_heartbeat"].as_u64())
            .unwrap_or(0)
    };
    // Watch 12 s of the crawling fill.
    let (mut beats, mut worst_admin, mut drops) = (Vec::new(), Duration::ZERO, 0);
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(12) {
        let t = Instant::now();
        let (code, _) = curl_get(&format!("http://{}/healthz", agent.admin));
        assert_eq!(code, 200);
        worst_admin = worst_admin.max(t.elapsed());
        if !established() {
            drops += 1;
        }
        let b = last_beat();
        if beats.last() != Some(&b) {
            beats.push(b);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let filling = String::from_utf8_lossy(&curl_get(&format!("http://{}/status", agent.admin)).1).into_owned();
    assert!(
        filling.contains("\"running\":true"),
        "the fill is still crawling: {filling}"
    );
    let gaps: Vec<u64> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(beats.len() >= 9, "heartbeats seen: {beats:?}");
    assert!(gaps.iter().all(|&g| g <= 2), "heartbeat gaps (s): {gaps:?}");
    assert_eq!(drops, 0, "the BGP session dropped");
    assert!(
        worst_admin < Duration::from_millis(500),
        "the admin listener took {worst_admin:?}"
    );
    drop(agent);
    stack.boxes[0].stop_appliance();
    drop(fs);
}
