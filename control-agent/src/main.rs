//! `control-agent`: run the agent, ask it to fill now, show its status, or
//! make the appliance's key.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hyper::body::Bytes;
use nearcast_agent::http::fetch_small;
use nearcast_agent::progress::Status;
use nearcast_agent::{Agent, Config};

#[derive(Parser)]
#[command(
    version,
    about = "Nearcast control agent: registration, heartbeats, inventory and the nightly fill"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (register, heartbeat, fill in the window) until SIGTERM.
    Run {
        /// Agent config (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the running agent to fill now, ignoring the window, and follow it.
    Fill {
        /// Required: fill now rather than at the window.
        #[arg(long)]
        now: bool,
        #[arg(long, short)]
        config: PathBuf,
        /// Return once the agent has taken the request.
        #[arg(long)]
        no_wait: bool,
    },
    /// What is filled, what is left, rate and ETA.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new Ed25519 key for this appliance (PKCS#8) and print its
    /// public half, which the operator enrolls at the fill server.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    nearcast_common::logging::init("info");
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            let agent = Arc::new(Agent::new(cfg)?);
            rt.block_on(nearcast_agent::daemon::run(agent, |addr| {
                println!("control-agent ready admin=http://{addr}");
            }))
        }
        Command::Fill { now, config, no_wait } => {
            if !now {
                bail!("`fill` needs --now (the nightly fill runs by itself in the window)");
            }
            let base = format!("http://{}", Config::load(&config)?.admin_listen);
            rt.block_on(fill_now(&base, no_wait))
        }
        Command::Status { config, json } => {
            let base = format!("http://{}", Config::load(&config)?.admin_listen);
            let s = rt.block_on(status(&base))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
            Ok(())
        }
        Command::Keygen { out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let der = nearcast_common::request_auth::ApplianceKey::generate_pkcs8()?;
            let key = nearcast_common::request_auth::ApplianceKey::from_pkcs8(&der)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("{} (not overwriting a key)", out.display()))?;
            f.write_all(&der)?;
            f.sync_all()?;
            println!("{}", key.public_hex());
            Ok(())
        }
    }
}

async fn status(base: &str) -> anyhow::Result<Status> {
    let body = fetch_small("GET", &format!("{base}/status"), &[], Bytes::new())
        .await
        .context("is the agent running?")?;
    Ok(serde_json::from_slice(&body)?)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_status(s: &Status) {
    let f = &s.fill;
    println!("appliance     {}", s.id);
    println!("titles held   {}", s.titles.len());
    if let Some(why) = &s.answer_refused {
        println!("REFUSED       {why}");
    }
    let state = if f.running { "filling" } else { "idle" };
    println!(
        "fill          {state}, manifest {}",
        if f.manifest_version.is_empty() {
            "-"
        } else {
            &f.manifest_version
        }
    );
    println!("files         {} of {}", f.files_done, f.files_total);
    println!(
        "bytes         {:.1} of {:.1} MiB ({:.1} MiB left)",
        mib(f.bytes_done),
        mib(f.bytes_total),
        mib(f.bytes_total.saturating_sub(f.bytes_done))
    );
    println!("rate          {:.2} MiB/s", mib(f.rate_bytes_per_sec));
    match s.eta_secs {
        Some(eta) => println!("eta           {eta} s"),
        None => println!("eta           -"),
    }
    if s.window_opens_in_secs > 0 {
        println!("window        opens in {} s", s.window_opens_in_secs);
    }
    for x in &f.failures {
        println!("failed        {}/{}: {}", x.title, x.path, x.reason);
    }
}

async fn fill_now(base: &str, no_wait: bool) -> anyhow::Result<()> {
    let body = fetch_small("POST", &format!("{base}/fill"), &[], Bytes::new())
        .await
        .context("is the agent running?")?;
    let target = serde_json::from_slice::<serde_json::Value>(&body)?["runs_completed_at_least"]
        .as_u64()
        .unwrap_or(0);
    if no_wait {
        println!("fill requested");
        return Ok(());
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let s = loop {
        let s = status(base).await?;
        if let Some(b) = &bar {
            b.set_length(s.fill.bytes_total);
            b.set_position(s.fill.bytes_done);
            b.set_message(format!("{}/{} files", s.fill.files_done, s.fill.files_total));
        }
        if s.runs_completed >= target {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if let Some(b) = bar {
        b.finish();
    }
    print_status(&s);
    if s.fill.files_done < s.fill.files_total {
        bail!("the fill did not complete");
    }
    Ok(())
}
