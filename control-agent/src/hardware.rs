//! Watching the hardware and acting on it: each heartbeat polls the
//! monitor, sets every disk's health, and on a change tells the appliance
//! (a failed disk leaves serving at once, a restored one comes back) and
//! the inventory (a failed disk's titles leave it, so steering stops
//! sending players there; a restored disk's intact titles return; a
//! replaced, empty one is refilled by the next fill). The panel LEDs show
//! the box's state.
//!
//! Reads the appliance saw fail on a disk (its status's `read_errors`)
//! count like the disk's own media errors: new ones since the agent
//! started make the disk degraded (no new fill; it still serves).

use std::sync::Mutex;

use nearcast_common::appliance::ApplianceStatus;
use nearcast_common::control::Health;
use nearcast_hardware::led::{Led, Panel};
use nearcast_hardware::{Host, Monitor, Report};

use crate::appliance::Appliance;
use crate::config::Config;
use crate::disks::{Disk, DiskIo};
use crate::inventory::Inventory;

/// What the watch acts on.
pub struct Watched<'a> {
    pub disks: &'a [Disk],
    pub inventory: &'a Inventory,
    pub appliance: &'a Appliance,
    /// What the appliance said at this heartbeat.
    pub status: &'a ApplianceStatus,
    /// A fill is running (the box's state shows it).
    pub filling: bool,
}

pub struct HardwareWatch {
    monitor: Mutex<Monitor>,
    panel: Mutex<Option<Panel<Led>>>,
    last: Mutex<Option<Report>>,
    /// The appliance's read errors per disk when first seen (or when it
    /// restarted and counted from zero again).
    read_errors: Mutex<Vec<Option<u64>>>,
}

impl HardwareWatch {
    pub fn new(config: &Config) -> HardwareWatch {
        let hw = &config.hardware;
        let host = Host::at(&hw.root);
        let devices = (0..config.disks.len())
            .map(|i| hw.devices.get(i).filter(|d| !d.is_empty()).cloned())
            .collect();
        let panel = match (&hw.led_ok, &hw.led_fault) {
            (Some(ok), Some(fault)) => Some(Panel {
                ok: Led::new(&host, ok),
                fault: Led::new(&host, fault),
            }),
            _ => None,
        };
        HardwareWatch {
            monitor: Mutex::new(Monitor::new(host, hw.limits.clone(), devices, hw.nic.clone())),
            panel: Mutex::new(panel),
            last: Mutex::new(None),
            read_errors: Mutex::new(vec![None; config.disks.len()]),
        }
    }

    /// The last report as Prometheus text (empty before the first poll).
    pub fn render(&self) -> String {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Report::render)
            .unwrap_or_default()
    }

    /// Whether the appliance saw reads fail on disk `i` since the baseline.
    fn new_read_errors(&self, i: usize, appliance: &ApplianceStatus) -> Option<u64> {
        let seen = appliance.disks.get(i)?.read_errors;
        let mut baselines = self.read_errors.lock().unwrap_or_else(|p| p.into_inner());
        let base = baselines.get_mut(i)?;
        match *base {
            Some(b) if seen >= b => (seen > b).then_some(seen - b),
            // First reading, or the appliance restarted (it counts anew).
            _ => {
                *base = Some(seen);
                None
            }
        }
    }

    /// Polls the hardware, applies disk changes, and returns the box's
    /// state.
    pub async fn check(&self, w: &Watched<'_>) -> Health {
        let activity = if w.filling { Health::Filling } else { Health::Ok };
        let report = self.monitor.lock().unwrap_or_else(|p| p.into_inner()).poll(activity);
        let mut changes = Vec::new();
        for (i, disk) in w.disks.iter().enumerate() {
            let now = self.disk_state(i, disk, &report, w.status);
            let before = disk.set_health(now);
            if (before == Health::Failed) != (now == Health::Failed) {
                changes.push((i, now == Health::Failed));
            }
        }
        for (i, failed) in changes {
            apply(w, i, failed).await;
        }
        // The monitor judged the watched devices; plain directories count too.
        let all_failed = w.disks.iter().all(|d| d.health() == Health::Failed);
        let any_bad = w.disks.iter().any(|d| d.health() != Health::Ok);
        let state = match report.state {
            s @ (Health::Failed | Health::Updating) => s,
            _ if all_failed => Health::Failed,
            _ if any_bad => Health::Degraded,
            s => s,
        };
        if let Some(panel) = self.panel.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            if let Err(e) = panel.show(state) {
                tracing::debug!(error = %e, "front panel");
            }
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        state
    }

    /// Disk `i`'s state: the monitor's for a device it watches; for a
    /// plain directory, whether its thread last found it readable (and is
    /// not hung); either way degraded by new read errors the appliance saw.
    fn disk_state(&self, i: usize, disk: &Disk, report: &Report, status: &ApplianceStatus) -> Health {
        let mut now = match report.disks.get(i).and_then(Option::as_ref) {
            Some(s) => s.state,
            None if disk.readable() && !disk.stuck() => Health::Ok,
            None => Health::Failed,
        };
        if let Some(n) = self.new_read_errors(i, status) {
            if now == Health::Ok {
                if disk.health() != Health::Degraded {
                    tracing::warn!(disk = %disk.name(), errors = n, "the appliance saw reads fail: degraded");
                }
                now = Health::Degraded;
            }
        }
        now
    }
}

/// Disk `i` failed (or came back): the appliance and the inventory hear of it.
async fn apply(w: &Watched<'_>, i: usize, failed: bool) {
    let disk = &w.disks[i];
    tracing::warn!(disk = %disk.name(), failed, "disk service state changes");
    if let Err(e) = w.appliance.set_disk_failed(i, failed).await {
        tracing::error!(error = %e, "cannot tell the appliance");
    }
    if failed {
        for title in w.inventory.on_disk(i) {
            w.inventory.remove(&title);
        }
        return;
    }
    match disk.run(DiskIo::records).await {
        Ok(records) => w.inventory.take_back(i, records),
        Err(e) => tracing::error!(disk = %disk.name(), error = %e, "cannot read the restored disk's titles"),
    }
}
