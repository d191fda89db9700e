//! The speaker against a real router: BIRD 2 on loopback (a non-standard
//! port) announcing IPv4 and IPv6 prefixes. The session comes up, learns
//! exactly the announced set, follows a withdrawal and a re-announcement,
//! recovers after BIRD restarts, and closes with a NOTIFICATION when the
//! table outgrows max-prefix.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_bgp::{Neighbor, SessionState, Speaker};
use nearcast_common::IpPrefix;

struct Bird {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Bird {
    fn config(&self, v4: &[&str], v6: &[&str]) {
        let routes = |ps: &[&str]| {
            ps.iter()
                .map(|p| format!("  route {p} blackhole;\n"))
                .collect::<String>()
        };
        let conf = format!(
            "router id 192.0.2.254;\n\
             protocol device {{}}\n\
             protocol static s4 {{\n  ipv4;\n{}}}\n\
             protocol static s6 {{\n  ipv6;\n{}}}\n\
             protocol bgp appliance {{\n  local 127.0.0.1 port {} as 64500;\n  neighbor 127.0.0.2 as 64501;\n  passive on;\n  multihop;\n  hold time 9;\n\
               ipv4 {{ import none; export all; next hop self; }};\n\
               ipv6 {{ import none; export all; next hop address 2001:db8::1; }};\n}}\n",
            routes(v4),
            routes(v6),
            self.port
        );
        std::fs::write(self.dir.join("bird.conf"), conf).unwrap();
    }

    fn start(&mut self) {
        let child = Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(self.dir.join("bird.conf"))
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .arg("-P")
            .arg(self.dir.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bird2 installed (scripts/test installs it)");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `birdc configure`: BIRD re-reads the config and sends the difference.
    fn reconfigure(&self) {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .arg("configure")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("Reconfigured"), "{out:?}");
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bird(name: &str, port: u16, v4: &[&str], v6: &[&str]) -> Bird {
    let dir = std::env::temp_dir().join(format!("nearcast-bird-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut b = Bird { dir, port, child: None };
    b.config(v4, v6);
    b.start();
    b
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn speaker(port: u16, max_prefixes: usize) -> Arc<Speaker> {
    Speaker::new(Neighbor {
        address: ([127, 0, 0, 1], port).into(),
        local_address: Some([127, 0, 0, 2].into()),
        local_as: 64501,
        peer_as: 64500,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 9,
        max_prefixes,
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

const V4: [&str; 2] = ["198.51.100.0/24", "203.0.113.0/25"];
const V6: [&str; 1] = ["2001:db8:100::/48"];

#[test]
fn learns_follows_and_recovers() {
    let port = free_port();
    let mut b = bird("session", port, &V4, &V6);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = speaker(port, 1000);
    rt.spawn(s.clone().run());
    let all = || vec!["198.51.100.0/24", "203.0.113.0/25", "2001:db8:100::/48"];
    wait("session up, table learned", Duration::from_secs(20), || {
        s.state() == SessionState::Established && prefixes(&s) == all()
    });
    let r4 = s.rib().get(&"198.51.100.0/24".parse().unwrap()).cloned().unwrap();
    assert_eq!(r4.as_path, [64500]);
    assert_eq!(r4.next_hop, Some("127.0.0.1".parse().unwrap()));
    let r6 = s.rib().get(&"2001:db8:100::/48".parse().unwrap()).cloned().unwrap();
    assert_eq!(r6.next_hop, Some("2001:db8::1".parse().unwrap()));

    // Withdrawn, then announced again.
    b.config(&V4[..1], &V6);
    b.reconfigure();
    wait("withdrawal", Duration::from_secs(10), || {
        prefixes(&s) == ["198.51.100.0/24", "2001:db8:100::/48"]
    });
    b.config(&V4, &V6);
    b.reconfigure();
    wait("re-announcement", Duration::from_secs(10), || prefixes(&s) == all());

    // BIRD restarts: the session drops (and its routes with it), then
    // comes back by itself.
    b.stop();
    wait("session down", Duration::from_secs(20), || {
        s.state() != SessionState::Established
    });
    assert!(prefixes(&s).is_empty(), "a dead session's routes are forgotten");
    b.start();
    wait("session back", Duration::from_secs(30), || {
        s.state() == SessionState::Established && prefixes(&s) == all()
    });
    assert!(s.sessions.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[test]
fn more_prefixes_than_allowed_closes_the_session() {
    let port = free_port();
    let _b = bird("maxpfx", port, &V4, &V6);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = speaker(port, 2);
    rt.spawn(s.clone().run());
    wait("max-prefix NOTIFICATION", Duration::from_secs(20), || {
        s.last_error().is_some_and(|e| e.contains("NOTIFICATION 6/1"))
    });
    assert!(s.rib().len() <= 2, "never more than the limit");
    assert!(s.last_error().unwrap().contains("more than 2 prefixes"));
}
