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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use nearcast_common::control::Health;

use serde::{Deserialize, Serialize};

const META: &str = ".nearcast";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("unsafe name in manifest: '{0}'")]
    UnsafeName(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file of a complete title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A complete, verified title on one disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleRecord {
    pub title: String,
    /// Its rank in the manifest it was filled from (eviction order).
    pub rank: u32,
    pub files: Vec<FileRecord>,
}

impl TitleRecord {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

pub struct Disk {
    pub root: PathBuf,
    /// Set when a write hit ENOSPC: no more fill on this disk this run.
    full: AtomicBool,
    /// From the hardware monitor: only an `Ok` disk gets new fill.
    health: AtomicU8,
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

pub fn space(path: &Path) -> io::Result<Space> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs writes only into `st`; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(Space {
        total: st.f_blocks as u64 * frsize,
        free: st.f_bavail as u64 * frsize,
    })
}

/// `rendition/file` or `file`, each part a plain name.
pub fn check_rel_path(path: &str) -> Result<(), DiskError> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 2 || !parts.iter().all(|p| nearcast_common::is_plain_name(p.as_bytes())) {
        return Err(DiskError::UnsafeName(path.to_string()));
    }
    Ok(())
}

pub fn check_title(title: &str) -> Result<(), DiskError> {
    if nearcast_common::is_plain_name(title.as_bytes()) {
        Ok(())
    } else {
        Err(DiskError::UnsafeName(title.to_string()))
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

impl Disk {
    pub fn new(root: PathBuf) -> Disk {
        Disk {
            root,
            full: AtomicBool::new(false),
            health: AtomicU8::new(0),
        }
    }

    pub fn health(&self) -> Health {
        HEALTHS[usize::from(self.health.load(Ordering::Relaxed)).min(HEALTHS.len() - 1)]
    }

    /// Sets the disk's health; the previous one.
    pub fn set_health(&self, h: Health) -> Health {
        let code = HEALTHS.iter().position(|x| *x == h).unwrap_or(0) as u8;
        HEALTHS[usize::from(self.health.swap(code, Ordering::Relaxed)).min(HEALTHS.len() - 1)]
    }

    /// May new titles go here: healthy, not full, mounted.
    pub fn usable(&self) -> bool {
        self.health() == Health::Ok && !self.is_full() && self.root.is_dir()
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

    pub fn title_dir(&self, title: &str) -> PathBuf {
        self.root.join(title)
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

    /// Where the download of `title/path` with content `sha256` goes
    /// until it is verified (the directory is created). Named by both, so
    /// two files of equal content download apart and a changed file does
    /// not resume from the old bytes.
    pub fn part_path(&self, title: &str, path: &str, sha256: &str) -> Result<PathBuf, DiskError> {
        let dir = self.parts_dir();
        create_dirs(&dir)?;
        let key = &nearcast_common::sha256_hex(format!("{title}/{path}").as_bytes())[..16];
        Ok(dir.join(format!("{key}-{sha256}.part")))
    }

    /// Moves a verified, fsynced part into its served place, durably.
    pub fn place(&self, part: &Path, title: &str, path: &str) -> Result<(), DiskError> {
        let dest = self.final_path(title, path);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        create_dirs(&dir)?;
        fs::rename(part, &dest).map_err(io_at(&dest))?;
        sync_dir(&dir)?;
        sync_dir(&self.parts_dir())
    }

    /// Writes the record of a complete title (temp, fsync, rename, fsync):
    /// from here on the title is in the inventory.
    pub fn commit(&self, record: &TitleRecord) -> Result<(), DiskError> {
        let dir = self.records_dir();
        create_dirs(&dir)?;
        let tmp = dir.join(format!(".{}.json.tmp", record.title));
        let dest = dir.join(format!("{}.json", record.title));
        let body = serde_json::to_vec_pretty(record).map_err(|e| io_at(&tmp)(io::Error::other(e)))?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            io::Write::write_all(&mut f, &body)?;
            f.sync_all()
        };
        write().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
        sync_dir(&dir)
    }

    /// Takes a title out of the inventory (its record first, durably), then
    /// deletes its files.
    pub fn evict(&self, title: &str) -> Result<(), DiskError> {
        let record = self.records_dir().join(format!("{title}.json"));
        match fs::remove_file(&record) {
            Ok(()) => sync_dir(&self.records_dir())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&record)(e)),
        }
        let dir = self.title_dir(title);
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&dir)(e)),
        }
    }

    /// Deletes partial downloads of content no longer wanted (`keep` holds
    /// the SHA-256 of every file of the manifest).
    pub fn sweep_parts(&self, keep: &std::collections::BTreeSet<&str>) {
        for entry in fs::read_dir(self.parts_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = name
                .strip_suffix(".part")
                .and_then(|n| n.split_once('-'))
                .map(|(_, sha)| sha);
            let wanted = sha.is_some_and(|sha| keep.contains(sha));
            if !wanted {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The complete titles on this disk. A record whose files are not all
    /// in place with their sizes (a file deleted by hand, a damaged disk) is
    /// dropped, so the title is filled again rather than served short.
    pub fn records(&self) -> BTreeMap<String, TitleRecord> {
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
            let record = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<TitleRecord>(&b).ok())
                .filter(|r| r.title == title && check_title(title).is_ok());
            let intact = record.as_ref().is_some_and(|r| {
                r.files.iter().all(|f| {
                    check_rel_path(&f.path).is_ok()
                        && fs::metadata(self.final_path(title, &f.path)).is_ok_and(|m| m.len() == f.size)
                })
            });
            match record {
                Some(r) if intact => {
                    out.insert(title.to_string(), r);
                }
                _ => {
                    tracing::warn!(record = %path.display(), "title record is unreadable or its files are not all in place; dropping it");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        out
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
    fn manifest_names_are_checked() {
        for ok in ["720p/seg-00001.m4s", "master.m3u8"] {
            assert!(check_rel_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a/b/c",
            ".nearcast/titles/x.json",
            "a//b",
            "",
        ] {
            assert!(check_rel_path(bad).is_err(), "{bad}");
        }
        assert!(check_title("..").is_err());
    }

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
    fn only_a_healthy_mounted_disk_that_is_not_full_takes_new_titles() {
        let disk = Disk::new(std::env::temp_dir());
        assert!(disk.usable());
        for h in [Health::Degraded, Health::Failed] {
            assert_eq!(disk.set_health(h), Health::Ok);
            assert!(!disk.usable(), "{h:?}");
            disk.set_health(Health::Ok);
        }
        disk.set_full(true);
        assert!(!disk.usable());
        assert!(!Disk::new(PathBuf::from("/nonexistent/nearcast-disk")).usable());
    }

    #[test]
    fn records_need_their_files() {
        let root = std::env::temp_dir().join(format!("nearcast-disk-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let disk = Disk::new(root.clone());
        fs::create_dir_all(root.join("t/720p")).unwrap();
        fs::write(root.join("t/720p/a.m4s"), b"abc").unwrap();
        let rec = TitleRecord {
            title: "t".into(),
            rank: 1,
            files: vec![FileRecord {
                path: "720p/a.m4s".into(),
                size: 3,
                sha256: nearcast_common::sha256_hex(b"abc"),
            }],
        };
        disk.commit(&rec).unwrap();
        assert_eq!(disk.records().get("t"), Some(&rec));
        fs::write(root.join("t/720p/a.m4s"), b"ab").unwrap();
        assert!(disk.records().is_empty(), "a short file drops the record");
        disk.commit(&rec).unwrap();
        disk.evict("t").unwrap();
        assert!(disk.records().is_empty() && !root.join("t").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
