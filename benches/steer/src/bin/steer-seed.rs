//! Seeds a fill-server SQLite database for the steering benchmark:
//! `steer-seed DB PREFIXES APPLIANCES` — ISPs, the synthetic routing table,
//! one site per ISP, and appliances enrolled, registered, heartbeating
//! (time = now) and holding the title `bench`.

use nearcast_common::{unix_now, Name};
use nearcast_fill_server::store::{Health, Heartbeat, Inventory, Registration, SqliteStore, Store};

const ISPS: u32 = 50;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        eprintln!("usage: steer-seed DB PREFIXES APPLIANCES");
        std::process::exit(2);
    }
    let (n, boxes): (usize, usize) = (a[2].parse().expect("PREFIXES"), a[3].parse().expect("APPLIANCES"));
    let store = SqliteStore::open(std::path::Path::new(&a[1])).expect("open db");
    for i in 0..ISPS {
        store.add_isp(&format!("isp-{i}"), &[64500 + i]).unwrap();
        store.add_site(&format!("site-{i}"), &format!("isp-{i}")).unwrap();
    }
    let t = std::time::Instant::now();
    let count = store.import_prefixes(&nearcast_steer_bench::table(n, ISPS)).unwrap();
    eprintln!("imported {count} prefixes in {:.1} s", t.elapsed().as_secs_f64());
    let now = unix_now();
    for b in 0..boxes {
        let id = format!("box-{b}");
        store.enroll(&id, &"00".repeat(32)).unwrap();
        let reg = Registration {
            site: format!("site-{}", b as u32 % ISPS),
            url: format!("http://10.{}.{}.1:8080", b / 256, b % 256),
            capacity_bytes: 1 << 40,
            disks: Vec::new(),
        };
        store.register(&id, &reg, now).unwrap();
        let hb = Heartbeat::new(Health::Ok, (b % 97) as f64 / 100.0, 1 << 39);
        store.heartbeat(&id, &hb, now).unwrap();
        store
            .set_inventory(
                &id,
                &Inventory {
                    version: "1".into(),
                    titles: vec![Name::new("bench").expect("a plain name")],
                },
            )
            .unwrap();
    }
    eprintln!("seeded {boxes} appliances");
}
