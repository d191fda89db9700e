//! `control-agent run`: registers, then keeps four loops going — the
//! heartbeat, the inventory reporter, the fill (in its window, or now when
//! an operator asks) and the agent's admin listener — until SIGINT or
//! SIGTERM. A crash or kill at any point is safe: the disk layout (see
//! `disks`) never lets a partial file into the inventory, and downloads
//! resume where they stopped.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nearcast_common::control::Registration;
use tokio::time::Instant;

use crate::agent::Agent;
use crate::fill::fill_once;
use crate::heartbeat::compose;
use crate::window::local_seconds_of_day;

/// Retry delay for control calls that failed.
const RETRY: Duration = Duration::from_secs(2);
/// A run asked for with `fill --now` may take this long.
const FORCED_RUN: Duration = Duration::from_secs(24 * 3600);

pub fn registration(agent: &Agent) -> Registration {
    let disks_total: u64 = agent.disks.iter().map(|d| d.space_seen().total).sum();
    Registration {
        site: agent.config.site.clone(),
        url: agent.config.public_url.clone(),
        capacity_bytes: if agent.config.capacity_bytes > 0 {
            agent.config.capacity_bytes
        } else {
            disks_total
        },
        disks: agent.disks.iter().map(|d| d.name()).collect(),
    }
}

/// Registers, retrying until the fill server takes it.
async fn register(agent: &Agent) {
    let r = registration(agent);
    let mut delay = RETRY;
    loop {
        match agent.server.register(&r).await {
            Ok(()) => {
                tracing::info!(id = %agent.config.id, site = %r.site, capacity = r.capacity_bytes, "registered");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "registration failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

async fn heartbeat_loop(agent: Arc<Agent>) {
    let mut last = crate::heartbeat::Reading::of(&agent.appliance.status().await);

    let mut tick = tokio::time::interval(Duration::from_secs(agent.config.heartbeat_secs));
    loop {
        tick.tick().await;
        let view = agent.appliance.status().await;
        let hardware = agent.check_hardware(&view).await;
        let mut next = last.clone();
        let hb = compose(&agent, hardware, &view, &mut next);
        match agent.server.heartbeat(&hb).await {
            // Only bytes the fill server took are forgotten.
            Ok(reply) => {
                last = next;
                agent.fill_server_answered.store(true, Ordering::SeqCst);
                // Every beat: a restarted appliance has only its file's.
                if let Some(plan) = reply.live {
                    let setting = crate::live::resolve(&plan).await;
                    if let Err(e) = agent.appliance.set_live(&setting).await {
                        tracing::warn!(error = %e, "the appliance refused the live setting");
                    }
                }
                if let Some(u) = &agent.updater {
                    u.offer(reply.os_update.as_deref(), reply.os_emergency);
                    if let Some(release) = reply.os_update.filter(|r| u.wants(r)) {
                        tokio::spawn(u.clone().install(release));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn inventory_loop(agent: Arc<Agent>) {
    loop {
        let inv = agent.inventory.report();
        match agent.server.inventory(&inv).await {
            Ok(()) => {
                tracing::debug!(version = %inv.version, titles = inv.titles.len(), "inventory reported");
                agent.inventory.changed.notified().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "inventory report failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn fill_loop(agent: Arc<Agent>) {
    loop {
        let now = local_seconds_of_day();
        let forced = agent.forced.swap(false, Ordering::SeqCst);
        let open = agent.config.fill_window.remaining(now);
        let budget = if forced { Some(FORCED_RUN) } else { open };
        let Some(budget) = budget else {
            let wait = agent.config.fill_window.until_open(now);
            tracing::info!(opens_in_secs = wait.as_secs(), "outside the fill window");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = agent.fill_requested.notified() => {}
            }
            continue;
        };
        match agent.server.manifest().await {
            Ok(m) => {
                fill_once(&agent, &m, Instant::now() + budget).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "no manifest");
                if forced {
                    agent.progress.fail("", "", format!("no manifest: {e}"));
                    agent.progress.end_run();
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(agent.config.manifest_poll_secs)) => {}
            _ = agent.fill_requested.notified() => {}
        }
    }
}

/// Runs the agent until a signal. `ready` is told the admin address once
/// it listens.
pub async fn run(agent: Arc<Agent>, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let admin = crate::admin::bind(agent.config.admin_listen).await?;
    ready(admin.local_addr()?);
    tokio::spawn(crate::admin::serve(admin, agent.clone()));
    if let Some(u) = agent.updater.clone() {
        // GRUB's environment and the state file: off the async threads.
        let booted = tokio::task::spawn_blocking({
            let u = u.clone();
            move || u.on_boot()
        })
        .await;
        match booted {
            Ok(Ok(true)) => {
                tokio::spawn(u.check_trial());
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot read the boot state"),
            Err(e) => tracing::error!(error = %e, "boot state check panicked"),
        }
    }
    register(&agent).await;
    tokio::spawn(inventory_loop(agent.clone()));
    tokio::spawn(heartbeat_loop(agent.clone()));
    tokio::spawn(fill_loop(agent.clone()));
    if let Some(speaker) = agent.bgp.clone() {
        tokio::spawn(speaker.run());
        tokio::spawn(crate::routes::report_loop(agent.clone()));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping; partial downloads resume on the next start");
    Ok(())
}
