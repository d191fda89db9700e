//! `nearcast-fill-server`: the central control plane and steering service.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config;
use nearcast_fill_server::store::SqliteStore;

/// Run the fill server: appliance registry, heartbeats, steering.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let text = std::fs::read_to_string(&cli.config).with_context(|| format!("reading {}", cli.config.display()))?;
    let config: Config = toml::from_str(&text).with_context(|| format!("parsing {}", cli.config.display()))?;
    let store = Arc::new(SqliteStore::open(&config.database).context("opening the database")?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let origin = nearcast_fill_server::origin::start_origin(&config).context("starting the origin")?;
    println!("nearcast-fill-server ready http={addr} origin={}", origin.http_addr);
    let app = Arc::new(App::new(store, config)?);
    nearcast_fill_server::server::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    origin.shutdown();
    origin.join().context("origin engine")?;
    Ok(())
}
