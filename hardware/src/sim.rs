//! Writing a simulated hardware tree (the shape `Host` reads): for tests,
//! and for the QEMU image, whose virtual disks have no health log.

use std::io;
use std::path::{Path, PathBuf};

use crate::nvme::{encode, HealthLog};

pub struct Sim {
    pub root: PathBuf,
}

fn put(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}

impl Sim {
    pub fn new(root: impl Into<PathBuf>) -> Sim {
        Sim { root: root.into() }
    }

    /// An NVMe namespace `nvme{n}n1` with this health log (written again
    /// to change it).
    pub fn nvme(&self, n: u32, log: &HealthLog) -> io::Result<String> {
        let dev = format!("nvme{n}n1");
        std::fs::create_dir_all(self.root.join(format!("sys/block/{dev}")))?;
        put(&self.root.join(format!("dev/nvme{n}")), &encode(log))?;
        Ok(dev)
    }

    /// A SATA/SCSI disk with its driver state, I/O error count and
    /// drivetemp temperature.
    pub fn sata(&self, dev: &str, state: &str, ioerr: u64, temp_c: i32) -> io::Result<()> {
        let d = self.root.join(format!("sys/block/{dev}/device"));
        put(&d.join("state"), format!("{state}\n").as_bytes())?;
        put(&d.join("ioerr_cnt"), format!("{ioerr:#x}\n").as_bytes())?;
        put(
            &d.join("hwmon/hwmon9/temp1_input"),
            format!("{}\n", temp_c * 1000).as_bytes(),
        )
    }

    /// Pulls a disk out (its block device disappears).
    pub fn remove(&self, dev: &str) -> io::Result<()> {
        std::fs::remove_dir_all(self.root.join(format!("sys/block/{dev}")))
    }

    pub fn nic(&self, iface: &str, carrier: bool, speed_mbps: i64) -> io::Result<()> {
        let d = self.root.join(format!("sys/class/net/{iface}"));
        put(&d.join("carrier"), if carrier { b"1\n" } else { b"0\n" })?;
        put(&d.join("speed"), format!("{speed_mbps}\n").as_bytes())?;
        put(&d.join("duplex"), b"full\n")?;
        put(&d.join("operstate"), if carrier { b"up\n" } else { b"down\n" })
    }

    /// A hwmon chip with temperatures (°C) and fans (RPM).
    pub fn hwmon(&self, index: u32, chip: &str, temps_c: &[f64], fans_rpm: &[u64]) -> io::Result<()> {
        let d = self.root.join(format!("sys/class/hwmon/hwmon{index}"));
        put(&d.join("name"), format!("{chip}\n").as_bytes())?;
        for (i, t) in temps_c.iter().enumerate() {
            put(
                &d.join(format!("temp{}_input", i + 1)),
                format!("{}\n", (t * 1000.0) as i64).as_bytes(),
            )?;
        }
        for (i, f) in fans_rpm.iter().enumerate() {
            put(&d.join(format!("fan{}_input", i + 1)), format!("{f}\n").as_bytes())?;
        }
        Ok(())
    }

    pub fn led(&self, name: &str) -> io::Result<()> {
        let d = self.root.join(format!("sys/class/leds/{name}"));
        put(&d.join("max_brightness"), b"1\n")?;
        put(&d.join("brightness"), b"0\n")
    }
}
