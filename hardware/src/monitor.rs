//! Turning readings into states: per disk ok / degraded / failed, and for
//! the box ok / filling / degraded / updating / failed. The agent polls
//! it, puts the states in its heartbeat and `/metrics`, shows the box's on
//! the panel, and acts on the disks' (no new fill on a degraded disk; a
//! failed one leaves serving and the inventory).

use nearcast_common::control::Health;
use serde::{Deserialize, Serialize};

use crate::disk::DiskReading;
use crate::net::LinkReading;
use crate::sensors::{Sensor, SensorKind};
use crate::Hardware;

/// Where readings turn into trouble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A disk this hot is degraded, °C.
    pub disk_temp_c: i32,
    /// A disk this worn is degraded (NVMe percentage used).
    pub disk_wear_pct: u8,
    /// Any other sensor this hot degrades the box, °C (or its own
    /// critical limit, when lower).
    pub sensor_temp_c: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            disk_temp_c: 70,
            disk_wear_pct: 100,
            sensor_temp_c: 95.0,
        }
    }
}

/// One disk's state with the reason for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiskStatus {
    pub reading: DiskReading,
    pub state: Health,
    pub reason: Option<String>,
}

pub type DiskState = DiskStatus;
/// The box's state (the heartbeat's `health`).
pub type BoxState = Health;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// In the order the monitor was given the devices; `None` for a disk
    /// with no block device configured (a plain directory).
    pub disks: Vec<Option<DiskStatus>>,
    pub link: Option<LinkReading>,
    pub sensors: Vec<Sensor>,
    pub state: Health,
}

pub struct Monitor {
    hw: Box<dyn Hardware>,
    limits: Limits,
    devices: Vec<Option<String>>,
    nic: Option<String>,
    /// Media errors at the first reading: new ones degrade the disk.
    baseline: Vec<Option<u64>>,
}

impl Monitor {
    /// Watches `devices` (block device per content disk, `None` for a
    /// plain directory) and the serving NIC.
    pub fn new(
        hw: impl Hardware + 'static,
        limits: Limits,
        devices: Vec<Option<String>>,
        nic: Option<String>,
    ) -> Monitor {
        let baseline = vec![None; devices.len()];
        Monitor {
            hw: Box::new(hw),
            limits,
            devices,
            nic,
            baseline,
        }
    }

    fn judge(&mut self, i: usize, r: DiskReading) -> DiskStatus {
        let l = &self.limits;
        let warn = r.critical_warning.unwrap_or(0);
        let base = *self.baseline[i].get_or_insert(r.media_errors.unwrap_or(0));
        let (state, reason) = if !r.present {
            (Health::Failed, r.error.clone().or(Some("not present".into())))
        } else if warn & 0b1000 != 0 {
            (Health::Failed, Some("read-only (critical warning bit 3)".into()))
        } else if warn != 0 {
            (Health::Degraded, Some(format!("critical warning {warn:#04x}")))
        } else if r.temperature_c.is_some_and(|t| t >= l.disk_temp_c) {
            (
                Health::Degraded,
                Some(format!("{} °C", r.temperature_c.unwrap_or_default())),
            )
        } else if r.percentage_used.is_some_and(|p| p >= l.disk_wear_pct) {
            (
                Health::Degraded,
                Some(format!("{}% worn", r.percentage_used.unwrap_or_default())),
            )
        } else if r.media_errors.is_some_and(|e| e > base) {
            (
                Health::Degraded,
                Some(format!("{} new media errors", r.media_errors.unwrap_or(0) - base)),
            )
        } else {
            (Health::Ok, None)
        };
        DiskStatus {
            reading: r,
            state,
            reason,
        }
    }

    /// Reads everything once. `activity` is what the box is doing
    /// (`Filling`, `Updating` or `Ok`); trouble outranks it.
    pub fn poll(&mut self, activity: Health) -> Report {
        let readings: Vec<Option<DiskReading>> = self
            .devices
            .iter()
            .map(|d| d.as_ref().map(|dev| self.hw.disk(dev)))
            .collect();
        let disks: Vec<Option<DiskStatus>> = readings
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.map(|r| self.judge(i, r)))
            .collect();
        let link = self.nic.as_ref().map(|n| self.hw.link(n));
        let sensors = self.hw.sensors();
        let known: Vec<&DiskStatus> = disks.iter().flatten().collect();
        let hot = sensors.iter().any(|s| {
            s.kind == SensorKind::Temperature
                && s.value
                    >= s.critical
                        .map_or(self.limits.sensor_temp_c, |c| c.min(self.limits.sensor_temp_c))
        });
        let state = if link.as_ref().is_some_and(|l| !l.carrier)
            || (!known.is_empty() && known.len() == disks.len() && known.iter().all(|d| d.state == Health::Failed))
        {
            Health::Failed
        } else if activity == Health::Updating {
            Health::Updating
        } else if hot || known.iter().any(|d| d.state != Health::Ok) {
            Health::Degraded
        } else {
            activity
        };
        Report {
            disks,
            link,
            sensors,
            state,
        }
    }
}

fn code(h: Health) -> u8 {
    match h {
        Health::Ok => 0,
        Health::Filling => 1,
        Health::Degraded => 2,
        Health::Updating => 3,
        Health::Failed => 4,
    }
}

impl Report {
    /// Prometheus text: states as codes (0 ok, 1 filling, 2 degraded,
    /// 3 updating, 4 failed) and the readings behind them.
    pub fn render(&self) -> String {
        use nearcast_common::prometheus::{Exposition, Kind::Gauge};
        let mut page = Exposition::new();
        page.single(
            "nearcast_hw_state",
            Gauge,
            "Box state (0 ok, 1 filling, 2 degraded, 3 updating, 4 failed).",
            code(self.state),
        );
        let name = "nearcast_hw_disk_state";
        page.family(name, Gauge, "Disk state (0 ok, 2 degraded, 4 failed).");
        for (i, d) in self.disks.iter().enumerate() {
            if let Some(d) = d {
                page.sample(
                    name,
                    &[("disk", &i.to_string()), ("device", &d.reading.device)],
                    code(d.state),
                );
            }
        }
        type Reading = fn(&DiskReading) -> Option<i64>;
        let readings: [(&str, &str, Reading); 2] = [
            ("nearcast_hw_disk_temperature_celsius", "Disk temperature.", |r| {
                r.temperature_c.map(i64::from)
            }),
            ("nearcast_hw_disk_media_errors", "Media errors the disk reports.", |r| {
                r.media_errors.and_then(|e| i64::try_from(e).ok())
            }),
        ];
        for (name, help, value) in readings {
            page.family(name, Gauge, help);
            for (i, d) in self.disks.iter().enumerate() {
                if let Some(v) = d.as_ref().and_then(|d| value(&d.reading)) {
                    page.sample(name, &[("disk", &i.to_string())], v);
                }
            }
        }
        if let Some(l) = &self.link {
            let iface = [("iface", l.iface.as_str())];
            page.family("nearcast_hw_link_up", Gauge, "NIC carrier.").sample(
                "nearcast_hw_link_up",
                &iface,
                u8::from(l.carrier),
            );
            if let Some(s) = l.speed_mbps {
                page.family("nearcast_hw_link_speed_mbps", Gauge, "NIC speed.").sample(
                    "nearcast_hw_link_speed_mbps",
                    &iface,
                    s,
                );
            }
        }
        let name = "nearcast_hw_sensor";
        page.family(name, Gauge, "hwmon readings (°C or RPM).");
        for s in &self.sensors {
            let kind = if s.kind == SensorKind::Fan {
                "fan"
            } else {
                "temperature"
            };
            page.sample(name, &[("chip", &s.chip), ("label", &s.label), ("kind", kind)], s.value);
        }
        page.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::HealthLog;
    use crate::sim::Sim;
    use crate::Host;

    fn healthy() -> HealthLog {
        HealthLog {
            critical_warning: 0,
            temperature_c: 40,
            available_spare_pct: 100,
            percentage_used: 3,
            media_errors: 0,
        }
    }

    #[test]
    fn disk_and_box_states_follow_the_readings() {
        let root = nearcast_testkit::TempDir::new("hw-monitor");
        let sim = Sim::new(&root);
        let nvme = sim.nvme(0, &healthy()).unwrap();
        sim.sata("sdb", "running", 0, 35).unwrap();
        sim.nic("eth0", true, 10_000).unwrap();
        sim.hwmon(0, "coretemp", &[45.0], &[1200]).unwrap();
        let devices = vec![Some(nvme.clone()), Some("sdb".into()), None];
        let mut m = Monitor::new(Host::at(&root), Limits::default(), devices, Some("eth0".into()));
        let states =
            |r: &Report| -> Vec<Option<Health>> { r.disks.iter().map(|d| d.as_ref().map(|d| d.state)).collect() };

        let r = m.poll(Health::Ok);
        assert_eq!(
            (r.state, states(&r)),
            (Health::Ok, vec![Some(Health::Ok), Some(Health::Ok), None])
        );
        assert_eq!(
            r.link.as_ref().map(|l| (l.carrier, l.speed_mbps)),
            Some((true, Some(10_000)))
        );
        assert_eq!(m.poll(Health::Filling).state, Health::Filling);

        // New media errors on the NVMe disk: degraded, and so is the box.
        sim.nvme(
            0,
            &HealthLog {
                media_errors: 2,
                ..healthy()
            },
        )
        .unwrap();
        let r = m.poll(Health::Filling);
        assert_eq!((r.state, states(&r)[0]), (Health::Degraded, Some(Health::Degraded)));
        assert!(r
            .render()
            .contains("nearcast_hw_disk_state{disk=\"0\",device=\"nvme0n1\"} 2"));
        // Read-only: failed. A hot SATA disk: degraded.
        sim.nvme(
            0,
            &HealthLog {
                critical_warning: 0b1000,
                ..healthy()
            },
        )
        .unwrap();
        sim.sata("sdb", "running", 0, 75).unwrap();
        let r = m.poll(Health::Ok);
        assert_eq!(states(&r)[..2], [Some(Health::Failed), Some(Health::Degraded)]);
        // The SATA disk goes offline, then is pulled: failed. The plain
        // third disk still serves, so the box is degraded, not failed.
        sim.sata("sdb", "offline", 0, 35).unwrap();
        assert_eq!(states(&m.poll(Health::Ok))[1], Some(Health::Failed));
        sim.remove("sdb").unwrap();
        let r = m.poll(Health::Ok);
        assert_eq!(r.state, Health::Degraded);
        assert_eq!(
            r.disks[1].as_ref().and_then(|d| d.reason.clone()).as_deref(),
            Some("device is gone")
        );
        // With every disk failed the box is failed.
        let mut only = Monitor::new(
            Host::at(&root),
            Limits::default(),
            vec![Some(nvme.clone()), Some("sdb".into())],
            None,
        );
        assert_eq!(only.poll(Health::Ok).state, Health::Failed);
        // A corrupt health log is a failed read, not a crash.
        std::fs::write(root.join("dev/nvme0"), b"short").unwrap();
        assert_eq!(states(&m.poll(Health::Ok))[0], Some(Health::Failed));
    }

    #[test]
    fn link_down_or_a_hot_chip() {
        let root = nearcast_testkit::TempDir::new("hw-link");
        let sim = Sim::new(&root);
        sim.nic("eth0", true, 25_000).unwrap();
        sim.hwmon(0, "coretemp", &[99.0], &[]).unwrap();
        let mut m = Monitor::new(Host::at(&root), Limits::default(), vec![], Some("eth0".into()));
        assert_eq!(m.poll(Health::Ok).state, Health::Degraded, "hot");
        sim.nic("eth0", false, -1).unwrap();
        let r = m.poll(Health::Ok);
        assert_eq!(
            (r.state, r.link.as_ref().and_then(|l| l.speed_mbps)),
            (Health::Failed, None)
        );
        assert!(r.render().contains("nearcast_hw_link_up{iface=\"eth0\"} 0"));
        assert_eq!(
            m.poll(Health::Updating).state,
            Health::Failed,
            "trouble outranks activity"
        );
    }
}

#[cfg(test)]
mod double {
    use super::*;

    /// A source that is not a filesystem: the monitor only needs the trait.
    struct Fixed(u8);

    impl Hardware for Fixed {
        fn disk(&self, dev: &str) -> DiskReading {
            DiskReading {
                device: dev.into(),
                present: true,
                critical_warning: Some(self.0),
                ..DiskReading::default()
            }
        }
        fn link(&self, iface: &str) -> LinkReading {
            LinkReading {
                iface: iface.into(),
                present: true,
                carrier: true,
                speed_mbps: Some(100_000),
                duplex: None,
                operstate: None,
            }
        }
        fn sensors(&self) -> Vec<Sensor> {
            Vec::new()
        }
    }

    #[test]
    fn any_hardware_source_drives_the_monitor() {
        let mut m = Monitor::new(
            Fixed(0b0001),
            Limits::default(),
            vec![Some("d0".into())],
            Some("n0".into()),
        );
        let r = m.poll(Health::Ok);
        assert_eq!(
            (r.state, r.disks[0].as_ref().map(|d| d.state)),
            (Health::Degraded, Some(Health::Degraded))
        );
    }
}
