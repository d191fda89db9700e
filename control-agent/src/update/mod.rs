//! Over-the-network OS updates (docs/image.md): when the fill server's
//! heartbeat answer names another release, the agent streams its bundle
//! into the slot it did not boot from, checking the signature before the
//! first byte is written and the hash as the bytes go by, reads the slot
//! back, marks it for one trial boot in GRUB's environment and reboots.
//! In the new slot the agent commits only once the appliance serves and
//! the fill server answers; otherwise it reboots, and GRUB — the trial
//! boot used up — starts the old slot. The old slot's agent records the
//! failure and never tries that release again.

mod delta;
mod download;
mod error;
pub mod gate;
pub mod grubenv;
pub mod slots;
mod writer;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearcast_common::bundle::TrustedKey;
use nearcast_common::control::OsState;
use serde::{Deserialize, Serialize};

use crate::appliance::Appliance;
use crate::bucket::Bucket;
use crate::config::UpdateConfig;
use crate::fill_server::FillServer;
pub use error::UpdateError;
use grubenv::GrubEnv;
use slots::Slot;

/// How often a written update waiting for its window looks again (an
/// emergency from the fill server is seen within this).
const GATE_RECHECK: Duration = Duration::from_secs(10);

/// Kept on the config partition, shared by both slots.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    /// Installed and rebooted into on trial, not yet committed.
    pending: Option<String>,
    /// Human-readable last outcome (the heartbeat's `os.update`).
    last: String,
    failed: Vec<String>,
}

/// What an update needs from the rest of the agent.
pub struct Link {
    /// Where bundles come from.
    pub server: Arc<FillServer>,
    /// OS downloads share the box's bandwidth cap with the fill.
    pub bucket: Arc<Bucket>,
    /// The trial's health check asks it whether it serves.
    pub appliance: Appliance,
    /// A heartbeat reached the fill server since the agent started.
    pub answered: Arc<AtomicBool>,
    /// The maintenance window (the install window, else the fill window).
    pub window: crate::window::Window,
    /// The appliance's connection cap, for its load.
    pub max_connections: u64,
}

pub struct Updater {
    cfg: UpdateConfig,
    link: Link,
    pub slot: Slot,
    pub release: String,
    trusted: Vec<TrustedKey>,
    state: Mutex<State>,
    /// An install or a trial check is under way.
    busy: AtomicBool,
    /// What the fill server's last answer offered: (release, emergency).
    offered: Mutex<(Option<String>, bool)>,
}

fn read_keys(dir: &Path) -> Result<Vec<TrustedKey>, UpdateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| UpdateError::Keys {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut keys = Vec::new();
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        match TrustedKey::parse(&text) {
            Some(k) => keys.push(k),
            None => tracing::warn!(file = %e.path().display(), "not an update key; ignored"),
        }
    }
    Ok(keys)
}

impl Updater {
    /// `None` when updates are off (a box not running the image).
    pub fn open(cfg: &UpdateConfig, link: Link) -> Result<Option<Updater>, UpdateError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let cmdline = std::fs::read_to_string(&cfg.cmdline).unwrap_or_default();
        let slot = slots::booted(&cmdline)
            .ok_or_else(|| UpdateError::Slot(format!("{} names no nearcast.slot", cfg.cmdline.display())))?;
        let release = std::fs::read_to_string(&cfg.release_file)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let state = match std::fs::read(&cfg.state_file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "update state unreadable; starting afresh");
                State::default()
            }),
            Err(_) => State::default(),
        };
        Ok(Some(Updater {
            trusted: read_keys(&cfg.keys_dir)?,
            cfg: cfg.clone(),
            link,
            slot,
            release,
            state: Mutex::new(state),
            busy: AtomicBool::new(false),
            offered: Mutex::new((None, false)),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state and stores it (temp file, fsync, rename).
    fn save(&self, f: impl FnOnce(&mut State)) -> Result<(), UpdateError> {
        let mut s = self.state();
        f(&mut s);
        let path = &self.cfg.state_file;
        let err = |source: std::io::Error| UpdateError::State {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&serde_json::to_vec_pretty(&*s).unwrap_or_default())
            .and_then(|_| file.sync_all())
            .map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    pub fn os_state(&self) -> OsState {
        let s = self.state();
        OsState {
            release: self.release.clone(),
            slot: self.slot.name().to_string(),
            update: s.last.clone(),
            failed: s.failed.clone(),
        }
    }

    /// What the fill server's answer offers (every answer, none too): an
    /// install waiting for its window goes at once for an emergency, and
    /// is given up when its release is no longer offered (an aborted
    /// rollout).
    pub fn offer(&self, release: Option<&str>, emergency: bool) {
        *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = (release.map(str::to_string), emergency);
    }

    /// Whether the fill server's `os_update` is worth acting on now.
    pub fn wants(&self, release: &str) -> bool {
        release != self.release
            && !self.state().failed.iter().any(|f| f == release)
            && !self.busy.load(Ordering::SeqCst)
    }

    /// Reconciles GRUB's environment with what booted. `true`: this boot
    /// is a trial that must pass the health check to be kept.
    pub fn on_boot(&self) -> Result<bool, UpdateError> {
        let mut env = GrubEnv::read(&self.cfg.grubenv)?;
        let trial = env.get("trial_slot").to_string();
        if trial == self.slot.name() {
            tracing::info!(release = %self.release, slot = self.slot.name(), "trial boot of a new release");
            self.busy.store(true, Ordering::SeqCst);
            let release = self.release.clone();
            self.save(|s| s.last = format!("trial {release}"))?;
            return Ok(true);
        }
        if !trial.is_empty() {
            // The trial slot did not commit and GRUB came back here.
            let pending = self.state().pending.clone().unwrap_or_else(|| "unknown".into());
            tracing::warn!(release = %pending, slot = self.slot.name(), "update did not commit; back on the old slot");
            env.set("trial_slot", "");
            env.set("trial_left", "0");
            env.write(&self.cfg.grubenv)?;
            let slot = self.slot.name();
            self.save(|s| {
                if let Some(p) = s.pending.take() {
                    if !s.failed.contains(&p) {
                        s.failed.push(p);
                    }
                    s.last = format!("failed {pending}: did not commit, back on slot {slot}");
                }
            })?;
        }
        Ok(false)
    }

    /// The trial's health check: the slot runs the release its bundle
    /// named, the appliance serves and the fill server answers a
    /// heartbeat, within the configured time; commit, or reboot into the
    /// old slot.
    pub async fn check_trial(self: Arc<Self>) {
        let pending = self.state().pending.clone();
        if let Some(named) = pending.filter(|p| *p != self.release) {
            // A bundle named for another release than its slot holds: kept,
            // the box would be offered the named release for ever.
            let why = format!(
                "the slot holds release '{}', not the '{named}' its bundle named",
                self.release
            );
            return self.fail_trial(named, why).await;
        }
        let deadline = Instant::now() + Duration::from_secs(self.cfg.commit_within_secs);
        loop {
            let serving = self.link.appliance.status().await.serving;
            let reachable = self.link.answered.load(Ordering::SeqCst);
            if serving && reachable {
                let me = self.clone();
                match blocking(move || me.commit()).await {
                    Ok(()) => tracing::info!(release = %self.release, slot = self.slot.name(), "update committed"),
                    Err(e) => tracing::error!(error = %e, "cannot commit the update"),
                }
                self.busy.store(false, Ordering::SeqCst);
                return;
            }
            if Instant::now() > deadline {
                let why =
                    format!("health check failed (appliance serving: {serving}, fill server answered: {reachable})");
                let release = self.release.clone();
                return self.fail_trial(release, why).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Records `release` failed for `why` and reboots into the old slot.
    async fn fail_trial(self: Arc<Self>, release: String, why: String) {
        tracing::error!(%release, "{why}; rebooting into the old slot");
        let me = self.clone();
        let _ = blocking(move || {
            let saved = me.save(|s| {
                s.pending = None;
                if !s.failed.contains(&release) {
                    s.failed.push(release.clone());
                }
                s.last = format!("failed {release}: {why}");
            });
            me.reboot();
            saved
        })
        .await;
    }

    fn commit(&self) -> Result<(), UpdateError> {
        let mut env = GrubEnv::read(&self.cfg.grubenv)?;
        env.set("boot_slot", self.slot.name());
        env.set("trial_slot", "");
        env.set("trial_left", "0");
        env.write(&self.cfg.grubenv)?;
        let release = self.release.clone();
        self.save(|s| {
            s.pending = None;
            s.last = format!("committed {release}");
        })
    }

    /// Downloads, checks and installs `release`, then reboots into it on
    /// trial. A bad bundle is recorded and never tried again; a failed
    /// download is tried again at a later heartbeat. The slot and the
    /// state files are written off the async threads.
    pub async fn install(self: Arc<Self>, release: String) {
        if self.busy.swap(true, Ordering::SeqCst) {
            return;
        }
        let r = release.clone();
        let _ = self.save_blocking(move |s| s.last = format!("installing {r}")).await;
        tracing::info!(%release, slot = self.slot.other().name(), "installing an OS update");
        match self.write_slot(&release).await {
            Ok(_) if !self.wait_to_reboot(&release).await => {
                tracing::info!(%release, "no longer offered; the written slot is not booted");
                let r = release.clone();
                let _ = self
                    .save_blocking(move |s| s.last = format!("cancelled {r}: no longer offered"))
                    .await;
            }
            Ok(verity) => {
                let (me, r) = (self.clone(), release.clone());
                if let Err(e) = blocking(move || me.mark_trial(&r, &verity)).await {
                    tracing::error!(error = %e, "cannot mark the new slot");
                    let r = release.clone();
                    let _ = self.save_blocking(move |s| s.last = format!("failed {r}: {e}")).await;
                }
            }
            Err(e) => {
                tracing::error!(%release, error = %e, "update refused");
                let condemned = e.condemns_release();
                let _ = self
                    .save_blocking(move |s| {
                        s.last = format!("failed {release}: {e}");
                        if condemned && !s.failed.contains(&release) {
                            s.failed.push(release.clone());
                        }
                    })
                    .await;
            }
        }
        self.busy.store(false, Ordering::SeqCst);
    }

    /// Waits, the slot written, until the box may reboot (`gate`): inside
    /// its maintenance window and under the load threshold, or at once for
    /// an emergency; `false` when the release stops being offered first.
    /// The wait shows in the heartbeat's `os.update`.
    async fn wait_to_reboot(self: &Arc<Self>, release: &str) -> bool {
        let mut shown = String::new();
        loop {
            let (offered, emergency) = self.offered.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if offered.as_deref() != Some(release) {
                return false;
            }
            let view = self.link.appliance.status().await;
            let load = (view.connections as f64 / self.link.max_connections.max(1) as f64).min(1.0);
            let now = crate::window::local_seconds_of_day();
            let hold = match gate::may_reboot(&self.link.window, now, load, self.cfg.install_max_load, emergency) {
                Ok(()) => return true,
                Err(h) => h,
            };
            let text = format!(
                "waiting {release}: written to slot {}; {hold}",
                self.slot.other().name()
            );
            if text != shown {
                tracing::info!(%release, "{text}");
                let t = text.clone();
                let _ = self.save_blocking(move |s| s.last = t).await;
                shown = text;
            }
            let pause = match hold {
                gate::Hold::Window(d) => d.clamp(Duration::from_secs(1), GATE_RECHECK),
                gate::Hold::Load { .. } => GATE_RECHECK,
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Marks the written slot for one trial boot, with its signed verity
    /// parameters for the boot entry, and reboots into it.
    fn mark_trial(&self, release: &str, verity: &nearcast_verity::Params) -> Result<(), UpdateError> {
        let other = self.slot.other();
        let mut env = GrubEnv::read(&self.cfg.grubenv)?;
        env.set(other.verity_var(), &verity.encode());
        let other = other.name();
        env.set("trial_slot", other);
        env.set("trial_left", "1");
        env.write(&self.cfg.grubenv)?;
        self.save(|s| {
            s.pending = Some(release.to_string());
            s.last = format!("rebooting into {release} on slot {other}");
        })?;
        tracing::info!(%release, slot = other, "installed; rebooting on trial");
        self.reboot();
        Ok(())
    }

    /// `save`, on a blocking thread.
    async fn save_blocking(self: &Arc<Self>, f: impl FnOnce(&mut State) + Send + 'static) -> Result<(), UpdateError> {
        let me = self.clone();
        blocking(move || me.save(f)).await
    }

    fn reboot(&self) {
        let Some((cmd, args)) = self.cfg.reboot.split_first() else {
            return;
        };
        match std::process::Command::new(cmd).args(args).status() {
            Ok(s) if s.success() => {}
            other => tracing::error!(?other, "reboot command failed"),
        }
    }
}

/// Runs `f` on a blocking thread (file and block-device writes stay off
/// the agent's async threads).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UpdateError> + Send + 'static,
) -> Result<T, UpdateError> {
    tokio::task::spawn_blocking(f).await?
}
