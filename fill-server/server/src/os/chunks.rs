//! The chunk store behind delta OS updates: when a bundle whose manifest
//! signs a chunk index is uploaded, its rootfs is cut into the same
//! content-defined chunks the image builder cut (`nearcast_common::chunks`),
//! the index checked against the signed hash and kept as
//! `{release}.chunks`, and each chunk kept once under `chunks/{sha256}`,
//! shared by every release that has it. (Chunks of a bundle whose index
//! turns out not to be the signed one stay in the store: content-named,
//! they are harmless, and a box fetches only chunks a signed index names.) A box fetches the index, builds
//! what it can from its active slot and fetches the rest by hash.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nearcast_common::bundle::Manifest;
use nearcast_common::chunks;

use super::{io, OsError};

fn store(dir: &Path) -> PathBuf {
    dir.join("chunks")
}

fn index_path(dir: &Path, release: &str) -> Result<PathBuf, OsError> {
    let release = nearcast_common::Name::new(release).map_err(|e| OsError::BadName(e.to_string()))?;
    Ok(dir.join(format!("{release}.chunks")))
}

/// Cuts the rootfs of the bundle at `bundle` (from byte `from` on) into
/// the store and writes its index, if the manifest signs one. It streams
/// the file a window at a time, so an upload never sits in memory whole.
/// An index that differs from the signed one (bytes changed after
/// signing, or another chunker) is not kept: boxes then fetch the bundle
/// whole and judge it themselves, as the server does not check
/// signatures.
pub fn add(dir: &Path, manifest: &Manifest, bundle: &Path, from: u64) -> Result<(), OsError> {
    let release = manifest.version.as_str();
    let _ = std::fs::remove_file(index_path(dir, release)?);
    let Some(signed) = &manifest.chunk_index_sha256 else {
        return Ok(());
    };
    let store = store(dir);
    std::fs::create_dir_all(&store).map_err(io(&store))?;
    let mut file = std::fs::File::open(bundle).map_err(io(bundle))?;
    file.seek(SeekFrom::Start(from)).map_err(io(bundle))?;
    let (mut window, mut cut, mut offset) = (Vec::with_capacity(2 * chunks::MAX), Vec::new(), 0u64);
    let mut ended = false;
    loop {
        while !ended && window.len() < chunks::MAX {
            let mut piece = vec![0u8; chunks::MAX];
            let n = file.read(&mut piece).map_err(io(bundle))?;
            ended = n == 0;
            window.extend_from_slice(&piece[..n]);
        }
        if window.is_empty() {
            break;
        }
        let n = chunks::cut(&window);
        let c = chunks::Chunk {
            offset,
            len: n as u32,
            sha256: sha256(&window[..n]),
        };
        let path = store.join(c.hex());
        if !path.is_file() {
            write_atomically(&path, &window[..n])?;
        }
        cut.push(c);
        offset += n as u64;
        window.drain(..n);
    }
    let index = chunks::encode(&cut);
    let ours = chunks::index_sha256(&index);
    if &ours != signed {
        tracing::warn!(%release, %ours, %signed, "bundle's chunk index is not the signed one; served whole only");
        return Ok(());
    }
    write_atomically(&index_path(dir, release)?, &index)
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, b).as_ref());
    out
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OsError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Release `release`'s index; `None` when it has none (a bundle without a
/// signed index: the box downloads it whole).
pub fn index(dir: &Path, release: &str) -> Result<Option<Vec<u8>>, OsError> {
    let p = index_path(dir, release)?;
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p)(e)),
    }
}

/// The chunk whose SHA-256 is `hex` (64 lowercase hex digits, nothing
/// else reaches the file system).
pub fn chunk(dir: &Path, hex: &str) -> Result<Vec<u8>, OsError> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(OsError::BadName(format!(
            "chunk '{}'",
            hex.chars().take(80).collect::<String>()
        )));
    }
    let p = store(dir).join(hex);
    std::fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OsError::NoChunk(hex.to_string()),
        _ => io(&p)(e),
    })
}
