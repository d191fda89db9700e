//! The servers under test, each a process (or tree) of its own so its CPU
//! time and memory can be read from /proc: our appliance (this binary run
//! as `serve-appliance`), nginx with `proxy_cache` + `proxy_cache_lock`
//! (the arguments in the key) and Varnish 7 (request coalescing and
//! streaming are its defaults), all in front of the same counting proxy.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Nginx,
    Varnish,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "nearcast appliance",
            Kind::Nginx => "nginx proxy_cache_lock",
            Kind::Varnish => "Varnish 7",
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub fn start(kind: Kind, dir: &Path, upstream: SocketAddr, key: (&str, &str)) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = match kind {
            Kind::Ours => ours(dir, addr, upstream, key),
            Kind::Nginx => nginx(dir, addr, upstream),
            Kind::Varnish => varnish(dir, addr, upstream),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "{} did not start on {addr}", kind.name());
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { addr, child }
    }

    /// CPU seconds and peak resident bytes of the server's process tree.
    pub fn usage(&self) -> (f64, u64) {
        let pids = tree(self.child.id());
        let cpu = pids.iter().map(|p| cpu_secs(*p)).sum();
        let rss = pids.iter().map(|p| peak_rss(*p)).sum();
        (cpu, rss)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in tree(self.child.id()).into_iter().rev() {
            // SAFETY: kill(2) on our own child and its descendants.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

fn ours(dir: &Path, addr: SocketAddr, upstream: SocketAddr, (id, hex): (&str, &str)) -> Child {
    let disk = dir.join("disk0");
    std::fs::create_dir_all(&disk).unwrap();
    let admin = free_port();
    let config = format!(
        "listen = \"{addr}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nthreads = 2\nmax_connections = 60000\ndisks = [{disk:?}]\n\
         [[auth.keys]]\nid = \"{id}\"\nsecret_hex = \"{hex}\"\n[live]\ncache_mib = 256\n[live.upstreams]\norigins = [\"{upstream}\"]\n"
    );
    let path = dir.join("appliance.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .arg("serve-appliance")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn nginx(dir: &Path, addr: SocketAddr, upstream: SocketAddr) -> Child {
    let d = dir.display();
    let config = format!(
        "worker_processes 2;\nworker_rlimit_nofile 65536;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 30000; }}\n\
         http {{\n  access_log off;\n  proxy_temp_path {d}/tmp;\n\
           proxy_cache_path {d}/cache levels=1:2 keys_zone=live:64m max_size=1g inactive=60s use_temp_path=off;\n\
           upstream origin {{ server {upstream}; keepalive 64; }}\n\
           server {{\n    listen {addr} reuseport backlog=65535;\n    location /l/ {{\n\
               proxy_pass http://origin;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_cache live;\n      proxy_cache_key $uri$is_args$args;\n      proxy_cache_lock on;\n\
               proxy_cache_lock_timeout 10s;\n      proxy_cache_lock_age 10s;\n      proxy_cache_valid 404 1s;\n\
               proxy_read_timeout 15s;\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    Command::new("nginx")
        .args(["-e", "stderr", "-g", "daemon off;", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .spawn()
        .expect("nginx (Debian's nginx package)")
}

fn varnish(dir: &Path, addr: SocketAddr, upstream: SocketAddr) -> Child {
    let vcl = format!(
        "vcl 4.1;\nbackend origin {{ .host = \"{}\"; .port = \"{}\"; .first_byte_timeout = 15s; .between_bytes_timeout = 10s; }}\n\
         sub vcl_backend_response {{ if (beresp.status == 404) {{ set beresp.ttl = 0.25s; }} }}\n",
        upstream.ip(),
        upstream.port()
    );
    let path = dir.join("live.vcl");
    std::fs::write(&path, vcl).unwrap();
    Command::new("varnishd")
        .args(["-F", "-j", "none", "-a", &addr.to_string(), "-s", "malloc,256m"])
        .args([
            "-p",
            "thread_pools=2",
            "-p",
            "thread_pool_max=6000",
            "-p",
            "thread_pool_min=200",
        ])
        .arg("-n")
        .arg(dir.join("varnish"))
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("varnishd (Debian's varnish package)")
}

/// `pid` and its descendants, parents first.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if stat_field(child, 1) == Some(u64::from(parent)) && !all.contains(&child) {
                all.push(child);
            }
        }
        i += 1;
    }
    all
}

/// Field `i` (0-based, after the command name) of /proc/{pid}/stat.
fn stat_field(pid: u32, i: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(i)?.parse().ok()
}

fn cpu_secs(pid: u32) -> f64 {
    let ticks = stat_field(pid, 11).unwrap_or(0) + stat_field(pid, 12).unwrap_or(0);
    ticks as f64 / 100.0
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
