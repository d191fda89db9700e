//! The fleet's world, written straight into the store (registering 10,000
//! boxes through the API would rebuild the view 10,000 times, which is not
//! what this measures): ISPs with a /16 of clients each, sites, boxes with
//! keys, a first heartbeat, inventories, yesterday's demand; titles in an
//! origin store; and the fill-server processes on it.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::{unix_now, Name};
use nearcast_fill_server::predict::DailyBytes;
use nearcast_fill_server::store::{Health, Heartbeat, Inventory, Registration, Store};

pub const ISPS: usize = 50;
pub const SITES_PER_ISP: usize = 10;
pub const TITLES: usize = 50;
pub const ADMIN: &str = "fleet-sim-admin-token-0123456789";

/// A simulated box.
pub struct SimBox {
    pub id: String,
    pub key: ApplianceKey,
}

pub fn title(i: usize) -> String {
    format!("title-{i:03}")
}

/// A client address in ISP `isp`'s /16.
pub fn client(isp: usize, n: usize) -> String {
    format!("{}.{}.{}.{}", 11 + isp / 200, isp % 200, (n / 250) % 250, 1 + n % 250)
}

/// Titles with index files (20 files each) in `origin`.
pub fn origin_store(origin: &Path) {
    for t in 0..TITLES {
        let dir = origin.join(title(t));
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<String> = (0..20)
            .map(|f| {
                format!(
                    r#"{{"path":"720p/seg-{f:05}.m4s","size":1000000,"sha256":"{}"}}"#,
                    nearcast_common::sha256_hex(format!("{t}/{f}").as_bytes())
                )
            })
            .collect();
        let index = format!(
            r#"{{"title":"{}","version":1,"duration_secs":80.0,"target_duration_secs":4.0,"renditions":[],"files":[{}]}}"#,
            title(t),
            files.join(",")
        );
        std::fs::write(dir.join("index.json"), index).unwrap();
    }
}

/// Writes the world into `store`; the boxes.
pub fn seed(store: &dyn Store, boxes: usize) -> Vec<SimBox> {
    let mut prefixes = String::new();
    for i in 0..ISPS {
        store.add_isp(&format!("isp-{i}"), &[64500 + i as u32]).unwrap();
        prefixes.push_str(&format!("{}.{}.0.0/16 {}\n", 11 + i / 200, i % 200, 64500 + i));
        for s in 0..SITES_PER_ISP {
            store.add_site(&format!("site-{i}-{s}"), &format!("isp-{i}")).unwrap();
        }
    }
    store.import_prefixes(&prefixes).unwrap();
    let yesterday = (unix_now() / 86_400) as i64 - 1;
    let demand: Vec<DailyBytes> = (0..ISPS)
        .flat_map(|i| {
            (0..TITLES).map(move |t| DailyBytes {
                day: yesterday,
                isp: format!("isp-{i}"),
                title: Name::new(title(t)).unwrap(),
                bytes: 1_000_000_000 / (t as u64 + 1),
            })
        })
        .collect();
    store.add_daily_bytes(&demand).unwrap();
    let now = unix_now();
    (0..boxes)
        .map(|b| {
            let id = format!("box-{b}");
            let key = ApplianceKey::from_pkcs8(&ApplianceKey::generate_pkcs8().unwrap()).unwrap();
            store.enroll(&id, &key.public_hex()).unwrap();
            let isp = b % ISPS;
            let reg = Registration {
                site: format!("site-{isp}-{}", (b / ISPS) % SITES_PER_ISP),
                url: format!("http://10.{}.{}.1:8080", b / 256, b % 256),
                capacity_bytes: 40_000_000 * (1 + b as u64 % 20),
                disks: Vec::new(),
            };
            store.register(&id, &reg, now).unwrap();
            store.heartbeat(&id, &Heartbeat::new(Health::Ok, 0.2, 1 << 39), now).unwrap();
            let titles = (0..1 + b % 10).map(|t| Name::new(title(t)).unwrap()).collect();
            let inv = Inventory {
                version: "1".into(),
                titles,
            };
            store.set_inventory(&id, &inv).unwrap();
            SimBox { id, key }
        })
        .collect()
}

/// One fill-server process.
pub struct Replica {
    pub child: Child,
    pub http: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_replica(bin: &Path, dir: &Path, database: &str, n: usize) -> Replica {
    let config = format!(
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
origin_listen = "127.0.0.1:0"
origin_admin_listen = "127.0.0.1:0"
live_listen = "127.0.0.1:0"
database = "{database}"
origin_url = "http://origin.test"
origin_store = "{}"
os_bundles = "{}"
answer_key_file = "{}"
token_key_id = "k1"
token_key_hex = "{}"
admin_token = "{ADMIN}"
trusted_proxies = ["127.0.0.0/8"]
heartbeat_timeout_secs = 60
"#,
        dir.join("origin").display(),
        dir.join("os-bundles").display(),
        dir.join("answer.key").display(),
        "42".repeat(32),
    );
    let path = dir.join(format!("replica-{n}.toml"));
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join(format!("replica-{n}.log"))).unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the fill server binary (cargo build --release -p nearcast-fill-server)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("replica {n} said {line:?}; see {}", dir.display()));
    Replica { child, http }
}

/// CPU seconds so far of every process named `postgres`.
pub fn postgres_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_secs)
        .sum()
}

pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}
