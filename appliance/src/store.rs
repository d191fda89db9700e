//! The content store: one directory per disk, each holding
//! `{title}/{rendition}/{file}`, and a per-worker cache of open files.
//!
//! Serving from an open descriptor is what makes atomic replacement safe:
//! a request that opened the old inode gets the whole old file even if the
//! fill renames a new one into place meanwhile. Cached entries are re-checked
//! against the path (one `stat`) after `valid_for`, like nginx's
//! `open_file_cache_valid`, so a replaced or evicted file stops being served
//! within that time.
//!
//! Each open file can also say which of its bytes are in the page cache
//! (`OpenFile::resident`): the worker sends those with `sendfile` and reads
//! the others through io_uring, so no worker ever waits on the disk.

use std::cell::{Cell, OnceCell};
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

/// An open file ready to serve, with its validators computed once.
pub struct OpenFile {
    pub file: File,
    pub len: u64,
    pub modified: SystemTime,
    /// Strong ETag with quotes: `"{ino}-{size}-{mtime ns}"` in hex.
    pub etag: Box<str>,
    pub last_modified: Box<str>,
    /// Index of the disk the file is on.
    pub disk: usize,
    /// The title the file belongs to (its first path segment).
    pub title: Box<str>,
    identity: Identity,
    checked: Cell<Instant>,
    /// Whether the kernel answers residency probes for this file truthfully:
    /// `mincore` reports a file's page cache only to a process that owns it
    /// (or could write it); for any other it claims every page is resident.
    probe: bool,
    /// The file mapped for residency probes (never read through), made on
    /// the first probe; `None` when mapping failed.
    map: OnceCell<Option<memmap2::Mmap>>,
}

/// Pages looked at by one residency probe (2 MiB of 4 KiB pages).
const PROBE_PAGES: usize = 512;

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}

impl OpenFile {
    /// How many of the `max` bytes from `offset` are in the page cache, as
    /// a prefix (0 when the first page is not, or when the file cannot be
    /// probed: then every byte counts as on disk, which is slower but never
    /// blocks). At most [`PROBE_PAGES`] pages are looked at.
    pub fn resident(&self, offset: u64, max: u64) -> u64 {
        let max = max.min(self.len.saturating_sub(offset));
        if max == 0 || !self.probe {
            return 0;
        }
        let Some(map) = self.map.get_or_init(|| self.map_for_probes()) else {
            return 0;
        };
        let page = page_size();
        let first = offset / page * page;
        let end = (offset + max).min(first + PROBE_PAGES as u64 * page);
        let pages = (end - first).div_ceil(page) as usize;
        let mut vec = [0u8; PROBE_PAGES];
        // SAFETY: `first` is page aligned and [first, end) lies inside the
        // mapping (it covers `len` bytes, end <= len); `vec` has room for
        // one entry per page of that range. The memory is never accessed.
        let r = unsafe {
            libc::mincore(
                map.as_ptr().add(first as usize) as *mut libc::c_void,
                (end - first) as usize,
                vec.as_mut_ptr(),
            )
        };
        if r != 0 {
            return 0;
        }
        let resident = vec[..pages].iter().take_while(|&&v| v & 1 == 1).count() as u64;
        (first + resident * page).min(offset + max).saturating_sub(offset)
    }

    fn map_for_probes(&self) -> Option<memmap2::Mmap> {
        // SAFETY: the mapping is only handed to mincore, never read, so a
        // file changed or truncated under it cannot be observed through it.
        let map = unsafe { memmap2::MmapOptions::new().len(self.len as usize).map(&self.file) };
        map.map_err(|e| tracing::debug!(error = %e, "cannot map for residency probes"))
            .ok()
    }
}

/// What tells one version of a path from another.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Self {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("disk {disk}: {source}")]
    Io { disk: usize, source: io::Error },
}

/// The disks' roots, shared by all workers, and which have failed: a
/// failed disk is never touched again (its files answer 404 at once
/// instead of waiting on a dying device) until it is restored.
#[derive(Debug, Clone)]
pub struct Disks {
    roots: Vec<PathBuf>,
    failed: Arc<[AtomicBool]>,
    /// Reads that failed (EIO and the like) per disk since start: the
    /// agent's hardware monitor counts them as media errors.
    read_errors: Arc<[AtomicU64]>,
}

impl Disks {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        let failed = roots.iter().map(|_| AtomicBool::new(false)).collect();
        let read_errors = roots.iter().map(|_| AtomicU64::new(0)).collect();
        Disks {
            roots,
            failed,
            read_errors,
        }
    }

    /// A read from disk `i` failed.
    pub fn read_failed(&self, i: usize) {
        if let Some(n) = self.read_errors.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn read_errors(&self, i: usize) -> u64 {
        self.read_errors.get(i).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Marks disk `i` failed or back in service; false if there is no such disk.
    pub fn set_failed(&self, i: usize, failed: bool) -> bool {
        self.failed.get(i).map(|f| f.store(failed, Ordering::Release)).is_some()
    }

    pub fn is_failed(&self, i: usize) -> bool {
        self.failed.get(i).is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// One worker's open-file cache.
pub struct FileCache {
    disks: Disks,
    files: LruCache<Box<str>, Rc<OpenFile>>,
    valid_for: Duration,
    scratch: PathBuf,
}

impl FileCache {
    pub fn new(disks: Disks, entries: usize, valid_for: Duration) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        FileCache {
            disks,
            files: LruCache::new(cap),
            valid_for,
            scratch: PathBuf::with_capacity(256),
        }
    }

    /// The file at `rel` (relative to a disk root), from the cache when it
    /// is still the file at that path.
    pub fn open(&mut self, rel: &str, now: Instant) -> Result<Rc<OpenFile>, StoreError> {
        if let Some(f) = self.files.get(rel).cloned() {
            if self.disks.is_failed(f.disk) {
                self.forget_disk(f.disk);
            } else if now.duration_since(f.checked.get()) < self.valid_for {
                return Ok(f);
            } else {
                self.set_scratch(f.disk, rel);
                let still = std::fs::symlink_metadata(&self.scratch).is_ok_and(|m| Identity::of(&m) == f.identity);
                if still {
                    f.checked.set(now);
                    return Ok(f);
                }
                self.files.pop(rel);
            }
        }
        let f = Rc::new(self.open_uncached(rel, now)?);
        self.files.put(rel.into(), f.clone());
        Ok(f)
    }

    /// Drops every cached file of `disk` (a failed or removed disk).
    pub fn forget_disk(&mut self, disk: usize) {
        let gone: Vec<Box<str>> = self
            .files
            .iter()
            .filter(|(_, f)| f.disk == disk)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.files.pop(&k);
        }
    }

    fn set_scratch(&mut self, disk: usize, rel: &str) {
        self.scratch.clear();
        self.scratch.push(&self.disks.roots[disk]);
        self.scratch.push(rel);
    }

    fn open_uncached(&mut self, rel: &str, now: Instant) -> Result<OpenFile, StoreError> {
        let mut first_err = None;
        for disk in 0..self.disks.roots.len() {
            if self.disks.is_failed(disk) {
                continue;
            }
            self.set_scratch(disk, rel);
            let opened = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&self.scratch)
                .and_then(|file| file.metadata().map(|m| (file, m)));
            match opened {
                Ok((file, meta)) if meta.is_file() => return Ok(describe(file, &meta, disk, rel, now)),
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => {}
                Err(source) => {
                    tracing::warn!(disk, path = %self.scratch.display(), error = %source, "open failed");
                    first_err.get_or_insert(StoreError::Io { disk, source });
                }
            }
        }
        Err(first_err.unwrap_or(StoreError::NotFound))
    }
}

fn describe(file: File, meta: &std::fs::Metadata, disk: usize, rel: &str, now: Instant) -> OpenFile {
    let identity = Identity::of(meta);
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    OpenFile {
        probe: euid == 0 || meta.uid() == euid,
        map: OnceCell::new(),
        file,
        len: meta.len(),
        modified,
        etag: format!("\"{:x}-{:x}-{:x}\"", identity.ino, identity.len, identity.mtime_ns).into(),
        last_modified: httpdate::fmt_http_date(modified).into(),
        disk,
        title: rel.split('/').next().unwrap_or(rel).into(),
        identity,
        checked: Cell::new(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nearcast-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn read_all(f: &OpenFile) -> String {
        let mut s = String::new();
        (&f.file).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn finds_files_across_disks_and_revalidates() {
        let (a, b) = (tempdir("a"), tempdir("b"));
        std::fs::create_dir_all(b.join("t/r")).unwrap();
        std::fs::write(b.join("t/r/f.m4s"), "v1").unwrap();
        let mut cache = FileCache::new(Disks::new(vec![a.clone(), b.clone()]), 8, Duration::from_millis(100));
        let t0 = Instant::now();
        let f = cache.open("t/r/f.m4s", t0).unwrap();
        assert_eq!((f.disk, f.len, read_all(&f).as_str()), (1, 2, "v1"));
        assert!(matches!(cache.open("t/r/nope", t0), Err(StoreError::NotFound)));
        assert!(
            matches!(cache.open("t/r", t0), Err(StoreError::NotFound)),
            "directories are not files"
        );

        // Atomic replacement: old handle keeps old bytes; after valid_for the new file is served.
        std::fs::write(b.join("t/r/.tmp"), "version-2").unwrap();
        std::fs::rename(b.join("t/r/.tmp"), b.join("t/r/f.m4s")).unwrap();
        let cached = cache.open("t/r/f.m4s", t0 + Duration::from_millis(50)).unwrap();
        assert_eq!(cached.len, 2, "within valid_for the cached file is served");
        let fresh = cache.open("t/r/f.m4s", t0 + Duration::from_millis(150)).unwrap();
        assert_eq!(read_all(&fresh), "version-2");
        assert_ne!(fresh.etag, f.etag);

        // Eviction: gone after valid_for.
        std::fs::remove_file(b.join("t/r/f.m4s")).unwrap();
        assert!(matches!(
            cache.open("t/r/f.m4s", t0 + Duration::from_millis(300)),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn refuses_symlinks_and_forgets_disks() {
        let a = tempdir("links");
        std::fs::create_dir_all(a.join("t/r")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.join("t/r/link")).unwrap();
        std::fs::write(a.join("t/r/ok"), "x").unwrap();
        let mut cache = FileCache::new(Disks::new(vec![a.clone()]), 8, Duration::from_secs(60));
        let now = Instant::now();
        assert!(matches!(cache.open("t/r/link", now), Err(StoreError::NotFound)));
        assert!(cache.open("t/r/ok", now).is_ok());
        cache.forget_disk(0);
        std::fs::remove_file(a.join("t/r/ok")).unwrap();
        assert!(matches!(cache.open("t/r/ok", now), Err(StoreError::NotFound)));
    }

    #[test]
    fn a_failed_disk_is_skipped_even_when_cached() {
        let (a, b) = (tempdir("fail-a"), tempdir("fail-b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("t/r")).unwrap();
        }
        std::fs::write(a.join("t/r/only-a"), "a").unwrap();
        std::fs::write(b.join("t/r/only-b"), "b").unwrap();
        let disks = Disks::new(vec![a.clone(), b.clone()]);
        let mut cache = FileCache::new(disks.clone(), 8, Duration::from_secs(60));
        let now = Instant::now();
        assert!(cache.open("t/r/only-a", now).is_ok());
        assert!(disks.set_failed(0, true));
        assert!(!disks.set_failed(7, true), "no disk 7");
        assert!(
            matches!(cache.open("t/r/only-a", now), Err(StoreError::NotFound)),
            "cached, but its disk failed"
        );
        assert!(cache.open("t/r/only-b", now).is_ok(), "the other disk serves on");
        disks.set_failed(0, false);
        assert!(cache.open("t/r/only-a", now).is_ok(), "restored");
    }
}
