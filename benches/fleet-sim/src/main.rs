//! `cargo run --release -- [boxes] [secs] [replica counts] [manifest every]`
//! with
//! `NEARCAST_TEST_POSTGRES` naming a PostgreSQL (`scripts/test-postgres`)
//! and the fill server built (`cargo build --release -p
//! nearcast-fill-server`; `NEARCAST_FILL_SERVER` names another binary).
//! For each replica count (default 1 and 3): a fresh schema seeded with the
//! fleet, the replicas started on it, a beat from every box, steering
//! measured idle, then the
//! fleet run (heartbeats every 10 s, and the manifest of one box in
//! `manifest every` (default 1: all of them, a night compressed into the
//! run; a real 4-hour window over a 30 s run is 1 in 480)) with the
//! same steering load beside it. Prints heartbeat and manifest p50/p99,
//! steering decisions/s idle and under the fleet (and the ratio),
//! PostgreSQL's and the replicas' CPU.

mod client;
mod load;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Steering connections (players) in both steering runs.
const STEER_CONNS: usize = 16;
const STEER_SECS: u64 = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let boxes: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let counts: Vec<usize> = args
        .get(3)
        .map_or("1,3", String::as_str)
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    let manifest_every: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let url = std::env::var("NEARCAST_TEST_POSTGRES").expect("NEARCAST_TEST_POSTGRES (eval \"$(scripts/test-postgres)\")");
    let bin = std::env::var("NEARCAST_FILL_SERVER").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/nearcast-fill-server"),
        PathBuf::from,
    );
    println!("{boxes} boxes, {secs} s of fleet, a manifest from 1 box in {manifest_every}, steering on {STEER_CONNS} connections");
    println!("replicas  beat p50  beat p99  manifest p50  manifest p99  failed  steer idle/s  steer fleet/s  ratio  pg cpu  replicas cpu");
    for n in counts {
        run(&bin, &url, n, boxes, (secs, manifest_every));
    }
}

fn run(bin: &std::path::Path, url: &str, n: usize, boxes: usize, (secs, manifest_every): (u64, usize)) {
    let dir = std::env::temp_dir().join(format!("nearcast-fleet-sim-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    setup::origin_store(&dir.join("origin"));
    let schema = format!("fleet_sim_{n}");
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .unwrap();
    let database = format!("{url} options='-c search_path={schema}'");
    let t = Instant::now();
    let fleet = {
        let store = nearcast_fill_server::store::open(&database).unwrap();
        Arc::new(setup::seed(store.as_ref(), boxes))
    };
    eprintln!("seeded {boxes} boxes in {:.0} s", t.elapsed().as_secs_f64());
    let replicas: Vec<setup::Replica> = (0..n).map(|i| setup::start_replica(bin, &dir, &database, i)).collect();
    let addrs: Vec<_> = replicas.iter().map(|r| r.http).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // One beat from every box first: the seeding's beats are a minute old.
    rt.block_on(load::fleet(fleet.clone(), &addrs, load::BEAT.as_secs(), 0));
    let (idle, _) = rt.block_on(load::steering(&addrs, STEER_CONNS, STEER_SECS));
    let cpu = |rs: &[setup::Replica]| rs.iter().map(|r| setup::cpu_secs(r.child.id())).sum::<f64>();
    let (pg0, rep0, t0) = (setup::postgres_cpu(), cpu(&replicas), Instant::now());
    let ((beats, manifests), (loaded, steer_failed)) = rt.block_on(async {
        let fleet_run = load::fleet(fleet.clone(), &addrs, secs, manifest_every);
        // Steering in the middle of the fleet run, once every box beats.
        let steer = async {
            tokio::time::sleep(load::BEAT).await;
            load::steering(&addrs, STEER_CONNS, STEER_SECS).await
        };
        tokio::join!(fleet_run, steer)
    });
    let wall = t0.elapsed().as_secs_f64();
    let (pg, rep) = ((setup::postgres_cpu() - pg0) / wall, (cpu(&replicas) - rep0) / wall);
    println!(
        "{n:>8}  {:>8.1}  {:>8.1}  {:>12.1}  {:>12.1}  {:>6}  {idle:>12.0}  {loaded:>13.0}  {:>5.2}  {:>5.0}%  {:>11.0}%",
        beats.pct(0.5),
        beats.pct(0.99),
        manifests.pct(0.5),
        manifests.pct(0.99),
        beats.failed + manifests.failed + steer_failed,
        loaded / idle,
        pg * 100.0,
        rep * 100.0,
    );
    eprintln!(
        "  {} heartbeats, {} manifests in {wall:.0} s",
        beats.ms.len(),
        manifests.ms.len()
    );
}
