//! A FUSE filesystem, served by the test process, that passes through to
//! a real directory and fails or crawls where a test says: operations on
//! the files under a path, from a given offset on, answer `EIO` or wait
//! before answering. The kernel's own FUSE driver sits between it and the
//! program under test, so that program sees exactly what a dying or slow
//! disk gives it (`EIO` from `read`, a `write` or `fsync` that takes its
//! time) through the page cache, readahead and io_uring as usual.
//!
//! What files, directories and renames need is implemented (lookup,
//! getattr/setattr, open/create, read/write, fsync, mkdir, unlink, rmdir,
//! rename, readdir, statfs); links and the rest answer `ENOSYS`. Mounting
//! needs root (the `mount` syscall with `/dev/fuse`).

mod server;

use std::ffi::CString;
use std::fs::File;
use std::io;
#[cfg(test)]
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
#[cfg(test)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What goes wrong, and where.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Files whose path (relative to the mirrored directory) starts with
    /// this; `""` is every file.
    pub files: String,
    /// Operations that reach this offset fail or wait (`fsync`: any).
    pub from: u64,
    pub kind: FaultKind,
    pub on: FaultOn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The operation answers `EIO` (a bad sector).
    Eio,
    /// The operation is answered after this long (a crawling disk).
    Delay(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOn {
    Reads,
    /// Writes and `fsync`.
    Writes,
    /// Looking a name up in a directory (a path's every component).
    Lookups,
}

impl Fault {
    /// Reads of `file` from `from` on answer EIO.
    pub fn eio(file: &str, from: u64) -> Fault {
        Fault {
            files: file.into(),
            from,
            kind: FaultKind::Eio,
            on: FaultOn::Reads,
        }
    }

    /// Every write and fsync of the files under `files` takes `delay`.
    pub fn slow_writes(files: &str, delay: Duration) -> Fault {
        Fault {
            files: files.into(),
            from: 0,
            kind: FaultKind::Delay(delay),
            on: FaultOn::Writes,
        }
    }

    /// Every lookup of a path under `files` takes `delay` (a disk whose
    /// directories and inodes are not cached, and crawl).
    pub fn slow_lookups(files: &str, delay: Duration) -> Fault {
        Fault {
            files: files.into(),
            from: 0,
            kind: FaultKind::Delay(delay),
            on: FaultOn::Lookups,
        }
    }

    fn hits(&self, on: FaultOn, rel: &str, offset: u64, len: u64) -> bool {
        self.on == on && rel.starts_with(&self.files) && offset + len > self.from
    }
}

/// A mounted fault filesystem; unmounted when dropped.
pub struct FaultFs {
    mountpoint: PathBuf,
    /// The connection's id under /sys/fs/fuse/connections.
    conn: Option<u64>,
    state: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the test and the server thread share.
#[derive(Default)]
struct Shared {
    faults: Mutex<Vec<Fault>>,
    reads: Mutex<u64>,
}

impl Shared {
    fn fault(&self, on: FaultOn, rel: &str, offset: u64, len: u64) -> Option<FaultKind> {
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.iter().find(|f| f.hits(on, rel, offset, len)).map(|f| f.kind)
    }
}

impl FaultFs {
    /// Mirrors `backing` at `mountpoint` (both created if missing).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<FaultFs> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(mountpoint)?;
        let dev = File::options().read(true).write(true).open("/dev/fuse")?;
        let opts = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072",
            dev.as_raw_fd()
        );
        let c = |s: &[u8]| CString::new(s).map_err(|_| io::Error::other("NUL in a path"));
        let (src, target, fstype, data) = (
            c(b"nearcast-faultfs")?,
            c(mountpoint.as_os_str().as_bytes())?,
            c(b"fuse")?,
            c(opts.as_bytes())?,
        );
        // SAFETY: NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let state = Arc::new(Shared::default());
        let mut server = server::Server::new(dev, backing.to_path_buf(), state.clone());
        let thread = std::thread::Builder::new()
            .name("faultfs".into())
            .spawn(move || server.run())?;
        let conn = std::fs::metadata(mountpoint)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        Ok(FaultFs {
            mountpoint: mountpoint.to_path_buf(),
            conn,
            state,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.state.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// READ requests the kernel sent so far.
    pub fn reads(&self) -> u64 {
        *self.state.reads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        // Files still open on it would keep the connection, and so the
        // server thread, alive; and this process could not exit while one
        // of them waits on a server that is gone. Abort the connection:
        // they get ENOTCONN from now on.
        if let Some(conn) = self.conn {
            let abort = format!("/sys/fs/fuse/connections/{conn}/abort");
            if std::fs::write(&abort, "1").is_err() && mount_fusectl() {
                let _ = std::fs::write(&abort, "1");
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Mounts the FUSE control filesystem where the kernel documents it.
fn mount_fusectl() -> bool {
    let (Ok(src), Ok(target)) = (CString::new("fusectl"), CString::new("/sys/fs/fuse/connections")) else {
        return false;
    };
    // SAFETY: NUL-terminated strings that outlive the call.
    unsafe { libc::mount(src.as_ptr(), target.as_ptr(), src.as_ptr(), 0, std::ptr::null()) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The scratch directory (declared first, so dropped after the mount)
    /// and the backing and mount directories in it.
    fn dirs(name: &str) -> (crate::TempDir, PathBuf, PathBuf) {
        let d = crate::TempDir::new(&format!("faultfs-{name}"));
        let (backing, mnt) = (d.join("backing"), d.join("mnt"));
        (d, backing, mnt)
    }

    #[test]
    fn passes_files_directories_and_renames_through() {
        let (_dir, backing, mnt) = dirs("rw");
        let fs = FaultFs::mount(&backing, &mnt).unwrap();
        std::fs::create_dir_all(mnt.join("t/r")).unwrap();
        let mut f = File::create(mnt.join("t/r/.tmp")).unwrap();
        f.write_all(b"hello world").unwrap();
        f.sync_all().unwrap();
        drop(f);
        std::fs::rename(mnt.join("t/r/.tmp"), mnt.join("t/r/seg")).unwrap();
        assert_eq!(std::fs::read(backing.join("t/r/seg")).unwrap(), b"hello world");
        assert_eq!(std::fs::read(mnt.join("t/r/seg")).unwrap(), b"hello world");
        let names: Vec<_> = std::fs::read_dir(mnt.join("t/r"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["seg"]);
        // A rename over an open file: the open one keeps its bytes.
        let old = File::open(mnt.join("t/r/seg")).unwrap();
        std::fs::write(mnt.join("t/r/.new"), b"second").unwrap();
        std::fs::rename(mnt.join("t/r/.new"), mnt.join("t/r/seg")).unwrap();
        let mut was = String::new();
        (&old).read_to_string(&mut was).unwrap();
        assert_eq!(was, "hello world");
        assert_eq!(std::fs::read(mnt.join("t/r/seg")).unwrap(), b"second");
        std::fs::remove_file(mnt.join("t/r/seg")).unwrap();
        std::fs::remove_dir(mnt.join("t/r")).unwrap();
        assert!(!backing.join("t/r").exists());
        drop(fs);
    }

    #[test]
    fn injects_eio_and_delays() {
        let (_dir, backing, mnt) = dirs("faults");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::write(backing.join("bad"), vec![7u8; 256 * 1024]).unwrap();
        let fs = FaultFs::mount(&backing, &mnt).unwrap();
        fs.set_faults(vec![
            Fault::eio("bad", 128 * 1024),
            Fault::slow_writes("slow", Duration::from_millis(300)),
        ]);
        let f = File::open(mnt.join("bad")).unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(f.read_at(&mut buf, 0).is_ok(), "before the bad offset");
        let e = f.read_at(&mut buf, 200 * 1024).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        let t = std::time::Instant::now();
        let mut w = File::create(mnt.join("slow")).unwrap();
        w.write_all(b"x").unwrap();
        w.sync_all().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(600),
            "a write and an fsync, each delayed"
        );
        assert!(fs.reads() > 0);
    }
}
