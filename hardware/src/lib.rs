//! The box's hardware, as the control agent watches and drives it: disk
//! health (NVMe health log through the admin ioctl, SATA through sysfs),
//! NIC link, hwmon sensors, and front-panel LEDs and buttons behind
//! `embedded-hal` traits.
//!
//! One backend, `Host`, reads a root directory shaped like a Linux system:
//! `/` on a real box, a directory tree in tests and in the QEMU image (the
//! simulated backend). Where the real box uses a device node (the NVMe
//! admin ioctl on `/dev/nvme0`), a regular file at that path holds the
//! bytes the ioctl would return.

pub mod disk;
pub mod host;
pub mod led;
pub mod monitor;
pub mod net;
pub mod nvme;
pub mod sensors;
pub mod sim;

pub use host::Host;

use disk::DiskReading;
use net::LinkReading;
use sensors::Sensor;

/// What the box watches. `Host` reads it from a Linux root (the real one
/// or a simulated tree); another source (a BMC, a test double) implements
/// the same calls.
pub trait Hardware: Send {
    /// Health of block device `dev` (`nvme0n1`, `sdb`).
    fn disk(&self, dev: &str) -> DiskReading;
    /// Link state of network interface `iface`.
    fn link(&self, iface: &str) -> LinkReading;
    /// Every temperature and fan sensor.
    fn sensors(&self) -> Vec<Sensor>;
}

impl Hardware for Host {
    fn disk(&self, dev: &str) -> DiskReading {
        disk::read(self, dev)
    }

    fn link(&self, iface: &str) -> LinkReading {
        net::read(self, iface)
    }

    fn sensors(&self) -> Vec<Sensor> {
        sensors::read_all(self)
    }
}
pub use monitor::{BoxState, DiskState, Limits, Monitor, Report};
