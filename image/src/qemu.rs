//! Boots a disk image in QEMU the way the box boots: OVMF (UEFI) → GRUB
//! → slot, a virtio disk and NIC, user networking with the box's ports
//! forwarded to loopback, the serial console in a log file, and an
//! i6300esb watchdog that resets a hung guest. One QEMU process lives
//! across guest reboots, like a box across power cycles; `kill` is the
//! power cut.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ImageError;

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The box's ports a VM forwards: serving, appliance admin, agent admin,
/// serving over HTTPS.
pub const GUEST_PORTS: [u16; 4] = [8080, 9090, 9190, 8443];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere.
    Tcg,
    /// Hardware virtualisation: needs a working /dev/kvm.
    Kvm,
}

pub struct Vm {
    child: Option<Child>,
    pub serial_log: PathBuf,
    /// (guest port, host port on 127.0.0.1) for `GUEST_PORTS`.
    pub forwards: Vec<(u16, u16)>,
    pub started: Instant,
}

fn free_port() -> Result<u16, ImageError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ImageError::Qemu(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ImageError::Qemu(e.to_string()))
}

impl Vm {
    /// Free loopback ports for `GUEST_PORTS`, to pass to `start` (pick
    /// them first when the box's config must name them).
    pub fn pick_forwards() -> Result<Vec<(u16, u16)>, ImageError> {
        GUEST_PORTS.iter().map(|&g| free_port().map(|h| (g, h))).collect()
    }

    /// Boots `disk` (used in place: the guest writes to it). `work` gets
    /// the firmware's variable store and the serial log (appended to, so
    /// one log covers power cycles).
    pub fn start(disk: &Path, work: &Path, accel: Accel, forwards: &[(u16, u16)]) -> Result<Vm, ImageError> {
        crate::tools::check(&[("qemu-system-x86_64", "qemu-system-x86"), (OVMF_CODE, "ovmf")])?;
        std::fs::create_dir_all(work).map_err(|e| ImageError::io(work, e))?;
        let vars = work.join("OVMF_VARS.fd");
        if !vars.exists() {
            std::fs::copy(OVMF_VARS, &vars).map_err(|e| ImageError::io(&vars, e))?;
        }
        let serial_log = work.join("serial.log");
        let forwards = forwards.to_vec();
        let netdev: String = std::iter::once("user,id=n0".to_string())
            .chain(forwards.iter().map(|(g, h)| format!("hostfwd=tcp:127.0.0.1:{h}-:{g}")))
            .collect::<Vec<_>>()
            .join(",");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-m", "1024", "-smp", "2"])
            .args(["-accel", if accel == Accel::Kvm { "kvm" } else { "tcg" }])
            .args(["-display", "none", "-monitor", "none", "-nodefaults"])
            .arg("-chardev")
            .arg(format!("file,id=s0,append=on,path={}", serial_log.display()))
            .args(["-serial", "chardev:s0"])
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()))
            .arg("-drive")
            .arg(format!("if=none,id=d0,format=raw,cache=unsafe,file={}", disk.display()))
            .args(["-device", "virtio-blk-pci,drive=d0,bootindex=0"])
            .args(["-netdev", &netdev])
            // No option ROM: no PXE attempt before the disk.
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(["-device", "virtio-rng-pci"])
            .args(["-device", "i6300esb", "-action", "watchdog=reset"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| ImageError::Qemu(format!("cannot start qemu-system-x86_64: {e}")))?;
        Ok(Vm {
            child: Some(child),
            serial_log,
            forwards,
            started: Instant::now(),
        })
    }

    /// `http://127.0.0.1:{host port}` for a guest port of `GUEST_PORTS`.
    pub fn url(&self, guest_port: u16) -> String {
        format!("http://127.0.0.1:{}", self.host_port(guest_port))
    }

    /// The host port on 127.0.0.1 that reaches `guest_port`.
    pub fn host_port(&self, guest_port: u16) -> u16 {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map_or(0, |(_, h)| *h)
    }

    /// Everything the guest printed on its serial console so far.
    pub fn serial(&self) -> String {
        std::fs::read(&self.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the console shows `needle` `count` times in all.
    pub fn wait_serial(&mut self, needle: &str, count: usize, timeout: Duration) -> Result<(), ImageError> {
        let end = Instant::now() + timeout;
        loop {
            if self.serial().matches(needle).count() >= count {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(ImageError::Qemu(format!("QEMU exited ({status}) before '{needle}'")));
            }
            if Instant::now() > end {
                return Err(ImageError::Qemu(format!(
                    "'{needle}' (×{count}) not on the console within {timeout:?}; console ends:\n{}",
                    tail(&self.serial(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                Some(format!("{status}: {}", err.trim()))
            }
            _ => None,
        }
    }

    /// Pulls the plug: no shutdown, nothing flushed by the guest.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
