//! `live-bench [SECS]` (default 30): live at the origin, measured.
//!
//! 1. Ingest to publish: ffmpeg's LL-DASH output of a 720p ladder rung
//!    (3 Mbit/s H.264 + AAC, 2 s segments of 0.5 s fragments) is encoded
//!    ahead to files, then pushed into the origin's live door as an
//!    encoder would, each fragment sent when its last frame would exist
//!    (chunked PUT per segment). A reader blocked on each next part takes
//!    the time from the fragment's last byte sent to its last byte read:
//!    p50/p99. The live door's threads' CPU time over the push gives CPU
//!    per ingested Mbit/s.
//! 2. What players see: Shaka Player (low-latency mode) in headless
//!    Chromium plays our LL-DASH for SECS, then ffmpeg's own LL-DASH output
//!    (same encoder, same settings, written to files) served by nginx;
//!    latency is wall clock minus the playhead's date, sampled every
//!    250 ms after 5 s to settle.
//!
//! Needs ffmpeg, nginx, chromium + chromedriver and `npm ci --prefix
//! tests/web` (scripts/test installs them all).

mod players;

use nearcast_live_bench::{percentile, push};

fn main() {
    let secs: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let work = nearcast_testkit::TempDir::new("live-bench");
    println!("== ingest to publish: {secs} s of 720p at 3 Mbit/s + AAC into our live door");
    let p = push::run(&work, secs);
    println!(
        "  {} parts: delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p.delays_ms.len(),
        percentile(&p.delays_ms, 0.5),
        percentile(&p.delays_ms, 0.99),
        percentile(&p.delays_ms, 1.0)
    );
    println!(
        "  ingested {:.2} Mbit/s; live door CPU {:.2} % of a core, {:.2} % per Mbit/s",
        p.mbit_per_s,
        p.cpu_percent,
        p.cpu_percent / p.mbit_per_s
    );
    println!("== players: Shaka Player on our LL-DASH vs ffmpeg's LL-DASH on nginx, {secs} s each");
    let ours = players::ours(&work, secs);
    let nginx = players::nginx(&work, secs);
    println!(
        "  {:<34} {:>9} {:>9} {:>7} {:>7}",
        "", "p50 ms", "p95 ms", "stalls", "errors"
    );
    for (name, r) in [
        ("ours (live door, /v1/play)", &ours),
        ("ffmpeg LL-DASH files on nginx", &nginx),
    ] {
        println!(
            "  {:<34} {:>9.0} {:>9.0} {:>7} {:>7}",
            name,
            percentile(&r.latency_ms, 0.5),
            percentile(&r.latency_ms, 0.95),
            r.stalls,
            r.errors
        );
    }
    println!(
        "  latency p50 ratio (nginx / ours): {:.2}",
        percentile(&nginx.latency_ms, 0.5) / percentile(&ours.latency_ms, 0.5)
    );
}
