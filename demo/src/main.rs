//! `nearcast demo`: the whole stack on this machine with embedded
//! defaults — the sample title packaged into the origin, the fill server,
//! two appliances of one site with their agents; the first box fills from
//! the origin, the second from the first; then it prints URLs that play.
//! `--live` adds a live event with ffmpeg as its encoder.
//! Ctrl-C stops everything.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_agent::Agent;

/// The demo's encrypted copy of the sample.
const ENCRYPTED: &str = "sample-cenc";

mod qemu;

#[derive(Parser)]
#[command(version, about = "Nearcast: video delivery from inside ISP networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack on loopback with the sample title and print URLs that play.
    Demo {
        /// Working directory (origin store, database, the boxes' disks).
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
        /// Appliances in the site.
        #[arg(long, default_value_t = 2)]
        boxes: usize,
        /// Also run a live event: ffmpeg pushes a test ladder with the wall
        /// clock burned in, played as LL-HLS and low-latency DASH.
        #[arg(long)]
        live: bool,
    },
    /// Boot the OS image in QEMU as a box of a fresh stack: waits until it
    /// serves, lets it fill, fetches a steered segment from it and checks
    /// its bytes.
    Qemu {
        /// The disk image `nearcast-image build` made (copied, not changed).
        #[arg(long, default_value = "target/os-image/disk.img")]
        image: PathBuf,
        /// Working directory (stack, the box's disk and console log).
        #[arg(long, default_value = "target/qemu")]
        dir: PathBuf,
        /// Use KVM (hardware virtualisation) instead of software emulation.
        #[arg(long)]
        kvm: bool,
        /// Keep the box and stack running after the check, until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

/// Each run starts from an empty fleet; the packaged origin is kept.
fn clean(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name() != "origin" {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Starts the demo's live event and waits for its first segments.
fn start_live(stack: &Stack) -> anyhow::Result<nearcast::live::LiveEncoder> {
    println!("live: starting ffmpeg as the encoder …");
    let mut encoder = stack.start_live("live", &nearcast::live::LADDER, None)?;
    let url = format!("{}/v1/play/live/manifest.mpd", stack.fill_url);
    for _ in 0..100 {
        if !encoder.running() {
            bail!("ffmpeg stopped (is Debian's ffmpeg installed?)");
        }
        if stack.get(&url).is_ok() {
            return Ok(encoder);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the live event has no segment after 20 s")
}

fn main() -> anyhow::Result<()> {
    nearcast_common::logging::init("warn");
    let (dir, boxes, live) = match Cli::parse().command {
        Command::Demo { dir, boxes, live } => (dir, boxes, live),
        Command::Qemu { image, dir, kvm, keep } => return qemu::run(&image, &dir, kvm, keep),
    };
    if boxes == 0 {
        bail!("--boxes must be at least 1");
    }
    clean(&dir);
    println!("packaging the sample title and starting the fill server …");
    let mut stack = Stack::start(&dir, Ports::DEMO, 30)?;
    stack.make_popular(TITLE, 500)?;
    // The same title encrypted (cenc, Clear Key), for the license service.
    stack.package_encrypted(ENCRYPTED, nearcast_packager::cenc::Scheme::Cenc)?;
    stack.make_popular(ENCRYPTED, 400)?;
    for _ in 0..boxes {
        stack.add_box(|_| {})?;
    }
    let encoder = if live { Some(start_live(&stack)?) } else { None };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let agents: Vec<Arc<Agent>> = stack
        .boxes
        .iter()
        .map(|b| Agent::new(b.agent.clone()).map(Arc::new))
        .collect::<Result<_, _>>()?;
    rt.block_on(async {
        let mut runs = Vec::new();
        for (agent, b) in agents.iter().zip(&stack.boxes) {
            // One box at a time, so each later box fills from its peers.
            println!("{}: filling …", b.id);
            runs.push(tokio::spawn(nearcast_agent::daemon::run(agent.clone(), |_| {})));
            let filled = wait_for_fill(agent).await?;
            println!(
                "{}: {} files filled and verified, serving at http://{}",
                b.id, filled, b.http_addr
            );
        }
        let fs = &stack.fill_url;
        println!();
        println!("  play (steered to a box, tokens for this client):");
        println!("    ffplay {fs}/v1/play/{TITLE}/master.m3u8");
        println!("    ffplay {fs}/v1/play/{TITLE}/manifest.mpd");
        println!("  in a browser: {fs}/player?title={TITLE}");
        println!(
            "  fleet:      {}/dashboard#token={}",
            stack.admin_url,
            nearcast::stack::ADMIN_TOKEN
        );
        print_encrypted(&stack);
        println!("  steering:   curl '{fs}/v1/steer?title={TITLE}'");
        print_reports(&stack);
        for b in &stack.boxes {
            println!(
                "  {}:      curl http://{}/metrics   (agent: curl http://{}/status)",
                b.id, b.admin_addr, b.agent.admin_listen
            );
        }
        if let Some(e) = &encoder {
            let ev = &e.event;
            println!("  live (LL-HLS, hls.js in low-latency mode plays it):");
            println!("live: {fs}/v1/play/{ev}/master.m3u8");
            println!("    low-latency DASH: {fs}/v1/play/{ev}/manifest.mpd");
            println!("    in a browser: {fs}/player?title={ev}");
        }
        println!("  Ctrl-C stops everything.");
        println!();
        for run in runs {
            run.await??;
        }
        anyhow::Ok(())
    })?;
    for b in &mut stack.boxes {
        b.stop_appliance();
    }
    stack.origin.shutdown();
    println!("stopped");
    Ok(())
}

/// Waits until the agent's first fill run ends; its placed file count.
async fn wait_for_fill(agent: &Agent) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let s = nearcast_agent::admin::status(agent);
        if s.runs_completed > 0 {
            if let Some(f) = s.fill.failures.first() {
                bail!("{}: fill failed: {}/{}: {}", s.id, f.title, f.path, f.reason);
            }
            return Ok(s.fill.files_done);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!("{}: no fill within 5 minutes", s.id)).context("is the fill server up?");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The encrypted copy's player URL, with a viewer's entitlement.
/// The operators' reports: the players' CMCD, why the origin served,
/// what it cost.
fn print_reports(stack: &Stack) {
    let admin = format!(
        "curl -H 'authorization: Bearer {}' {}",
        nearcast::stack::ADMIN_TOKEN,
        stack.admin_url
    );
    println!("  players' CMCD per box: {admin}/v1/admin/qoe   (cmcd)");
    println!("  why the origin served: {admin}/v1/admin/misses   costs: {admin}/v1/admin/costs");
}

fn print_encrypted(stack: &Stack) {
    let fs = &stack.fill_url;
    let entitlement = stack.entitlement("demo-viewer", &[ENCRYPTED], 86_400, Some(2));
    println!("  encrypted (cenc, Clear Key; an entitlement for a day, 2 streams):");
    println!("    {fs}/player?title={ENCRYPTED}&entitlement={entitlement}");
}
