//! `nearcast-appliance`: the command that runs the serving engine.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use nearcast_appliance::config::{Config, KeyConfig, TlsConfig};
use nearcast_appliance::Server;

/// Serve video segments from the box's disks over HTTP/1.1 and HTTPS.
///
/// Settings come from the TOML file given with --config; flags override it.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address for plain HTTP (e.g. 0.0.0.0:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address for /metrics and /healthz.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// A content directory (one per disk); repeat for several disks.
    #[arg(long = "disk", value_name = "DIR")]
    disks: Vec<PathBuf>,
    /// Worker threads (0: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Address for HTTPS; needs --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Keep HTTPS sessions in userspace rustls even where the kernel
    /// offers kTLS.
    #[arg(long)]
    no_ktls: bool,
    /// An accepted token key as ID:HEXSECRET; repeat during key rotation.
    #[arg(long = "key", value_name = "ID:HEX")]
    keys: Vec<String>,
    /// Serve without checking tokens (labs and demos only).
    #[arg(long)]
    no_auth: bool,
    /// Cap each connection's sending rate, in kilobits per second (0: none).
    #[arg(long, value_name = "KBIT")]
    rate_limit_kbit: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    nearcast_common::logging::init("info");
    let cli = Cli::parse();
    let config = build_config(cli)?;
    raise_fd_limit();
    // Signals are taken by this thread alone: block them before workers start.
    let signals = block_signals()?;
    let server = Server::start(config).context("cannot start the appliance")?;
    let https = server.https_addr.map(|a| format!(" https={a}")).unwrap_or_default();
    println!(
        "nearcast-appliance ready http={}{https} admin={}",
        server.http_addr, server.admin_addr
    );
    tracing::info!(http = %server.http_addr, admin = %server.admin_addr, "serving");
    wait_for_signal(&signals)?;
    tracing::info!("draining");
    server.shutdown();
    server.join().context("worker failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn build_config(cli: Cli) -> anyhow::Result<Config> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(a) = cli.listen {
        cfg.listen = a;
    }
    if let Some(a) = cli.admin_listen {
        cfg.admin_listen = a;
    }
    if !cli.disks.is_empty() {
        cfg.disks = cli.disks;
    }
    if let Some(t) = cli.threads {
        cfg.threads = t;
    }
    if let (Some(listen), Some(cert), Some(key)) = (cli.tls_listen, cli.tls_cert, cli.tls_key) {
        cfg.tls = Some(TlsConfig {
            listen,
            cert,
            key,
            ktls: !cli.no_ktls,
        });
    }
    for k in cli.keys {
        let Some((id, secret_hex)) = k.split_once(':') else {
            bail!("--key wants ID:HEXSECRET, got '{k}'");
        };
        cfg.auth.keys.push(KeyConfig {
            id: id.to_string(),
            secret_hex: secret_hex.to_string(),
        });
    }
    if cli.no_auth {
        cfg.auth.required = false;
    }
    if let Some(kbit) = cli.rate_limit_kbit {
        cfg.rate_limit.kbit_per_connection = kbit;
    }
    Ok(cfg)
}

/// Every client is a descriptor: lift the soft limit to the hard one.
fn raise_fd_limit() {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn block_signals() -> anyhow::Result<libc::sigset_t> {
    // SAFETY: sigset operations on a local set; pthread_sigmask on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            bail!("cannot block signals");
        }
        Ok(set)
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> anyhow::Result<()> {
    let mut sig = 0;
    // SAFETY: waits on a set of signals this thread has blocked.
    if unsafe { libc::sigwait(set, &mut sig) } != 0 {
        bail!("sigwait failed");
    }
    Ok(())
}
