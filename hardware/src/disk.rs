//! One disk's health reading: NVMe from its health log, SATA/SCSI from
//! sysfs (device state, I/O error count, drivetemp hwmon temperature).

use serde::Serialize;

use crate::host::Host;
use crate::nvme;

/// What could be read about a block device; `None` where the device type
/// does not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DiskReading {
    pub device: String,
    /// The device is there and its driver says it is running.
    pub present: bool,
    pub temperature_c: Option<i32>,
    pub percentage_used: Option<u8>,
    pub media_errors: Option<u64>,
    pub critical_warning: Option<u8>,
    /// Why the health could not be read, if it could not.
    pub error: Option<String>,
}

/// Reads block device `dev` (`nvme0n1`, `sdb`).
pub fn read(host: &Host, dev: &str) -> DiskReading {
    let mut r = DiskReading {
        device: dev.to_string(),
        ..DiskReading::default()
    };
    if !host.path(&format!("sys/block/{dev}")).exists() {
        r.error = Some("device is gone".into());
        return r;
    }
    if let Some(ctrl) = nvme_controller(dev) {
        match nvme::health_log(&host.path(&format!("dev/{ctrl}"))) {
            Ok(log) => {
                r.present = true;
                r.temperature_c = Some(log.temperature_c);
                r.percentage_used = Some(log.percentage_used);
                r.media_errors = Some(log.media_errors);
                r.critical_warning = Some(log.critical_warning);
            }
            Err(e) => r.error = Some(e.to_string()),
        }
        return r;
    }
    let state = host.read(&format!("sys/block/{dev}/device/state"));
    r.present = state.as_deref().map_or(true, |s| s == "running");
    if !r.present {
        r.error = Some(format!("device state {}", state.unwrap_or_default()));
    }
    r.media_errors = host.read_u64(&format!("sys/block/{dev}/device/ioerr_cnt"));
    r.temperature_c = drivetemp(host, dev);
    r
}

/// `nvme0n1` → `nvme0`.
fn nvme_controller(dev: &str) -> Option<&str> {
    let rest = dev.strip_prefix("nvme")?;
    let n = rest.find('n')?;
    Some(&dev[..4 + n])
}

/// The drivetemp hwmon under the device, in °C.
fn drivetemp(host: &Host, dev: &str) -> Option<i32> {
    let dir = host.path(&format!("sys/block/{dev}/device/hwmon"));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find_map(|e| {
            crate::host::read_attr(&e.path().join("temp1_input"))
                .ok()?
                .parse::<i32>()
                .ok()
        })
        .map(|milli| milli / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_names() {
        assert_eq!(nvme_controller("nvme0n1"), Some("nvme0"));
        assert_eq!(nvme_controller("nvme12n3"), Some("nvme12"));
        assert_eq!(nvme_controller("sda"), None);
    }
}
