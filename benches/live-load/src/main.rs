//! `live-load [SECS] [VIEWERS…]` (default 20 s; 1000 and 10000 viewers):
//! N simulated LL-HLS viewers (`viewers`) against one server with the
//! live origin behind it (`origin`: the stack's live door fed at an
//! encoder's pace, behind a counting proxy), for our appliance, nginx
//! (`proxy_cache` + `proxy_cache_lock`, arguments in the key) and Varnish
//! 7, one after the other, each with a fresh event and a cold cache. Per
//! run: origin requests per object (parts, segments, init segments and
//! blocking reloads; plain playlist refreshes are counted apart, each is a
//! new version), part latency from its availability at
//! the origin (p50/p99), the server's CPU seconds and peak RSS. Targets
//! (issue #17): 1.00 origin request per object; our p99 ≤ 0.5× the better
//! of nginx and Varnish; 10,000 viewers with RSS ≤ 256 MiB.
//!
//! Needs ffmpeg, nginx and varnish (Debian packages). `live-load
//! serve-appliance CONFIG` is how it runs our appliance as a process of
//! its own.

mod origin;
mod proxy;
mod server;
mod viewers;

use std::time::Duration;

use nearcast_live_bench::percentile;
use server::{Kind, Server};

/// Seconds the origin has pushed before viewers join (whole segments).
const LEAD: u64 = 4;

struct Row {
    kind: Kind,
    viewers: usize,
    per_object: f64,
    objects: u64,
    /// Plain playlist fetches (new versions, not repeats).
    refreshes: u64,
    p50: f64,
    p99: f64,
    parts: u64,
    errors: u64,
    cpu: f64,
    rss_mib: f64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("serve-appliance") {
        return serve_appliance(&args.next().expect("serve-appliance CONFIG"));
    }
    let secs: u64 = first.and_then(|a| a.parse().ok()).unwrap_or(20);
    let counts: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![1000, 10_000] } else { counts };
    let work = nearcast_testkit::TempDir::new("live-load");
    let origin = origin::Origin::start(&work, (LEAD + secs + 4) as u32);
    let mut rows = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        for (j, kind) in [Kind::Ours, Kind::Nginx, Kind::Varnish].into_iter().enumerate() {
            rows.push(run(
                &origin,
                &work.join(format!("run{i}-{j}")),
                kind,
                n,
                secs,
                &format!("load{i}x{j}"),
            ));
            let r = rows.last().unwrap();
            eprintln!(
                "{} × {}: {:.2} origin req/object, p99 {:.0} ms, {} errors",
                r.kind.name(),
                r.viewers,
                r.per_object,
                r.p99,
                r.errors
            );
        }
    }
    report(&rows);
}

fn run(origin: &origin::Origin, dir: &std::path::Path, kind: Kind, viewers: usize, secs: u64, event: &str) -> Row {
    let feed = origin.feed(event);
    let srv = Server::start(kind, dir, origin.proxy.addr, origin.key_hex());
    std::thread::sleep(Duration::from_secs(LEAD));
    origin.proxy.reset();
    let load = viewers::Load {
        addr: srv.addr,
        event: event.to_string(),
        token: feed.token.clone(),
        viewers,
        secs,
    };
    let seen = viewers::run(&load, feed.sent.clone());
    let (cpu, rss) = srv.usage();
    let (requests, objects, refreshes) = origin.proxy.counts();
    let repeated = origin.proxy.repeated(5);
    if !repeated.is_empty() {
        eprintln!("  {}: asked of the origin more than once: {repeated:?}", kind.name());
    }
    drop(srv);
    feed.finish();
    Row {
        kind,
        viewers,
        per_object: requests as f64 / objects.max(1) as f64,
        objects,
        refreshes,
        p50: percentile(&seen.latency_ms, 0.5),
        p99: percentile(&seen.latency_ms, 0.99),
        parts: seen.parts,
        errors: seen.errors,
        cpu,
        rss_mib: rss as f64 / (1 << 20) as f64,
    }
}

fn report(rows: &[Row]) {
    println!(
        "{:<24} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>9}",
        "server",
        "viewers",
        "req/object",
        "objects",
        "refreshes",
        "p50 ms",
        "p99 ms",
        "parts",
        "errors",
        "CPU s",
        "RSS MiB"
    );
    for r in rows {
        println!(
            "{:<24} {:>8} {:>10.2} {:>8} {:>9} {:>9.0} {:>9.0} {:>9} {:>7} {:>8.1} {:>9.1}",
            r.kind.name(),
            r.viewers,
            r.per_object,
            r.objects,
            r.refreshes,
            r.p50,
            r.p99,
            r.parts,
            r.errors,
            r.cpu,
            r.rss_mib
        );
    }
    for n in rows
        .iter()
        .map(|r| r.viewers)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let of = |k: Kind| rows.iter().find(|r| r.viewers == n && r.kind == k);
        let (Some(ours), Some(nginx), Some(varnish)) = (of(Kind::Ours), of(Kind::Nginx), of(Kind::Varnish)) else {
            continue;
        };
        let best = nginx.p99.min(varnish.p99);
        println!(
            "{n} viewers: our p99 / the better peer's p99 = {:.2} (target ≤ 0.5); our RSS {:.0} MiB (target ≤ 256)",
            ours.p99 / best,
            ours.rss_mib
        );
    }
}

/// Runs the appliance from `config` until killed.
fn serve_appliance(config: &str) {
    let cfg = nearcast_appliance::Config::load(std::path::Path::new(config)).expect("appliance config");
    let server = nearcast_appliance::Server::start(cfg).expect("appliance start");
    let _ = server.join();
}
