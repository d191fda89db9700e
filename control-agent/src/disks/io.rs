//! The thread of one content disk: every file operation of the agent on
//! that disk runs here, one at a time — writing and syncing part files,
//! hashing, placing, committing records, evicting, sweeping, listing — so
//! a disk that crawls or hangs holds up its own fill and nothing else (the
//! agent's async threads carry BGP keepalives, heartbeats and the admin
//! listener). The async side sends a job and awaits its answer
//! (`Disk::run`); when idle the thread refreshes the disk's free space,
//! which the heartbeat reads without waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::{space, DiskError, Shared, TitleRecord, META};

/// How often an idle disk thread refreshes the free space.
const REFRESH: Duration = Duration::from_secs(1);

/// A job for the disk's thread.
pub(super) type Job = Box<dyn FnOnce(&mut DiskIo) + Send>;

/// What a finished download became.
#[derive(Debug)]
pub enum Finished {
    /// Verified, synced and renamed into its served place.
    Placed,
    /// Its bytes do not hash to what the manifest says; the part is gone.
    Mismatch {
        got: String,
        size: u64,
    },
    /// The disk is full.
    Full,
    Failed(DiskError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsync of a directory, so a rename or create in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), DiskError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_at(dir))
}

/// Creates `dir` and any missing parents, syncing each parent that gained
/// an entry.
fn create_dirs(dir: &Path) -> Result<(), DiskError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_at(dir)(e)),
    }
    dir.parent().map_or(Ok(()), sync_dir)
}

/// SHA-256 (hex) of a file's bytes as stored.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(nearcast_common::digest::hex(ctx.finish().as_ref()))
}

/// The thread's state: where the disk is, and the part files open for
/// writing.
pub struct DiskIo {
    root: PathBuf,
    parts: BTreeMap<PathBuf, File>,
    shared: Arc<Shared>,
}

/// The disk thread's loop: jobs until every handle is gone.
pub(super) fn run(root: PathBuf, shared: Arc<Shared>, jobs: Receiver<Job>) {
    let mut io = DiskIo {
        root,
        parts: BTreeMap::new(),
        shared,
    };
    io.refresh();
    loop {
        match jobs.recv_timeout(REFRESH) {
            Ok(job) => {
                io.shared.busy_since(Some(std::time::Instant::now()));
                job(&mut io);
                io.shared.busy_since(None);
            }
            Err(RecvTimeoutError::Timeout) => io.refresh(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl DiskIo {
    /// Reads the free space for the heartbeat (and whether the disk
    /// answers at all, for a plain directory with no health log).
    pub fn refresh(&mut self) {
        let readable = self.root.is_dir();
        let space = space(&self.root).ok().filter(|_| readable);
        self.shared.set_space(space);
    }

    pub fn final_path(&self, title: &str, path: &str) -> PathBuf {
        self.root.join(title).join(path)
    }

    fn parts_dir(&self) -> PathBuf {
        self.root.join(META).join("parts")
    }

    fn records_dir(&self) -> PathBuf {
        self.root.join(META).join("titles")
    }

    /// Whether `title` has a directory here (some of it is on this disk).
    pub fn holds(&self, title: &str) -> bool {
        self.root.join(title).is_dir()
    }

    /// Whether the placed `title/path` is there with `size` bytes hashing
    /// to `sha256`; a file there that is not is removed.
    pub fn verify_placed(&mut self, title: &str, path: &str, size: u64, sha256: &str) -> bool {
        let dest = self.final_path(title, path);
        if !fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
            return false;
        }
        if hash_file(&dest).is_ok_and(|h| h == sha256) {
            return true;
        }
        let _ = fs::remove_file(&dest);
        false
    }

    /// Where the download of `title/path` with content `sha256` goes
    /// until it is verified (the directory is created), and how many bytes
    /// of it are there already. Named by both, so two files of equal
    /// content download apart and a changed file does not resume from the
    /// old bytes.
    pub fn part(&mut self, title: &str, path: &str, sha256: &str) -> Result<(PathBuf, u64), DiskError> {
        let dir = self.parts_dir();
        create_dirs(&dir)?;
        let key = &nearcast_common::sha256_hex(format!("{title}/{path}").as_bytes())[..16];
        let part = dir.join(format!("{key}-{sha256}.part"));
        let have = fs::metadata(&part).map_or(0, |m| m.len());
        Ok((part, have))
    }

    /// Opens `part` for writing from `start` (what is after is dropped).
    pub fn begin(&mut self, part: &Path, start: u64) -> Result<(), DiskError> {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(part)
            .map_err(io_at(part))?;
        f.set_len(start)
            .and_then(|_| f.seek(SeekFrom::Start(start)))
            .map_err(io_at(part))?;
        self.parts.insert(part.to_path_buf(), f);
        Ok(())
    }

    /// Appends to an open part.
    pub fn write(&mut self, part: &Path, data: &[u8]) -> Result<(), DiskError> {
        let f = self.parts.get_mut(part).ok_or_else(|| DiskError::Io {
            path: part.to_path_buf(),
            source: io::Error::other("part is not open"),
        })?;
        f.write_all(data).map_err(io_at(part))
    }

    /// Closes an open part (the download from this source ended).
    pub fn close(&mut self, part: &Path) {
        self.parts.remove(part);
    }

    /// Checks a complete part against `sha256` as it is on disk; on a
    /// match syncs it and renames it into its served place, durably.
    pub fn finish(&mut self, part: &Path, title: &str, path: &str, sha256: &str) -> Finished {
        self.close(part);
        let full =
            |e: &DiskError| matches!(e, DiskError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC));
        let got = match hash_file(part) {
            Ok(h) => h,
            Err(e) => return Finished::Failed(io_at(part)(e)),
        };
        if got != sha256 {
            let size = fs::metadata(part).map_or(0, |m| m.len());
            let _ = fs::remove_file(part);
            return Finished::Mismatch { got, size };
        }
        let placed = File::open(part)
            .and_then(|f| f.sync_all())
            .map_err(io_at(part))
            .and_then(|()| self.place(part, title, path));
        match placed {
            Ok(()) => {
                self.refresh();
                Finished::Placed
            }
            Err(e) if full(&e) => Finished::Full,
            Err(e) => Finished::Failed(e),
        }
    }

    /// Moves a verified, synced part into its served place, durably.
    fn place(&mut self, part: &Path, title: &str, path: &str) -> Result<(), DiskError> {
        let dest = self.final_path(title, path);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        create_dirs(&dir)?;
        fs::rename(part, &dest).map_err(io_at(&dest))?;
        sync_dir(&dir)?;
        sync_dir(&self.parts_dir())
    }

    /// Writes the record of a complete title (temp, fsync, rename, fsync):
    /// from here on the title is in the inventory.
    pub fn commit(&mut self, record: &TitleRecord) -> Result<(), DiskError> {
        let dir = self.records_dir();
        create_dirs(&dir)?;
        let tmp = dir.join(format!(".{}.json.tmp", record.title));
        let dest = dir.join(format!("{}.json", record.title));
        let body = serde_json::to_vec_pretty(record).map_err(|e| io_at(&tmp)(io::Error::other(e)))?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()
        };
        write().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
        sync_dir(&dir)
    }

    /// Takes a title out of the records (durably), then deletes its files.
    pub fn evict(&mut self, title: &str) -> Result<(), DiskError> {
        let record = self.records_dir().join(format!("{title}.json"));
        match fs::remove_file(&record) {
            Ok(()) => sync_dir(&self.records_dir())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&record)(e)),
        }
        let dir = self.root.join(title);
        let removed = match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&dir)(e)),
        };
        self.refresh();
        removed
    }

    /// Deletes partial downloads of content no longer wanted (`keep` holds
    /// the SHA-256 of every file of the manifest).
    pub fn sweep_parts(&mut self, keep: &BTreeSet<String>) {
        for entry in fs::read_dir(self.parts_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = name
                .strip_suffix(".part")
                .and_then(|n| n.split_once('-'))
                .map(|(_, sha)| sha);
            if !sha.is_some_and(|sha| keep.contains(sha)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The complete titles on this disk. A record whose files are not all
    /// in place with their sizes (a file deleted by hand, a damaged disk) is
    /// dropped, so the title is filled again rather than served short.
    pub fn records(&mut self) -> BTreeMap<nearcast_common::Name, TitleRecord> {
        let mut out = BTreeMap::new();
        let Ok(dir) = fs::read_dir(self.records_dir()) else {
            return out;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(title) = name.strip_suffix(".json").filter(|t| !t.starts_with('.')) else {
                continue;
            };
            match self.read_record(&path, title) {
                Some(r) => {
                    out.insert(r.title.clone(), r);
                }
                None => {
                    tracing::warn!(record = %path.display(), "title record is unreadable or its files are not all in place; dropping it");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        out
    }

    /// The record at `path` if it is `title`'s and all its files are in
    /// place with their sizes.
    fn read_record(&self, path: &Path, title: &str) -> Option<TitleRecord> {
        // Parsing checks every name in it.
        let record = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<TitleRecord>(&b).ok())
            .filter(|r| r.title == title)?;
        let intact = record
            .files
            .iter()
            .all(|f| fs::metadata(self.final_path(title, &f.path)).is_ok_and(|m| m.len() == f.size));
        intact.then_some(record)
    }
}
