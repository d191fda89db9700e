//! OS update bundles held for the fleet: operators upload a release's
//! bundle (`PUT /v1/admin/os/{release}`) and point appliances at it
//! (`PUT /v1/admin/appliances/{id}/os`); a box learns its target from the
//! heartbeat answer and fetches the bundle. The server checks a bundle's
//! shape and release name, not its signature: the boxes hold the trusted
//! keys and verify it themselves, so a compromised control plane still
//! cannot install anything.

pub mod chunks;

use std::io::Write;
use std::path::{Path, PathBuf};

use nearcast_common::bundle::{Header, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error("'{0}' is not a plain release name")]
    BadName(String),
    #[error("not an update bundle: {0}")]
    BadBundle(String),
    #[error("the bundle is release '{got}', uploaded as '{want}'")]
    WrongRelease { got: String, want: String },
    #[error("no bundle for release '{0}'")]
    Unknown(String),
    #[error("no chunk {0} in the chunk store")]
    NoChunk(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OsError + '_ {
    move |source| OsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where release `release`'s bundle lives.
pub fn path(dir: &Path, release: &str) -> Result<PathBuf, OsError> {
    let release = nearcast_common::Name::new(release).map_err(|e| OsError::BadName(e.to_string()))?;
    Ok(dir.join(format!("{release}.bundle")))
}

/// A bundle being uploaded: written to a hidden file as it streams in,
/// its head kept to parse the header, checked (whole header, release
/// name, rootfs length) and renamed into place at the end. Dropped
/// unfinished, its file is removed.
pub struct Upload {
    tmp: PathBuf,
    target: PathBuf,
    release: String,
    file: std::fs::File,
    /// The first bytes, up to the largest header.
    head: Vec<u8>,
    len: u64,
    /// Renamed into place: nothing to remove.
    done: bool,
}

/// The largest bundle header (manifest and signatures).
const HEAD_MAX: usize = nearcast_common::bundle::MAX_MANIFEST + 128;

impl Upload {
    pub fn begin(dir: &Path, release: &str) -> Result<Upload, OsError> {
        let target = path(dir, release)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // One upload per release at a time; a second one replaces it.
        let tmp = dir.join(format!(".{release}.partial"));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        Ok(Upload {
            tmp,
            target,
            release: release.to_string(),
            file,
            head: Vec::new(),
            len: 0,
            done: false,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), OsError> {
        let room = HEAD_MAX.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..room]);
        self.len += chunk.len() as u64;
        self.file.write_all(chunk).map_err(io(&self.tmp))
    }

    /// Checks the whole upload and puts it in place.
    pub fn finish(mut self) -> Result<Manifest, OsError> {
        let header = Header::parse(&self.head)
            .map_err(|e| OsError::BadBundle(e.to_string()))?
            .ok_or_else(|| OsError::BadBundle("it ends inside its header".into()))?;
        let m = header.manifest;
        if m.version != self.release.as_str() {
            return Err(OsError::WrongRelease {
                got: m.version.to_string(),
                want: self.release.clone(),
            });
        }
        let rootfs = self.len - header.len as u64;
        if rootfs != m.rootfs_size {
            return Err(OsError::BadBundle(format!(
                "{rootfs} rootfs bytes, its manifest says {}",
                m.rootfs_size
            )));
        }
        self.file.sync_all().map_err(io(&self.tmp))?;
        let dir = self.target.parent().unwrap_or(Path::new("."));
        chunks::add(dir, &m, &self.tmp, header.len as u64)?;
        std::fs::rename(&self.tmp, &self.target).map_err(io(&self.target))?;
        self.done = true;
        Ok(m)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Checks a bundle held whole and stores it (`Upload` in one piece).
pub fn store(dir: &Path, release: &str, body: &[u8]) -> Result<Manifest, OsError> {
    let mut up = Upload::begin(dir, release)?;
    up.write(body)?;
    up.finish()
}

/// The releases held, with their manifests.
pub fn list(dir: &Path) -> Vec<Manifest> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Manifest> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bundle"))
        .filter_map(|e| {
            let mut head = vec![0u8; nearcast_common::bundle::MAX_MANIFEST + 128];
            let n = std::io::Read::read(&mut std::fs::File::open(e.path()).ok()?, &mut head).ok()?;
            Some(Header::parse(&head[..n]).ok()??.manifest)
        })
        .collect();
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

/// A held release's bundle header (magic, signed manifest, signature).
pub fn header(dir: &Path, release: &str) -> Result<Vec<u8>, OsError> {
    let p = path(dir, release)?;
    let mut head = vec![0u8; HEAD_MAX];
    let n = std::fs::File::open(&p)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OsError::Unknown(release.to_string()),
            _ => io(&p)(e),
        })?;
    let h = Header::parse(&head[..n])
        .map_err(|e| OsError::BadBundle(e.to_string()))?
        .ok_or_else(|| OsError::BadBundle("it ends inside its header".into()))?;
    head.truncate(h.len);
    Ok(head)
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match std::io::Read::read(f, &mut buf[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}

/// A held release's bundle, read whole (bundles are tens of MiB and
/// fetched once per box per release).
pub fn read(dir: &Path, release: &str) -> Result<Vec<u8>, OsError> {
    let p = path(dir, release)?;
    std::fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OsError::Unknown(release.to_string()),
        _ => OsError::Io {
            path: p.display().to_string(),
            source: e,
        },
    })
}
