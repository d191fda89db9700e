//! `nearcast-fill-server`: the central control plane and steering service.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config;

/// Run the fill server: appliance registry, heartbeats, steering.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    nearcast_common::logging::init("info");
    let cli = Cli::parse();
    let text = std::fs::read_to_string(&cli.config).with_context(|| format!("reading {}", cli.config.display()))?;
    let config: Config = toml::from_str(&text).with_context(|| format!("parsing {}", cli.config.display()))?;
    // Built before the async runtime: the PostgreSQL client blocks, and the
    // handlers only ever call the store from blocking tasks.
    let _claim = nearcast_fill_server::store::claim(&config.database)?;
    let store = nearcast_fill_server::store::open(&config.database).context("opening the database")?;
    let origin = nearcast_fill_server::origin::start_origin(&config).context("starting the origin")?;
    let listen = config.listen;
    let app = App::start(store, config)?;
    app.misses.watch(origin.viewer_bytes());
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let admin_listen = app.config.admin_listen;
        let admin = tokio::net::TcpListener::bind(admin_listen)
            .await
            .with_context(|| format!("listening on {admin_listen}"))?;
        let live_listen = app.config.live_listen;
        let live = tokio::net::TcpListener::bind(live_listen)
            .await
            .with_context(|| format!("listening on {live_listen}"))?;
        println!(
            "nearcast-fill-server ready http={} origin={} live={} admin={}",
            listener.local_addr()?,
            origin.http_addr,
            live.local_addr()?,
            admin.local_addr()?
        );
        tokio::spawn(nearcast_fill_server::server::serve_admin(
            admin,
            app.clone(),
            std::future::pending(),
        ));
        tokio::spawn(nearcast_fill_server::live::serve(
            live,
            app.clone(),
            std::future::pending(),
        ));
        nearcast_fill_server::server::serve(listener, app, stop_signal()).await;
        anyhow::Ok(())
    })?;
    origin.shutdown();
    origin.join().context("origin engine")?;
    Ok(())
}

/// SIGINT or SIGTERM: stop accepting, let the origin drain.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("stopping: no new connections; the origin drains");
}
