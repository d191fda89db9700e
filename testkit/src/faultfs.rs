//! A FUSE filesystem, served by the test process, that mirrors a directory
//! read-only and fails or crawls where a test says: reads of one file from
//! a given offset on answer `EIO`, or wait before answering. The kernel's
//! own FUSE driver sits between it and the program under test, so that
//! program sees exactly what a dying or slow disk gives it (`EIO` from a
//! read, a read that takes its time) through the page cache, readahead and
//! io_uring as usual.
//!
//! Only what serving files needs is implemented (lookup, getattr, open,
//! read, release, statfs, an empty readdir); anything else answers
//! `ENOSYS`. Mounting needs root (the `mount` syscall with `/dev/fuse`).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What goes wrong, and where.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The file, relative to the mirrored directory (`t/r/seg.m4s`).
    pub file: String,
    /// Reads that reach this offset fail or wait.
    pub from: u64,
    pub kind: FaultKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The read answers `EIO` (a bad sector).
    Eio,
    /// The read is answered after this long (a crawling disk).
    Delay(Duration),
}

/// A mounted fault filesystem; unmounted when dropped.
pub struct FaultFs {
    mountpoint: PathBuf,
    faults: Arc<Mutex<Vec<Fault>>>,
    reads: Arc<Mutex<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultFs {
    /// Mirrors `backing` at `mountpoint` (created if missing).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<FaultFs> {
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
        let faults = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(Mutex::new(0));
        let mut server = Server {
            dev: Arc::new(dev),
            backing: backing.to_path_buf(),
            nodes: HashMap::from([(1, PathBuf::new())]),
            inos: HashMap::from([(PathBuf::new(), 1)]),
            files: HashMap::new(),
            next_fh: 1,
            faults: faults.clone(),
            reads: reads.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("faultfs".into())
            .spawn(move || server.run())?;
        Ok(FaultFs {
            mountpoint: mountpoint.to_path_buf(),
            faults,
            reads,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// READ requests the kernel sent so far.
    pub fn reads(&self) -> u64 {
        *self.reads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// Opcodes and sizes from <linux/fuse.h>; we speak protocol 7.31.
const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const INTERRUPT: u32 = 36;
const BATCH_FORGET: u32 = 42;
const IN_HEADER: usize = 40;
const FUSE_ASYNC_READ: u32 = 1;

struct Server {
    dev: Arc<File>,
    backing: PathBuf,
    /// Node id → path relative to `backing`.
    nodes: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    files: HashMap<u64, (File, String)>,
    next_fh: u64,
    faults: Arc<Mutex<Vec<Fault>>>,
    reads: Arc<Mutex<u64>>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_ne_bytes(a)
    })
}

/// One reply: the out header and `body`, or just the header with `-errno`.
fn reply(dev: &File, unique: u64, result: Result<&[u8], i32>) {
    let (error, body) = match result {
        Ok(b) => (0i32, b),
        Err(e) => (-e, &[][..]),
    };
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&error.to_ne_bytes());
    msg.extend_from_slice(&unique.to_ne_bytes());
    msg.extend_from_slice(body);
    // An interrupted request's reply is refused (ENOENT); nothing to do.
    let _ = (&*dev).write(&msg);
}

/// `struct fuse_attr` (88 bytes) for a file's metadata.
fn attr(ino: u64, m: &std::fs::Metadata) -> Vec<u8> {
    let mut a = Vec::with_capacity(88);
    for v in [
        ino,
        m.size(),
        m.blocks(),
        m.atime() as u64,
        m.mtime() as u64,
        m.ctime() as u64,
    ] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    for v in [
        m.atime_nsec() as u32,
        m.mtime_nsec() as u32,
        m.ctime_nsec() as u32,
        m.mode(),
        m.nlink() as u32,
        m.uid(),
        m.gid(),
        0,
        4096,
        0,
    ] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    a
}

impl Server {
    fn run(&mut self) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match (&*self.dev).read(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::ENOENT)) => continue,
                // ENODEV: unmounted.
                Err(_) => return,
            };
            if n < IN_HEADER {
                continue;
            }
            let req = &buf[..n];
            let (opcode, unique, node) = (u32_at(req, 4), u64_at(req, 8), u64_at(req, 16));
            self.handle(opcode, unique, node, &req[IN_HEADER..]);
        }
    }

    fn handle(&mut self, opcode: u32, unique: u64, node: u64, arg: &[u8]) {
        let dev = self.dev.clone();
        match opcode {
            INIT => {
                let mut out = Vec::with_capacity(64);
                let readahead = u32_at(arg, 8).min(128 * 1024);
                for v in [7u32, 31, readahead, FUSE_ASYNC_READ] {
                    out.extend_from_slice(&v.to_ne_bytes());
                }
                out.extend_from_slice(&16u16.to_ne_bytes()); // max_background
                out.extend_from_slice(&12u16.to_ne_bytes()); // congestion_threshold
                out.extend_from_slice(&(128u32 * 1024).to_ne_bytes()); // max_write
                out.extend_from_slice(&1u32.to_ne_bytes()); // time_gran
                out.resize(64, 0);
                reply(&dev, unique, Ok(&out));
            }
            LOOKUP => {
                let name = arg.split(|&b| b == 0).next().unwrap_or_default();
                let r = self.lookup(node, std::ffi::OsStr::from_bytes(name));
                reply(&dev, unique, r.as_deref().map_err(|e| *e));
            }
            GETATTR => {
                let r = self.meta(node).map(|(ino, m)| {
                    let mut out = vec![0u8; 16];
                    out[..8].copy_from_slice(&1u64.to_ne_bytes()); // attr_valid: 1 s
                    out.extend_from_slice(&attr(ino, &m));
                    out
                });
                reply(&dev, unique, r.as_deref().map_err(|e| *e));
            }
            OPEN => {
                let r = self.open(node).map(|fh| {
                    let mut out = fh.to_ne_bytes().to_vec();
                    out.extend_from_slice(&[0u8; 8]);
                    out
                });
                reply(&dev, unique, r.as_deref().map_err(|e| *e));
            }
            READ => self.read(unique, u64_at(arg, 0), u64_at(arg, 8), u32_at(arg, 16)),
            RELEASE => {
                self.files.remove(&u64_at(arg, 0));
                reply(&dev, unique, Ok(&[]));
            }
            FLUSH | RELEASEDIR => reply(&dev, unique, Ok(&[])),
            OPENDIR => reply(&dev, unique, Ok(&[0u8; 16])),
            READDIR => reply(&dev, unique, Ok(&[])),
            STATFS => {
                let mut out = vec![0u8; 80];
                out[40..44].copy_from_slice(&4096u32.to_ne_bytes());
                out[44..48].copy_from_slice(&255u32.to_ne_bytes());
                reply(&dev, unique, Ok(&out));
            }
            FORGET | BATCH_FORGET | INTERRUPT => {}
            _ => reply(&dev, unique, Err(libc::ENOSYS)),
        }
    }

    fn meta(&self, node: u64) -> Result<(u64, std::fs::Metadata), i32> {
        let rel = self.nodes.get(&node).ok_or(libc::ENOENT)?;
        let m = std::fs::symlink_metadata(self.backing.join(rel)).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        Ok((node, m))
    }

    /// `struct fuse_entry_out` for `name` in directory `parent`.
    fn lookup(&mut self, parent: u64, name: &std::ffi::OsStr) -> Result<Vec<u8>, i32> {
        let rel = self.nodes.get(&parent).ok_or(libc::ENOENT)?.join(name);
        let m =
            std::fs::symlink_metadata(self.backing.join(&rel)).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let next = self.nodes.len() as u64 + 1;
        let ino = *self.inos.entry(rel.clone()).or_insert(next);
        self.nodes.insert(ino, rel);
        let mut out = Vec::with_capacity(128);
        // node id, generation, entry_valid (1 s), attr_valid (1 s), nsecs.
        for v in [ino, 0, 1, 1] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&attr(ino, &m));
        Ok(out)
    }

    fn open(&mut self, node: u64) -> Result<u64, i32> {
        let rel = self.nodes.get(&node).ok_or(libc::ENOENT)?;
        let f = File::open(self.backing.join(rel)).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (f, rel.to_string_lossy().into_owned()));
        Ok(fh)
    }

    fn read(&mut self, unique: u64, fh: u64, offset: u64, size: u32) {
        *self.reads.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let Some((file, rel)) = self.files.get(&fh) else {
            return reply(&self.dev, unique, Err(libc::EBADF));
        };
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|f| f.file == *rel && offset + u64::from(size) > f.from)
            .map(|f| f.kind);
        // A short answer would read as the end of the file: a read that
        // reaches a bad offset fails as a whole, as a bad sector does.
        if fault == Some(FaultKind::Eio) {
            return reply(&self.dev, unique, Err(libc::EIO));
        }
        let mut data = vec![0u8; size as usize];
        let result = file.read_at(&mut data, offset).map(|n| {
            data.truncate(n);
            data
        });
        let dev = self.dev.clone();
        let send = move || match result {
            Ok(d) => reply(&dev, unique, Ok(&d)),
            Err(e) => reply(&dev, unique, Err(e.raw_os_error().unwrap_or(libc::EIO))),
        };
        match fault {
            // Answered from another thread, so one slow read does not hold
            // up the others.
            Some(FaultKind::Delay(d)) => {
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    send();
                });
            }
            _ => send(),
        }
    }
}
