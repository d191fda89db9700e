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
pub use monitor::{BoxState, DiskState, Limits, Monitor, Report};
