//! One open file as the worker serves it: the descriptor, the validators
//! made once (ETag, Last-Modified), what tells this version of the path
//! from the next, and which of its bytes are in the page cache.

use std::cell::{Cell, OnceCell};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, SystemTime};

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
    pub(super) identity: Identity,
    pub(super) checked: Cell<Instant>,
    /// When this worker was last asked for the file, and whether that ask
    /// came soon after the one before (within the admission window).
    pub(super) last_ask: Cell<Option<Instant>>,
    pub(super) asked_soon: Cell<bool>,
    /// Whether the kernel answers residency probes for this file truthfully:
    /// `mincore` reports a file's page cache only to a process that owns it
    /// (or could write it); for any other it claims every page is resident.
    probe: bool,
    /// The file mapped for residency probes (never read through), made on
    /// the first probe; `None` when mapping failed.
    map: OnceCell<Option<memmap2::Mmap>>,
    /// The same file opened again with `O_DIRECT`, made on first need;
    /// `None` where the filesystem refuses it (tmpfs).
    direct: OnceCell<Option<File>>,
}

/// What `O_DIRECT` reads are aligned to: offset, length and buffer (the
/// largest logical block size of the disks a box uses).
pub const DIRECT_ALIGN: u64 = 4096;

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

    /// Whether this worker's last ask for the file came within the
    /// admission window of the one before: such a file is admitted to the
    /// page cache.
    pub fn asked_again(&self) -> bool {
        self.asked_soon.get()
    }

    /// Another ask for the file at `now`.
    pub(super) fn asked(&self, now: Instant, window: Duration) {
        let soon = self.last_ask.get().is_some_and(|t| now.duration_since(t) < window);
        self.asked_soon.set(soon);
        self.last_ask.set(Some(now));
    }

    /// A descriptor of this very file (the same inode, even if the path
    /// was replaced since) that reads with `O_DIRECT`, bypassing the page
    /// cache.
    pub fn direct_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let f = self.direct.get_or_init(|| {
            use std::os::unix::fs::OpenOptionsExt;
            // Reopening through /proc touches no disk: the inode is in memory.
            let again = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            File::options()
                .read(true)
                .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
                .open(again)
                .map_err(|e| tracing::debug!(error = %e, "no O_DIRECT for this file"))
                .ok()
        });
        f.as_ref().map(|f| f.as_raw_fd())
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
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Identity {
    pub(super) fn of(m: &std::fs::Metadata) -> Self {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

pub(super) fn describe(file: File, meta: &std::fs::Metadata, disk: usize, rel: &str, now: Instant) -> OpenFile {
    let identity = Identity::of(meta);
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    OpenFile {
        probe: euid == 0 || meta.uid() == euid,
        map: OnceCell::new(),
        direct: OnceCell::new(),
        last_ask: Cell::new(None),
        asked_soon: Cell::new(false),
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
