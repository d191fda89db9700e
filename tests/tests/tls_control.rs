//! The box's agent talks to a fill server that speaks HTTPS, with the CA
//! pinned in its config: it registers, heartbeats and fills through it. An
//! agent pinned to another CA gets nowhere (the fill server never hears of
//! it), and plain HTTP to the HTTPS port gets no answer.

use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::AgentProcess;
use nearcast_testkit::{tls::make_cert, TempDir};

#[test]
fn an_agent_fills_through_an_https_fill_server_and_only_with_its_ca() {
    let root = TempDir::new("e2e-tls");
    let (ca, cert, key) = (root.join("ca.pem"), root.join("cert.pem"), root.join("key.pem"));
    make_cert(&ca, &cert, &key).unwrap();
    let other = root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    make_cert(&other.join("ca.pem"), &other.join("cert.pem"), &other.join("key.pem")).unwrap();
    let mut stack = Stack::start_with(&root, Ports::EPHEMERAL, 30, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .unwrap();
    assert!(stack.fill_url.starts_with("https://127.0.0.1:"), "{}", stack.fill_url);
    let addr = stack.fill_url.trim_start_matches("https://").parse().unwrap();
    let plain = nearcast_testkit::http::try_send(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        plain.map_or(true, |r| r.status != 200),
        "plain HTTP answered on the HTTPS port"
    );

    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box(|c| c.fill_server_ca = Some(ca.clone())).unwrap();
    stack
        .add_box(|c| c.fill_server_ca = Some(other.join("ca.pem")))
        .unwrap();
    let good = AgentProcess::start(&stack.boxes[0].agent_config);
    let wrong = AgentProcess::start(&stack.boxes[1].agent_config);
    let s = good.wait_for_run(Duration::from_secs(60));
    assert_eq!(s["titles"].as_array().map(Vec::len), Some(1), "filled: {s}");
    let me = stack.appliance("box-1").unwrap();
    assert!(me["last_heartbeat"].as_u64().is_some_and(|t| t > 0), "{me}");
    // The other agent has been retrying all along: never heard of.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let them = stack.appliance("box-2").unwrap();
        assert!(
            them["registration"].is_null() && them["last_heartbeat"].is_null(),
            "{them}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop((good, wrong));
    stack.boxes[0].stop_appliance();
    stack.boxes[1].stop_appliance();
}
