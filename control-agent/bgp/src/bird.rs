//! BIRD 2 as the ISP's router, for the tests and the benchmark: a `bird`
//! process on loopback with its own config, control socket and a free
//! port, announcing static prefixes to one neighbor (the box, connecting
//! from `BOX_ADDRESS`). Needs Debian's `bird2`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The router's AS and the box's.
pub const ROUTER_AS: u32 = 64500;
pub const BOX_AS: u32 = 64501;
/// The box's source address (BIRD's neighbor statement names it).
pub const BOX_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

pub struct Bird {
    pub dir: PathBuf,
    pub port: u16,
    /// TCP MD5 key the router requires, if any.
    password: Option<String>,
    child: Option<Child>,
}

impl Bird {
    /// Starts BIRD announcing `v4` and `v6` prefixes.
    pub fn start(name: &str, v4: &[String], v6: &[String]) -> std::io::Result<Bird> {
        Bird::start_with(name, v4, v6, None)
    }

    /// Starts BIRD requiring TCP MD5 with `password` when given.
    pub fn start_with(name: &str, v4: &[String], v6: &[String], password: Option<&str>) -> std::io::Result<Bird> {
        let dir = std::env::temp_dir().join(format!("nearcast-bird-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut b = Bird {
            dir,
            port,
            password: password.map(str::to_string),
            child: None,
        };
        b.write_config(v4, v6)?;
        b.run()?;
        Ok(b)
    }

    /// Where the box connects.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    fn write_config(&self, v4: &[String], v6: &[String]) -> std::io::Result<()> {
        let routes = |ps: &[String]| {
            ps.iter()
                .map(|p| format!("  route {p} blackhole;\n"))
                .collect::<String>()
        };
        let password = self
            .password
            .as_ref()
            .map(|p| format!("  password \"{p}\";\n"))
            .unwrap_or_default();
        let conf = format!(
            "router id 192.0.2.254;\n\
             protocol device {{}}\n\
             protocol static s4 {{\n  ipv4;\n{}}}\n\
             protocol static s6 {{\n  ipv6;\n{}}}\n\
             protocol bgp appliance {{\n  local 127.0.0.1 port {} as {ROUTER_AS};\n  neighbor {BOX_ADDRESS} as {BOX_AS};\n\
               passive on;\n  multihop;\n  hold time 9;\n{}\
               ipv4 {{ import none; export all; next hop self; }};\n\
               ipv6 {{ import none; export all; next hop address 2001:db8::1; }};\n}}\n",
            routes(v4),
            routes(v6),
            self.port,
            password
        );
        std::fs::write(self.dir.join("bird.conf"), conf)
    }

    fn run(&mut self) -> std::io::Result<()> {
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
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Announces exactly `v4` and `v6` from now on (`birdc configure`:
    /// BIRD sends the withdrawals and announcements that differ).
    pub fn announce(&self, v4: &[String], v6: &[String]) -> std::io::Result<()> {
        self.write_config(v4, v6)?;
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .arg("configure")
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Reconfigured") {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("birdc configure: {text}")))
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.run()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
