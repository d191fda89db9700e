//! BGP on the box, end to end: the appliance's agent peers with BIRD (the
//! ISP's router), learns the prefixes it announces and reports them; the
//! fill server then steers a client in an announced prefix to that box —
//! an address no imported prefix covers — and stops once the router
//! withdraws the prefix.

use std::process::Command;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_bgp::bird::Bird;
use nearcast_e2e::{bgp_to, AgentProcess};
use nearcast_testkit::TempDir;

fn steer_for(stack: &Stack, client: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("X-Forwarded-For: {client}")])
        .arg(format!("{}/v1/steer?title={TITLE}", stack.fill_url))
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(answer["urls"].clone()).unwrap()
}

fn wait(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_in_prefixes_the_router_announces_are_steered_to_the_box() {
    let root = TempDir::new("e2e-bgp");
    let v4 = vec!["198.51.100.0/24".to_string(), "203.0.113.0/24".to_string()];
    let v6 = vec!["2001:db8:100::/48".to_string()];
    let bird = Bird::start("e2e", &v4, &v6).expect("bird2 installed (scripts/test installs it)");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box(|c| c.bgp = Some(bgp_to(&bird, 9))).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    agent.wait_for_run(Duration::from_secs(60));
    let box_url = format!("http://{}/", stack.boxes[0].http_addr);

    // The fill server learns the box's table.
    wait("routes reported", Duration::from_secs(20), || {
        let f: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/bgp", "").unwrap()).unwrap();
        f["appliances"][0]["session"] == "established" && f["appliances"][0]["prefixes"] == 3
    });
    let f: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/bgp", "").unwrap()).unwrap();
    assert_eq!(f["sites"][0]["consistent"], true, "{f}");
    // Clients the router routes to this box go to it; no imported prefix
    // covers them.
    for client in ["198.51.100.7", "203.0.113.200", "2001:db8:100::5"] {
        wait(client, Duration::from_secs(10), || {
            steer_for(&stack, client)[0].starts_with(&box_url)
        });
    }
    assert_eq!(steer_for(&stack, "192.0.2.1").len(), 1, "unannounced: origin only");
    // The heartbeat carries the session.
    wait("heartbeat bgp", Duration::from_secs(10), || {
        let all: serde_json::Value =
            serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
        all[0]["heartbeat"]["bgp"] == serde_json::json!({"session": "established", "prefixes": 3})
    });

    // The router withdraws a prefix: its clients go to the origin.
    bird.announce(&v4[1..], &v6).unwrap();
    wait("withdrawal reaches steering", Duration::from_secs(20), || {
        steer_for(&stack, "198.51.100.7").len() == 1
    });
    assert!(steer_for(&stack, "203.0.113.200")[0].starts_with(&box_url));
    drop(agent);
    stack.boxes[0].stop_appliance();
}
