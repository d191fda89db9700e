//! The box's agent talks to a fill server that listens on IPv6 loopback
//! (`http://[::1]:port`): it registers, heartbeats and fills through it.
//! The request's `Host` header must keep the address's brackets.

use std::time::Duration;

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::AgentProcess;
use nearcast_testkit::TempDir;

#[test]
fn an_agent_registers_heartbeats_and_fills_through_an_ipv6_fill_server() {
    let root = TempDir::new("e2e-ipv6");
    let mut stack = Stack::start_with(&root, Ports::EPHEMERAL, 30, |c| {
        c.listen = "[::1]:0".parse().unwrap();
    })
    .unwrap();
    assert!(stack.fill_url.starts_with("http://[::1]:"), "{}", stack.fill_url);
    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box(|_| {}).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(s["titles"].as_array().map(Vec::len), Some(1), "filled: {s}");
    let me = stack.appliance("box-1").unwrap();
    assert!(me["last_heartbeat"].as_u64().is_some_and(|t| t > 0), "{me}");
    drop(agent);
    stack.boxes[0].stop_appliance();
}
