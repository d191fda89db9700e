//! Writes a slot on a thread of its own: chunks come through a bounded
//! channel and are hashed as they are written; at the end the slot is
//! synced and read back, so what counts is what the device holds.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nearcast_common::bundle::{Manifest, RootfsCheck};

use super::UpdateError;

pub(super) struct SlotWriter {
    chunks: tokio::sync::mpsc::Sender<hyper::body::Bytes>,
    done: tokio::task::JoinHandle<Result<(), UpdateError>>,
}

impl SlotWriter {
    /// Starts writing `dev` (slot `slot`) with the rootfs `m` names.
    pub(super) fn start(dev: PathBuf, slot: &'static str, mut check: RootfsCheck, m: &Manifest) -> SlotWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<hyper::body::Bytes>(8);
        let (size, sha) = (m.rootfs_size, m.rootfs_sha256.clone());
        let done = tokio::task::spawn_blocking(move || {
            let werr = |source: std::io::Error| UpdateError::Write { slot, source };
            let mut file = std::fs::OpenOptions::new().write(true).open(&dev).map_err(werr)?;
            while let Some(chunk) = rx.blocking_recv() {
                check.update(&chunk)?;
                file.write_all(&chunk).map_err(werr)?;
            }
            check.finish()?;
            file.sync_all().map_err(werr)?;
            drop(file);
            read_back(&dev, slot, size, &sha)
        });
        SlotWriter { chunks: tx, done }
    }

    /// Hands a chunk to the writer (waits while it is behind). If the
    /// writer stopped, its error.
    pub(super) async fn write(&mut self, chunk: hyper::body::Bytes) -> Result<(), UpdateError> {
        if self.chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        match (&mut self.done).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(UpdateError::WriterStopped),
            Err(e) => Err(UpdateError::Task(e)),
        }
    }

    /// The end of the bundle: the writer's outcome.
    pub(super) async fn finish(self) -> Result<(), UpdateError> {
        drop(self.chunks);
        self.done.await?
    }
}

/// Reads the first `size` bytes of the slot back and compares them with
/// the signed hash: what the device holds, not what was sent.
pub(super) fn read_back(dev: &Path, slot: &'static str, size: u64, sha: &str) -> Result<(), UpdateError> {
    let werr = |source: std::io::Error| UpdateError::Write { slot, source };
    let mut f = std::fs::File::open(dev).map_err(werr)?.take(size);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut chunk = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = f.read(&mut chunk).map_err(werr)?;
        if n == 0 {
            break;
        }
        got += n as u64;
        ctx.update(&chunk[..n]);
    }
    let hash = nearcast_common::digest::hex(ctx.finish().as_ref());
    if got != size || hash != sha {
        return Err(UpdateError::ReadBack {
            slot,
            got,
            hash,
            size,
            sha: sha.to_string(),
        });
    }
    Ok(())
}
