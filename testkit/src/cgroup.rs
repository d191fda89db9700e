//! A slow disk without a slow disk: a cgroup v1 blkio group whose reads
//! from the real block device holding a directory are throttled
//! (`blkio.throttle.read_bps_device`). A child process started in it
//! ([`Throttle::enter_on_exec`]) reads that disk at the set rate; the test
//! process itself is not slowed. The group is removed when dropped.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLKIO: &str = "/sys/fs/cgroup/blkio";

pub struct Throttle {
    dir: PathBuf,
}

impl Throttle {
    /// A group `name` whose reads of the disk under `on` are held to
    /// `read_bps` bytes per second.
    pub fn reads(name: &str, on: &Path, read_bps: u64) -> io::Result<Throttle> {
        if !Path::new(BLKIO).join("blkio.throttle.read_bps_device").exists() {
            return Err(io::Error::other(format!(
                "cgroup v1 blkio is not mounted at {BLKIO}: the slow-disk tests need it (and root)"
            )));
        }
        let dir = Path::new(BLKIO).join(format!("nearcast-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let me = Throttle { dir };
        let device = whole_disk(on)?;
        std::fs::write(
            me.dir.join("blkio.throttle.read_bps_device"),
            format!("{device} {read_bps}\n"),
        )?;
        Ok(me)
    }

    /// Makes `cmd`'s process join this group before it runs.
    pub fn enter_on_exec(&self, cmd: &mut Command) {
        let procs = self.dir.join("cgroup.procs");
        // SAFETY: the closure only writes a file (async-signal-safe enough
        // for a child that has not started other threads).
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        // Its processes may still be exiting: try for a while.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// `major:minor` of the whole disk holding `path` (throttles apply to
/// disks, not partitions).
fn whole_disk(path: &Path) -> io::Result<String> {
    let dev = std::fs::metadata(path)?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if sys.join("partition").exists() {
        let parent = std::fs::read_to_string(sys.join("../dev"))?;
        return Ok(parent.trim().to_string());
    }
    if !sys.exists() {
        return Err(io::Error::other(format!(
            "{} is not on a block device ({major}:{minor}); put the test's files on a real disk",
            path.display()
        )));
    }
    Ok(format!("{major}:{minor}"))
}
