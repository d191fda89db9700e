//! Delta installs: the new slot built from content-defined chunks
//! (`nearcast_common::chunks`). The fill server sends the release's
//! bundle header and chunk index; the index must hash to what the signed
//! manifest names. Each chunk is then taken, in order of preference, from
//! the inactive slot itself (already there: an install cut by a power
//! loss or an agent restart resumes), from the active slot (unchanged
//! since the running release), or from the fill server, checked against
//! its hash (a bad one is refused and fetched again). The slot is then
//! read back whole against the signed image hash, as a full install is.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nearcast_common::bundle::{BundleError, Header};
use nearcast_common::chunks::{self, Chunk};
use nearcast_verity::Params;

use super::grubenv::GrubEnv;
use super::slots::{self, Slot};
use super::{blocking, writer, UpdateError, Updater};

/// Fetches of one chunk before the install gives up (and is tried again,
/// resuming, at a later heartbeat).
const CHUNK_TRIES: u32 = 5;
const CHUNK_RETRY: Duration = Duration::from_secs(2);
/// Fetched bytes between two syncs of the slot: what a power cut can
/// make a resumed install fetch again.
const SYNC_EVERY: u64 = 512 << 10;

/// What a delta install took from where.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct DeltaStats {
    pub chunks: usize,
    pub image_bytes: u64,
    /// Already in the inactive slot at their place.
    pub in_place: usize,
    /// Copied from the active slot.
    pub copied: usize,
    pub fetched: usize,
    pub fetched_bytes: u64,
}

impl std::fmt::Display for DeltaStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "delta: fetched {} of {} bytes ({} of {} chunks; {} from the running slot, {} already in place)",
            self.fetched_bytes, self.image_bytes, self.fetched, self.chunks, self.copied, self.in_place
        )
    }
}

fn download(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> UpdateError {
    UpdateError::Download(e.into())
}

impl Updater {
    /// Installs `release` into the inactive slot from chunks; `Ok(None)`
    /// when the server holds no chunk index for it or its manifest signs
    /// none (the caller then downloads the bundle whole).
    pub(super) async fn write_slot_delta(
        self: &Arc<Self>,
        release: &str,
    ) -> Result<Option<(Params, DeltaStats)>, UpdateError> {
        let Some(body) = self.link.server.os_index().await.map_err(download)? else {
            return Ok(None);
        };
        let h = Header::parse(&body)?.ok_or(BundleError::Truncated {
            got: body.len() as u64,
            want: body.len() as u64 + 1,
        })?;
        let target = self.slot.other();
        let (dev, room) = slots::device(&self.cfg.sys_block, &self.cfg.dev_dir, target.partname())?;
        let verity = self.check_header(&h, release, room, target)?;
        let Some(signed) = h.manifest.chunk_index_sha256.clone() else {
            return Ok(None);
        };
        let index = &body[h.len..];
        let got = chunks::index_sha256(index);
        if got != signed {
            return Err(UpdateError::Chunks(format!(
                "the index hashes to {got}, the manifest signs {signed}"
            )));
        }
        let list = chunks::parse(index, h.manifest.rootfs_size).map_err(|e| UpdateError::Chunks(e.to_string()))?;
        let active = self.active_image()?;
        let (d, l) = (dev.clone(), list.clone());
        let (missing, mut stats) = blocking(move || place_local(&d, target, active.as_ref(), &l)).await?;
        let mut unsynced = 0;
        for c in missing {
            let bytes = self.fetch_chunk(&c, release).await?;
            stats.fetched += 1;
            stats.fetched_bytes += u64::from(c.len);
            unsynced += u64::from(c.len);
            let sync = unsynced >= SYNC_EVERY;
            if sync {
                unsynced = 0;
            }
            let d = dev.clone();
            blocking(move || write_at(&d, target, c.offset, &bytes, sync)).await?;
        }
        let (size, sha) = (h.manifest.rootfs_size, h.manifest.rootfs_sha256.clone());
        blocking(move || {
            let f = open_rw(&dev, target)?;
            f.sync_all().map_err(|source| UpdateError::Write {
                slot: target.name(),
                source,
            })?;
            writer::read_back(&dev, target.name(), size, &sha)
        })
        .await?;
        Ok(Some((verity, stats)))
    }

    /// The running slot's device and image length (its verity parameters
    /// in GRUB's environment); `None` when they are unknown: every chunk
    /// not already in place is then fetched.
    fn active_image(&self) -> Result<Option<(PathBuf, u64)>, UpdateError> {
        let env = GrubEnv::read(&self.cfg.grubenv)?;
        let Ok(params) = Params::parse(env.get(self.slot.verity_var())) else {
            return Ok(None);
        };
        let (dev, _) = slots::device(&self.cfg.sys_block, &self.cfg.dev_dir, self.slot.partname())?;
        Ok(Some((dev, params.image_len())))
    }

    /// One chunk from the fill server, its hash checked; a wrong one is
    /// refused (and said so in the heartbeat) and fetched again.
    async fn fetch_chunk(self: &Arc<Self>, c: &Chunk, release: &str) -> Result<Vec<u8>, UpdateError> {
        let hex = c.hex();
        let mut last = String::new();
        for attempt in 1..=CHUNK_TRIES {
            self.link.bucket.take(u64::from(c.len)).await;
            match self.link.server.os_chunk(&hex).await {
                Ok(b) if b.len() == c.len as usize && nearcast_common::sha256_hex(&b) == hex => return Ok(b.to_vec()),
                Ok(b) => last = format!("{} bytes hashing {}", b.len(), nearcast_common::sha256_hex(&b)),
                Err(e) => last = e.to_string(),
            }
            let text = format!("installing {release}: chunk {hex} refused ({last}); fetching it again");
            tracing::warn!(%release, attempt, "{text}");
            let _ = self.save_blocking(move |s| s.last = text).await;
            tokio::time::sleep(CHUNK_RETRY).await;
        }
        Err(download(format!("chunk {hex}: {CHUNK_TRIES} tries, the last {last}")))
    }
}

fn open_rw(dev: &Path, slot: Slot) -> Result<std::fs::File, UpdateError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map_err(|source| UpdateError::Write {
            slot: slot.name(),
            source,
        })
}

/// Writes a fetched chunk at its place; `sync`: then makes the slot's
/// writes so far durable, so an install cut after it resumes past them.
fn write_at(dev: &Path, slot: Slot, offset: u64, bytes: &[u8], sync: bool) -> Result<(), UpdateError> {
    let f = open_rw(dev, slot)?;
    f.write_all_at(bytes, offset)
        .and_then(|()| if sync { f.sync_data() } else { Ok(()) })
        .map_err(|source| UpdateError::Write {
            slot: slot.name(),
            source,
        })
}

/// Puts every chunk it can in place from local bytes: those the target
/// slot already holds at their offset stay, those the active image has
/// are copied. The chunks left to fetch, and the counts so far.
fn place_local(
    dev: &Path,
    slot: Slot,
    active: Option<&(PathBuf, u64)>,
    list: &[Chunk],
) -> Result<(Vec<Chunk>, DeltaStats), UpdateError> {
    let werr = |source: std::io::Error| UpdateError::Write {
        slot: slot.name(),
        source,
    };
    let size = list.last().map_or(0, |c| c.offset + u64::from(c.len));
    let target = open_rw(dev, slot)?;
    let mut have = vec![0u8; size as usize];
    let n = read_full_at(&target, &mut have).map_err(werr)?;
    have.truncate(n);
    let seed = match active {
        Some((path, len)) => {
            let mut bytes = vec![0u8; *len as usize];
            let f = std::fs::File::open(path).map_err(werr)?;
            let n = read_full_at(&f, &mut bytes).map_err(werr)?;
            bytes.truncate(n);
            bytes
        }
        None => Vec::new(),
    };
    let seeds: HashMap<[u8; 32], std::ops::Range<usize>> = chunks::chunk(&seed)
        .into_iter()
        .map(|c| (c.sha256, c.range()))
        .collect();
    let mut stats = DeltaStats {
        chunks: list.len(),
        image_bytes: size,
        ..DeltaStats::default()
    };
    let mut missing = Vec::new();
    for c in list {
        let here = have
            .get(c.range())
            .map(|b| ring::digest::digest(&ring::digest::SHA256, b));
        if here.is_some_and(|d| d.as_ref() == c.sha256) {
            stats.in_place += 1;
        } else if let Some(r) = seeds.get(&c.sha256) {
            target.write_all_at(&seed[r.clone()], c.offset).map_err(werr)?;
            stats.copied += 1;
        } else {
            missing.push(*c);
        }
    }
    Ok((missing, stats))
}

/// Reads from the start until `buf` is full or the device ends.
fn read_full_at(f: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}
