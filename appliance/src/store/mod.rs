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
//! No worker waits on the disk here either: paths are opened and checked
//! only through the kernel's lookup caches (`lookup.rs`); where that would
//! read the disk the cache answers [`StoreError::WouldBlock`], the worker
//! opens the path through io_uring and hands the result back
//! ([`FileCache::opened`]). Each open file can also say which of its bytes
//! are in the page cache (`OpenFile::resident`): the worker sends those
//! with `sendfile` and reads the others through io_uring.

mod file;
pub mod lookup;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use file::{describe, Identity};
pub use file::{OpenFile, DIRECT_ALIGN};
use lookup::Cached;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Looking the path up on `disk` would wait on the disk: open it
    /// through io_uring ([`FileCache::path_of`]) and hand the result to
    /// [`FileCache::opened`].
    #[error("disk {disk}: the lookup would wait on the disk")]
    WouldBlock { disk: usize },
    #[error("disk {disk}: {source}")]
    Io { disk: usize, source: io::Error },
}

/// Errors of an open that mean "not on this disk".
fn absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP))
}

/// Whether an open's result (`-errno`) means "not on this disk".
pub fn absent_result(res: i32) -> bool {
    res < 0 && absent(&io::Error::from_raw_os_error(-res))
}

/// Disk `i`'s bit in a `skip` mask (disks past 64 have none: they are
/// never skipped, only looked at again).
pub fn disk_bit(i: usize) -> u64 {
    1u64.checked_shl(i as u32).unwrap_or(0)
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
    /// A file asked for again within this is admitted to the page cache.
    admit_within: Duration,
    scratch: PathBuf,
}

impl FileCache {
    pub fn new(disks: Disks, entries: usize, valid_for: Duration, admit_within: Duration) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        FileCache {
            disks,
            files: LruCache::new(cap),
            valid_for,
            admit_within,
            scratch: PathBuf::with_capacity(256),
        }
    }

    /// The file at `rel` (relative to a disk root), from the cache when it
    /// is still the file at that path. `skip` has bit `i` set for each disk
    /// `i` an open through io_uring already found it absent on, for this
    /// request (a filesystem that keeps no negative lookups, FUSE or NFS,
    /// would otherwise send it back to io_uring for the same disk).
    pub fn open(&mut self, rel: &str, now: Instant, skip: u64) -> Result<Rc<OpenFile>, StoreError> {
        if let Some(f) = self.files.get(rel).cloned() {
            if self.disks.is_failed(f.disk) {
                self.forget_disk(f.disk);
            } else if now.duration_since(f.checked.get()) < self.valid_for {
                f.asked(now, self.admit_within);
                return Ok(f);
            } else {
                self.set_scratch(f.disk, rel);
                match lookup::stat(&self.scratch) {
                    Ok(Cached::Done(m)) if Identity::of(&m) == f.identity => {
                        f.checked.set(now);
                        f.asked(now, self.admit_within);
                        return Ok(f);
                    }
                    Ok(Cached::WouldBlock) => return Err(StoreError::WouldBlock { disk: f.disk }),
                    // Replaced or gone: look again.
                    _ => {
                        self.files.pop(rel);
                    }
                }
            }
        }
        let f = Rc::new(self.open_uncached(rel, now, skip)?);
        f.asked(now, self.admit_within);
        self.files.put(rel.into(), f.clone());
        Ok(f)
    }

    /// Where `rel` would be on `disk`, for an open through io_uring.
    pub fn path_of(&self, disk: usize, rel: &str) -> Option<CString> {
        lookup::c_path(&self.disks.roots.get(disk)?.join(rel))
    }

    /// An open of `rel` on `disk` done through io_uring (after
    /// [`StoreError::WouldBlock`]) completed with `res`: a descriptor or
    /// `-errno`. The file, if it is one, replaces what the cache held;
    /// "not there" forgets the cached entry of that disk, so the next
    /// [`FileCache::open`] looks on the other disks.
    pub fn opened(&mut self, rel: &str, disk: usize, res: i32, now: Instant) {
        if res < 0 {
            let e = io::Error::from_raw_os_error(-res);
            if !absent(&e) {
                tracing::warn!(disk, path = rel, error = %e, "open failed");
            }
            if self.files.peek(rel).is_some_and(|f| f.disk == disk) {
                self.files.pop(rel);
            }
            return;
        }
        // SAFETY: the kernel just gave us this descriptor.
        let file = unsafe { File::from_raw_fd(res) };
        match file.metadata() {
            Ok(meta) if meta.is_file() => {
                let f = Rc::new(describe(file, &meta, disk, rel, now));
                self.files.put(rel.into(), f);
            }
            _ => {
                self.files.pop(rel);
            }
        }
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

    fn open_uncached(&mut self, rel: &str, now: Instant, skip: u64) -> Result<OpenFile, StoreError> {
        let mut first_err = None;
        for disk in 0..self.disks.roots.len() {
            if self.disks.is_failed(disk) || skip & disk_bit(disk) != 0 {
                continue;
            }
            self.set_scratch(disk, rel);
            let opened = match lookup::open(&self.scratch) {
                Ok(Cached::Done(file)) => file.metadata().map(|m| (file, m)),
                Ok(Cached::WouldBlock) => return Err(StoreError::WouldBlock { disk }),
                Err(e) => Err(e),
            };
            match opened {
                Ok((file, meta)) if meta.is_file() => return Ok(describe(file, &meta, disk, rel, now)),
                Ok(_) => {}
                Err(e) if absent(&e) => {}
                Err(source) => {
                    tracing::warn!(disk, path = %self.scratch.display(), error = %source, "open failed");
                    first_err.get_or_insert(StoreError::Io { disk, source });
                }
            }
        }
        Err(first_err.unwrap_or(StoreError::NotFound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tempdir(name: &str) -> nearcast_testkit::TempDir {
        nearcast_testkit::TempDir::new(&format!("store-{name}"))
    }

    /// `open`, doing what the worker does when a lookup would block: the
    /// open (here blocking), handed back through `opened`.
    fn open_now(cache: &mut FileCache, rel: &str, now: Instant) -> Result<Rc<OpenFile>, StoreError> {
        for _ in 0..8 {
            match cache.open(rel, now, 0) {
                Err(StoreError::WouldBlock { disk }) => {
                    let path = cache.path_of(disk, rel).unwrap();
                    // SAFETY: a NUL-terminated path.
                    let fd = unsafe { libc::open(path.as_ptr(), lookup::OPEN_FLAGS) };
                    let res = if fd < 0 {
                        -io::Error::last_os_error().raw_os_error().unwrap()
                    } else {
                        fd
                    };
                    cache.opened(rel, disk, res, now);
                }
                other => return other,
            }
        }
        panic!("{rel}: still blocking after 8 opens");
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
        let mut cache = FileCache::new(
            Disks::new(vec![a.to_path_buf(), b.to_path_buf()]),
            8,
            Duration::from_millis(100),
            Duration::from_secs(10),
        );
        let t0 = Instant::now();
        let f = open_now(&mut cache, "t/r/f.m4s", t0).unwrap();
        assert_eq!((f.disk, f.len, read_all(&f).as_str()), (1, 2, "v1"));
        assert!(matches!(
            open_now(&mut cache, "t/r/nope", t0),
            Err(StoreError::NotFound)
        ));
        assert!(
            matches!(open_now(&mut cache, "t/r", t0), Err(StoreError::NotFound)),
            "directories are not files"
        );

        // Atomic replacement: old handle keeps old bytes; after valid_for the new file is served.
        std::fs::write(b.join("t/r/.tmp"), "version-2").unwrap();
        std::fs::rename(b.join("t/r/.tmp"), b.join("t/r/f.m4s")).unwrap();
        let cached = open_now(&mut cache, "t/r/f.m4s", t0 + Duration::from_millis(50)).unwrap();
        assert_eq!(cached.len, 2, "within valid_for the cached file is served");
        let fresh = open_now(&mut cache, "t/r/f.m4s", t0 + Duration::from_millis(150)).unwrap();
        assert_eq!(read_all(&fresh), "version-2");
        assert_ne!(fresh.etag, f.etag);

        // Eviction: gone after valid_for.
        std::fs::remove_file(b.join("t/r/f.m4s")).unwrap();
        assert!(matches!(
            open_now(&mut cache, "t/r/f.m4s", t0 + Duration::from_millis(300)),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn refuses_symlinks_and_forgets_disks() {
        let a = tempdir("links");
        std::fs::create_dir_all(a.join("t/r")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.join("t/r/link")).unwrap();
        std::fs::write(a.join("t/r/ok"), "x").unwrap();
        let mut cache = FileCache::new(
            Disks::new(vec![a.to_path_buf()]),
            8,
            Duration::from_secs(60),
            Duration::from_secs(10),
        );
        let now = Instant::now();
        assert!(matches!(
            open_now(&mut cache, "t/r/link", now),
            Err(StoreError::NotFound)
        ));
        assert!(open_now(&mut cache, "t/r/ok", now).is_ok());
        cache.forget_disk(0);
        std::fs::remove_file(a.join("t/r/ok")).unwrap();
        assert!(matches!(open_now(&mut cache, "t/r/ok", now), Err(StoreError::NotFound)));
    }

    #[test]
    fn a_failed_disk_is_skipped_even_when_cached() {
        let (a, b) = (tempdir("fail-a"), tempdir("fail-b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("t/r")).unwrap();
        }
        std::fs::write(a.join("t/r/only-a"), "a").unwrap();
        std::fs::write(b.join("t/r/only-b"), "b").unwrap();
        let disks = Disks::new(vec![a.to_path_buf(), b.to_path_buf()]);
        let mut cache = FileCache::new(disks.clone(), 8, Duration::from_secs(60), Duration::from_secs(10));
        let now = Instant::now();
        assert!(open_now(&mut cache, "t/r/only-a", now).is_ok());
        assert!(disks.set_failed(0, true));
        assert!(!disks.set_failed(7, true), "no disk 7");
        assert!(
            matches!(open_now(&mut cache, "t/r/only-a", now), Err(StoreError::NotFound)),
            "cached, but its disk failed"
        );
        assert!(
            open_now(&mut cache, "t/r/only-b", now).is_ok(),
            "the other disk serves on"
        );
        disks.set_failed(0, false);
        assert!(open_now(&mut cache, "t/r/only-a", now).is_ok(), "restored");
    }

    #[test]
    fn a_file_asked_for_again_soon_is_admitted() {
        let a = tempdir("admit");
        std::fs::create_dir_all(a.join("t/r")).unwrap();
        std::fs::write(a.join("t/r/f"), "x").unwrap();
        let window = Duration::from_secs(10);
        let mut cache = FileCache::new(Disks::new(vec![a.to_path_buf()]), 8, Duration::from_secs(3600), window);
        let t0 = Instant::now();
        assert!(!open_now(&mut cache, "t/r/f", t0).unwrap().asked_again(), "a first ask");
        let f = open_now(&mut cache, "t/r/f", t0 + Duration::from_secs(2)).unwrap();
        assert!(f.asked_again(), "asked again within the window");
        let f = open_now(&mut cache, "t/r/f", t0 + Duration::from_secs(30)).unwrap();
        assert!(!f.asked_again(), "asked again, but long after");
    }
}
