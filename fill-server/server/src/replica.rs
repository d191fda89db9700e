//! Following the other replicas. Every replica serves from its own view;
//! what another replica wrote reaches it through the store's change log
//! (`store::changes`): woken by PostgreSQL's `NOTIFY` at once, and caught
//! up by version every `CATCH_UP` anyway, so a lost notification (or a
//! reconnect) only delays. The same thread runs the jobs that must run
//! once across replicas (retention, rollout steps), while it holds their advisory lock; a
//! replica that dies drops its connection and so the lock, and the next
//! replica to ask takes over.
//!
//! On SQLite there is one process and nobody to follow: it runs the jobs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nearcast_common::unix_now;

use crate::app::{App, Changed};
use crate::store::{Listener, Logged, StoreError};

/// The longest a missed notification delays a change.
pub const CATCH_UP: Duration = Duration::from_secs(1);
/// Changes read per query while catching up.
const PAGE: i64 = 1000;
/// How long the change log keeps a change. A follower that fell further
/// behind (a process stopped for that long) rebuilds its whole view.
const LOG_KEEP_SECS: u64 = 3600;
/// How often the leader prunes the log and old QoE events.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// The jobs' advisory lock ("nc" "jobs").
const JOBS_LOCK: i64 = 0x6e63_6a6f_6273;

/// Starts the follower of `app`, from change `from` on; it ends with the
/// app.
pub fn spawn(app: &Arc<App>, from: i64) -> std::io::Result<()> {
    let weak = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("nearcast-follow".into())
        .spawn(move || run(weak, from))
        .map(drop)
}

struct Follower {
    /// The newest version applied (or skipped as our own).
    version: i64,
    /// When the log was last read in full.
    caught_up: u64,
    listener: Option<Box<dyn Listener>>,
    /// Whether the store has listeners at all (PostgreSQL).
    shared: bool,
    retention_due: Instant,
    rollouts_due: Instant,
}

fn run(app: Weak<App>, from: i64) {
    let mut f = Follower {
        version: from,
        caught_up: unix_now(),
        listener: None,
        shared: true,
        retention_due: Instant::now(),
        rollouts_due: Instant::now(),
    };
    loop {
        let Some(app) = app.upgrade() else {
            return;
        };
        if let Err(e) = f.catch_up(&app) {
            tracing::warn!(error = %e, "following the other replicas failed; retrying");
        }
        f.jobs(&app);
        drop(app);
        f.wait();
    }
}

impl Follower {
    /// Waits for a notification or `CATCH_UP`, (re)connecting the
    /// listener as needed.
    fn wait(&mut self) {
        match self.listener.as_mut() {
            Some(l) => {
                if let Err(e) = l.wait(CATCH_UP) {
                    tracing::warn!(error = %e, "change listener lost; reconnecting");
                    self.listener = None;
                    std::thread::sleep(CATCH_UP);
                }
            }
            None => std::thread::sleep(CATCH_UP),
        }
    }

    /// Applies every change after `version` that another replica made.
    fn catch_up(&mut self, app: &App) -> Result<(), StoreError> {
        if self.listener.is_none() && self.shared {
            self.listener = app.store.listener()?;
            self.shared = self.listener.is_some();
        }
        let now = unix_now();
        if now.saturating_sub(self.caught_up) > LOG_KEEP_SECS / 2 {
            // The log may have been pruned past us: start over from now.
            let latest = app.store.latest_change()?;
            app.refresh(&Changed::Routing)?;
            self.version = latest;
        }
        loop {
            let page = app.store.changes_since(self.version, PAGE)?;
            let Some(last) = page.last() else {
                break;
            };
            self.version = last.version;
            let full = page.len() as i64 == PAGE;
            tracing::debug!(changes = page.len(), version = self.version, "catching up");
            apply(app, page)?;
            if !full {
                break;
            }
        }
        self.caught_up = now;
        Ok(())
    }

    /// Retention, while this replica holds the jobs' lock.
    fn jobs(&mut self, app: &App) {
        let leading = match self.listener.as_mut() {
            Some(l) => l.try_lock(JOBS_LOCK).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "jobs lock");
                self.listener = None;
                false
            }),
            None => !self.shared,
        };
        let was = app.leading.swap(leading, Ordering::Relaxed);
        if leading != was {
            tracing::info!(leading, "jobs lock {}", if leading { "taken" } else { "lost" });
        }
        if leading && Instant::now() >= self.rollouts_due {
            self.rollouts_due = Instant::now() + crate::rollout::runner::EVERY;
            if let Err(e) = crate::rollout::runner::tick(app, unix_now()) {
                tracing::warn!(error = %e, "stepping rollouts failed");
            }
        }
        if !leading || Instant::now() < self.retention_due {
            return;
        }
        self.retention_due = Instant::now() + RETENTION_EVERY;
        let now = unix_now();
        let qoe_before = now.saturating_sub(app.config.qoe_retention_days * 86_400);
        match app.store.prune(now.saturating_sub(LOG_KEEP_SECS), qoe_before) {
            Ok(n) => tracing::debug!(rows = n, "retention"),
            Err(e) => tracing::warn!(error = %e, "retention failed"),
        }
    }
}

/// Rebuilds what the other replicas' changes in `page` touched: one
/// rebuild for the largest kind, then the heartbeats in log order.
fn apply(app: &App, page: Vec<Logged>) -> Result<(), StoreError> {
    let me = app.store.replica_id();
    let (mut routing, mut fleet, mut bgp, mut demand, mut live, mut rights) =
        (false, false, false, false, false, false);
    let mut beats = Vec::new();
    let mut leases = nearcast_license::SharedLeases::default();
    for logged in page.into_iter().filter(|l| l.origin != me) {
        match logged.change {
            Changed::Routing => routing = true,
            Changed::Fleet => fleet = true,
            Changed::Bgp => bgp = true,
            Changed::Demand => demand = true,
            Changed::Live => live = true,
            Changed::Rights => rights = true,
            Changed::Heartbeats(b) => beats.extend(b),
            Changed::Leases(l) => {
                leases.streams.extend(l.streams);
                leases.devices.extend(l.devices);
            }
            Changed::Nothing => {}
        }
    }
    if routing {
        app.refresh(&Changed::Routing)?;
    } else {
        if fleet {
            app.refresh(&Changed::Fleet)?;
        }
        if bgp {
            app.refresh(&Changed::Bgp)?;
        }
    }
    // A routing rebuild rebuilds the rights too.
    let rights = rights && !routing;
    for (flag, change) in [
        (demand, Changed::Demand),
        (live, Changed::Live),
        (rights, Changed::Rights),
    ] {
        if flag {
            app.refresh(&change)?;
        }
    }
    if !beats.is_empty() {
        app.refresh(&Changed::Heartbeats(beats))?;
    }
    if !leases.is_empty() {
        app.refresh(&Changed::Leases(leases))?;
    }
    Ok(())
}
