//! The content disks as the agent lays them out. A title lives on one disk,
//! at `{disk}/{title}/{rendition}/{file}`, where the appliance serves it.
//! Everything of the agent's own is under `{disk}/.nearcast/`, which the
//! appliance never serves (its names may not start with a dot):
//!
//! - `parts/{key}-{sha256}.part`: downloads in progress (`key` names the
//!   title and path), kept across crashes so they resume with a range
//!   request;
//! - `titles/{title}.json`: the record of a complete title, written only
//!   after every file of it was verified, fsynced and renamed into place.
//!
//! The inventory is the set of records, so a crash at any moment leaves a
//! title either absent or complete and verified; and a disk that is pulled
//! takes its titles out of the inventory with it.
//!
//! All of the agent's file operations on a disk run on that disk's own
//! thread (`io.rs`); a [`Disk`] is the handle the async code holds: it
//! sends jobs there and reads what the thread last saw (free space,
//! whether it answers) without waiting.

mod io;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use nearcast_common::control::Health;
use nearcast_common::{Name, TitlePath};
use serde::{Deserialize, Serialize};

pub use io::{hash_file, sync_dir, DiskIo, Finished};

const META: &str = ".nearcast";
/// A disk thread busy with one job this long is taken to be hung.
const STUCK: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the disk's thread is gone")]
    Gone,
}

/// One file of a complete title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: TitlePath,
    pub size: u64,
    pub sha256: String,
}

/// A complete, verified title on one disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleRecord {
    pub title: Name,
    /// Its rank in the manifest it was filled from (eviction order).
    pub rank: u32,
    pub files: Vec<FileRecord>,
}

impl TitleRecord {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What the disk's thread last saw, for readers that must not wait.
#[derive(Default)]
struct Shared {
    free: AtomicU64,
    total: AtomicU64,
    /// The root is a readable directory and statvfs answers.
    readable: AtomicBool,
    /// Milliseconds since `epoch` when the job now running started, 0 idle.
    busy_since_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Shared {
    fn epoch(&self) -> Instant {
        *self.epoch.get_or_init(Instant::now)
    }

    fn set_space(&self, space: Option<Space>) {
        self.readable.store(space.is_some(), Ordering::Relaxed);
        if let Some(s) = space {
            self.free.store(s.free, Ordering::Relaxed);
            self.total.store(s.total, Ordering::Relaxed);
        }
    }

    fn busy_since(&self, since: Option<Instant>) {
        let ms = since.map_or(0, |t| t.duration_since(self.epoch()).as_millis() as u64 + 1);
        self.busy_since_ms.store(ms, Ordering::Relaxed);
    }
}

pub struct Disk {
    pub root: PathBuf,
    /// Set when a write hit ENOSPC: no more fill on this disk this run.
    full: AtomicBool,
    /// From the hardware monitor: only an `Ok` disk gets new fill.
    health: AtomicU8,
    shared: Arc<Shared>,
    jobs: Mutex<mpsc::Sender<io::Job>>,
}

const HEALTHS: [Health; 5] = [
    Health::Ok,
    Health::Filling,
    Health::Degraded,
    Health::Updating,
    Health::Failed,
];

/// Space on one filesystem, from statvfs.
#[derive(Clone, Copy, Debug)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

/// statvfs of `path` (blocking: call it on a disk's thread).
pub fn space(path: &Path) -> std::io::Result<Space> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes only into `st`; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(Space {
        total: st.f_blocks as u64 * frsize,
        free: st.f_bavail as u64 * frsize,
    })
}

impl Disk {
    /// The handle of the disk at `root`, with its thread started.
    pub fn new(root: PathBuf) -> Disk {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let thread_root = root.clone();
        let thread_shared = shared.clone();
        let name = format!(
            "disk-{}",
            root.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || io::run(thread_root, thread_shared, rx))
        {
            tracing::error!(disk = %root.display(), error = %e, "cannot start the disk's thread");
        }
        Disk {
            root,
            full: AtomicBool::new(false),
            health: AtomicU8::new(0),
            shared,
            jobs: Mutex::new(tx),
        }
    }

    fn send(&self, job: io::Job) -> Result<(), DiskError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.send(job).map_err(|_| DiskError::Gone)
    }

    /// Runs `f` on the disk's thread and waits (asynchronously) for it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DiskIo) -> T + Send + 'static,
    ) -> Result<T, DiskError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Box::new(move |io| {
            let _ = tx.send(f(io));
        }))?;
        rx.await.map_err(|_| DiskError::Gone)
    }

    /// `run` for code outside the async runtime (start-up), blocking.
    pub fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DiskIo) -> T + Send + 'static,
    ) -> Result<T, DiskError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Box::new(move |io| {
            let _ = tx.send(f(io));
        }))?;
        rx.recv().map_err(|_| DiskError::Gone)
    }

    pub fn health(&self) -> Health {
        HEALTHS[usize::from(self.health.load(Ordering::Relaxed)).min(HEALTHS.len() - 1)]
    }

    /// Sets the disk's health; the previous one.
    pub fn set_health(&self, h: Health) -> Health {
        let code = HEALTHS.iter().position(|x| *x == h).unwrap_or(0) as u8;
        HEALTHS[usize::from(self.health.swap(code, Ordering::Relaxed)).min(HEALTHS.len() - 1)]
    }

    /// May new titles go here: healthy, not full, answering.
    pub fn usable(&self) -> bool {
        self.health() == Health::Ok && !self.is_full() && self.readable()
    }

    /// Its root was a readable directory at the thread's last look.
    pub fn readable(&self) -> bool {
        self.shared.readable.load(Ordering::Relaxed)
    }

    /// Free and total bytes at the thread's last look.
    pub fn space_seen(&self) -> Space {
        Space {
            free: self.shared.free.load(Ordering::Relaxed),
            total: self.shared.total.load(Ordering::Relaxed),
        }
    }

    /// The disk's thread has been busy with one job for too long (a disk
    /// that stopped answering).
    pub fn stuck(&self) -> bool {
        let ms = self.shared.busy_since_ms.load(Ordering::Relaxed);
        ms != 0 && self.shared.epoch().elapsed() > Duration::from_millis(ms) + STUCK
    }

    pub fn name(&self) -> String {
        self.root.display().to_string()
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
    }
}

/// Weighted rendezvous: each disk scores `-weight / ln(u)` for a hash-
/// derived `u` in (0, 1); the highest score wins. Weights are free bytes,
/// so fuller disks get fewer new titles while a title's disk stays put as
/// long as the set of disks does.
pub fn rendezvous_pick(title: &str, candidates: &[(usize, &Path, u64)]) -> Option<usize> {
    candidates
        .iter()
        .map(|&(i, root, weight)| {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{title}\n{}", root.display()).as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&d.as_ref()[..8]);
            let u = ((u64::from_be_bytes(b) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (i, -(weight as f64) / u.ln())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_is_stable_and_weighted() {
        let (a, b) = (Path::new("/d/a"), Path::new("/d/b"));
        let even = [(0, a, 100), (1, b, 100)];
        let picks: Vec<_> = (0..1000).map(|i| rendezvous_pick(&format!("t{i}"), &even)).collect();
        let again: Vec<_> = (0..1000).map(|i| rendezvous_pick(&format!("t{i}"), &even)).collect();
        assert_eq!(picks, again);
        let on_a = picks.iter().filter(|p| **p == Some(0)).count();
        assert!((400..600).contains(&on_a), "{on_a}");
        let skewed = [(0, a, 300), (1, b, 100)];
        let on_a = (0..1000)
            .filter(|i| rendezvous_pick(&format!("t{i}"), &skewed) == Some(0))
            .count();
        assert!(
            (680..820).contains(&on_a),
            "three times the space, about three quarters: {on_a}"
        );
        assert_eq!(rendezvous_pick("t", &[]), None);
    }

    #[test]
    fn only_a_healthy_readable_disk_that_is_not_full_takes_new_titles() {
        let disk = Disk::new(std::env::temp_dir());
        // The thread's first look at the disk.
        disk.run_blocking(DiskIo::refresh).unwrap();
        assert!(disk.usable());
        assert!(disk.space_seen().total > 0);
        for h in [Health::Degraded, Health::Failed] {
            assert_eq!(disk.set_health(h), Health::Ok);
            assert!(!disk.usable(), "{h:?}");
            disk.set_health(Health::Ok);
        }
        disk.set_full(true);
        assert!(!disk.usable());
        let gone = Disk::new(PathBuf::from("/nonexistent/nearcast-disk"));
        gone.run_blocking(DiskIo::refresh).unwrap();
        assert!(!gone.usable());
        assert!(!disk.stuck());
    }

    #[test]
    fn records_need_their_files() {
        let root = nearcast_testkit::TempDir::new("disk-test");
        let disk = Disk::new(root.to_path_buf());
        std::fs::create_dir_all(root.join("t/720p")).unwrap();
        std::fs::write(root.join("t/720p/a.m4s"), b"abc").unwrap();
        let rec = TitleRecord {
            title: Name::new("t").unwrap(),
            rank: 1,
            files: vec![FileRecord {
                path: TitlePath::new("720p/a.m4s").unwrap(),
                size: 3,
                sha256: nearcast_common::sha256_hex(b"abc"),
            }],
        };
        let on_disk = |f: fn(&mut DiskIo, &TitleRecord) -> Result<(), DiskError>| {
            let r = rec.clone();
            disk.run_blocking(move |io| f(io, &r)).unwrap().unwrap();
        };
        on_disk(|io, r| io.commit(r));
        assert_eq!(disk.run_blocking(|io| io.records()).unwrap().get("t"), Some(&rec));
        std::fs::write(root.join("t/720p/a.m4s"), b"ab").unwrap();
        assert!(
            disk.run_blocking(|io| io.records()).unwrap().is_empty(),
            "a short file drops the record"
        );
        on_disk(|io, r| io.commit(r));
        on_disk(|io, _| io.evict("t"));
        assert!(disk.run_blocking(|io| io.records()).unwrap().is_empty() && !root.join("t").exists());
    }

    #[test]
    fn a_download_is_placed_only_when_its_bytes_match() {
        let root = nearcast_testkit::TempDir::new("disk-part");
        let disk = Disk::new(root.to_path_buf());
        let sha = nearcast_common::sha256_hex(b"hello world");
        let outcome = disk
            .run_blocking(move |io| {
                let (part, have) = io.part("t", "r/f", &sha)?;
                assert_eq!(have, 0);
                io.begin(&part, 0)?;
                io.write(&part, b"hello ")?;
                io.close(&part);
                // Resumed: the part keeps what was written.
                let (part, have) = io.part("t", "r/f", &sha)?;
                assert_eq!(have, 6);
                io.begin(&part, have)?;
                io.write(&part, b"world")?;
                let placed = io.finish(&part, "t", "r/f", &sha);
                let (bad, _) = io.part("t", "r/g", &sha)?;
                io.begin(&bad, 0)?;
                io.write(&bad, b"hello there")?;
                let mismatch = io.finish(&bad, "t", "r/g", &sha);
                Ok::<_, DiskError>((placed, mismatch, bad))
            })
            .unwrap()
            .unwrap();
        assert!(matches!(outcome.0, Finished::Placed));
        assert!(matches!(outcome.1, Finished::Mismatch { size: 11, .. }));
        assert_eq!(std::fs::read(root.join("t/r/f")).unwrap(), b"hello world");
        assert!(
            !outcome.2.exists() && !root.join("t/r/g").exists(),
            "a mismatch is never placed"
        );
    }
}
