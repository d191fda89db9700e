//! The chunk store behind delta OS updates: when a bundle whose manifest
//! signs a chunk index is uploaded, its rootfs is cut into the same
//! content-defined chunks the image builder cut (`nearcast_common::chunks`),
//! the index checked against the signed hash and kept as
//! `{release}.chunks`, and each chunk kept once under `chunks/{sha256}`,
//! shared by every release that has it. A box fetches the index, builds
//! what it can from its active slot and fetches the rest by hash.

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

/// Cuts `rootfs` (the uploaded bundle's image) into the store and writes
/// its index, if the manifest signs one. An index that differs from the
/// signed one (bytes changed after signing, or another chunker) is not
/// kept: boxes then fetch the bundle whole and judge it themselves, as
/// the server does not check signatures.
pub fn add(dir: &Path, manifest: &Manifest, rootfs: &[u8]) -> Result<(), OsError> {
    let release = manifest.version.as_str();
    let _ = std::fs::remove_file(index_path(dir, release)?);
    let Some(signed) = &manifest.chunk_index_sha256 else {
        return Ok(());
    };
    let cut = chunks::chunk(rootfs);
    let index = chunks::encode(&cut);
    let ours = chunks::index_sha256(&index);
    if &ours != signed {
        tracing::warn!(%release, %ours, %signed, "bundle's chunk index is not the signed one; served whole only");
        return Ok(());
    }
    let store = store(dir);
    std::fs::create_dir_all(&store).map_err(io(&store))?;
    for c in &cut {
        let path = store.join(c.hex());
        if path.is_file() {
            continue;
        }
        write_atomically(&path, &rootfs[c.range()])?;
    }
    write_atomically(&index_path(dir, release)?, &index)
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
