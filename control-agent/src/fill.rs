//! One fill run: the manifest against what the box holds. Titles are
//! taken in rank order; each goes to one disk (the one it is already on,
//! else by free-space-weighted rendezvous hashing), its files are fetched
//! a few at a time, and only when every file is verified and in place is
//! the title committed to the inventory. Titles that fell out of the
//! manifest are evicted, least popular first whenever room is needed, the
//! rest at the end of the run.

use std::collections::BTreeMap;
use std::sync::Arc;

use nearcast_common::manifest::{FillManifest, ManifestTitle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::agent::Agent;
use nearcast_common::Name;

use crate::disks::{rendezvous_pick, DiskIo, FileRecord, TitleRecord};
use crate::fetch::{Fetch, FetchError};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the manifest lists is held.
    Complete,
    /// Some titles are missing (failures are in the progress report).
    Incomplete,
    /// The window closed; the rest waits for the next one.
    Interrupted,
}

/// Runs the fill for `manifest` until done or `deadline`.
pub async fn fill_once(agent: &Arc<Agent>, manifest: &FillManifest, deadline: Instant) -> Outcome {
    let held = start_run(agent, manifest);
    // Fell out of the manifest: the least popular (highest rank number)
    // at the end, so `pop` takes it first.
    let mut evictable: Vec<(u32, Name)> = held
        .iter()
        .filter(|(t, _)| !manifest.titles.iter().any(|m| m.title == **t))
        .map(|(t, (_, r))| (r.rank, t.clone()))
        .collect();
    evictable.sort();
    let mut outcome = Outcome::Complete;
    for t in &manifest.titles {
        if Instant::now() >= deadline {
            outcome = Outcome::Interrupted;
            break;
        }
        if let Some((disk, record)) = held.get(&t.title) {
            if record.rank != t.rank {
                let record = TitleRecord {
                    rank: t.rank,
                    ..record.clone()
                };
                let r = record.clone();
                if matches!(agent.disks[*disk].run(move |io| io.commit(&r)).await, Ok(Ok(()))) {
                    agent.inventory.add(*disk, record);
                }
            }
            continue;
        }
        let size = FillManifest::bytes_of(t);
        // A disk that fills up mid-title is left for this run and the
        // title starts over on another.
        let ended = loop {
            let Some(disk) = choose_disk(agent, &t.title, size, &mut evictable).await else {
                let reason = format!("no healthy disk has room for {size} bytes");
                agent.progress.fail(&t.title, "", reason);
                break Outcome::Incomplete;
            };
            match fill_title(agent, t, disk, deadline).await {
                Ok(()) => break Outcome::Complete,
                Err(TitleEnd::DiskFull) => {
                    tracing::warn!(title = %t.title, disk = %agent.disks[disk].name(), "disk full; moving the title");
                    let title = t.title.clone();
                    if let Err(e) = agent.disks[disk].run(move |io| io.evict(&title)).await.and_then(|r| r) {
                        tracing::error!(error = %e, "cannot clear the title off the full disk");
                    }
                }
                Err(TitleEnd::Interrupted) => break Outcome::Interrupted,
                Err(TitleEnd::Failed) => break Outcome::Incomplete,
            }
        };
        match ended {
            Outcome::Complete => {}
            Outcome::Interrupted => {
                outcome = Outcome::Interrupted;
                break;
            }
            Outcome::Incomplete => outcome = Outcome::Incomplete,
        }
    }
    if outcome != Outcome::Interrupted {
        clean_up(agent, manifest, evictable).await;
    }
    agent.progress.end_run();
    tracing::info!(version = %manifest.version, ?outcome, "fill run ended");
    outcome
}

/// What the box holds of the manifest as the run starts: a title
/// re-packaged at the origin (other files or checksums) is not held any
/// more, out of the inventory until its new version is in place (files
/// that did not change are verified and kept). Starts the progress report.
fn start_run(agent: &Agent, manifest: &FillManifest) -> BTreeMap<Name, (usize, TitleRecord)> {
    let mut held = agent.inventory.held();
    for t in &manifest.titles {
        if held.get(&t.title).is_some_and(|(_, r)| !same_files(r, t)) {
            tracing::info!(title = %t.title, "title changed at the origin; refilling");
            agent.inventory.remove(&t.title);
            held.remove(&t.title);
        }
    }
    let files_total: u64 = manifest.titles.iter().map(|t| t.files.len() as u64).sum();
    let bytes_total: u64 = manifest.titles.iter().map(FillManifest::bytes_of).sum();
    let held_in_manifest = manifest.titles.iter().filter(|t| held.contains_key(&t.title));
    let (files_held, bytes_held) = held_in_manifest.fold((0, 0), |(f, b), t| {
        (f + t.files.len() as u64, b + FillManifest::bytes_of(t))
    });
    agent
        .progress
        .start_run(&manifest.version, (files_total, bytes_total), (files_held, bytes_held));
    for disk in &agent.disks {
        disk.set_full(false);
    }
    held
}

/// A run that went through: evict what fell out of the manifest, sweep
/// partial downloads of content no longer wanted.
async fn clean_up(agent: &Arc<Agent>, manifest: &FillManifest, mut evictable: Vec<(u32, Name)>) {
    while let Some((_, title)) = evictable.pop() {
        evict(agent, &title).await;
    }
    let keep: std::collections::BTreeSet<String> = manifest
        .titles
        .iter()
        .flat_map(|t| t.files.iter().map(|f| f.sha256.clone()))
        .collect();
    let keep = Arc::new(keep);
    for disk in &agent.disks {
        let keep = keep.clone();
        let _ = disk.run(move |io| io.sweep_parts(&keep)).await;
    }
}

/// Whether a held title is the manifest's version of it.
fn same_files(record: &TitleRecord, t: &ManifestTitle) -> bool {
    record.files.len() == t.files.len()
        && record
            .files
            .iter()
            .zip(&t.files)
            .all(|(a, b)| a.path == b.path && a.size == b.size && a.sha256 == b.sha256)
}

/// The disk for a new title: the one holding some of it already, else the
/// rendezvous pick among disks with room, evicting fallen-out titles
/// until one has room.
async fn choose_disk(agent: &Arc<Agent>, title: &str, size: u64, evictable: &mut Vec<(u32, Name)>) -> Option<usize> {
    let usable: Vec<usize> = (0..agent.disks.len()).filter(|&i| agent.disks[i].usable()).collect();
    for &i in &usable {
        let t = title.to_string();
        if agent.disks[i].run(move |io| io.holds(&t)).await.unwrap_or(false) {
            return Some(i);
        }
    }
    loop {
        let mut candidates = Vec::new();
        for &i in &usable {
            // A fresh look: the disk's thread refreshes what it saw.
            let _ = agent.disks[i].run(DiskIo::refresh).await;
            let free = agent.disks[i].space_seen().free;
            if agent.disks[i].readable() && free >= size {
                candidates.push((i, agent.disks[i].root.as_path(), free));
            }
        }
        if let Some(i) = rendezvous_pick(title, &candidates) {
            return Some(i);
        }
        let (_, victim) = evictable.pop()?;
        evict(agent, &victim).await;
    }
}

/// Takes a title out: the inventory first (and the fill server is told,
/// so steering stops sending players), then the files.
async fn evict(agent: &Arc<Agent>, title: &str) {
    let Some((disk, _)) = agent.inventory.remove(title) else {
        return;
    };
    if let Err(e) = agent.server.inventory(&agent.inventory.report()).await {
        tracing::warn!(error = %e, "inventory report before eviction failed; evicting anyway");
    }
    let t = title.to_string();
    match agent.disks[disk].run(move |io| io.evict(&t)).await.and_then(|r| r) {
        Ok(()) => {
            agent.progress.evicted();
            tracing::info!(title, "evicted");
        }
        Err(e) => tracing::error!(title, error = %e, "eviction failed"),
    }
}

/// Why a title did not complete.
enum TitleEnd {
    Interrupted,
    DiskFull,
    Failed,
}

/// Fetches every file of `t` onto `disk`, `concurrency` at a time, and
/// commits the title when all are in place.
async fn fill_title(agent: &Arc<Agent>, t: &ManifestTitle, disk: usize, deadline: Instant) -> Result<(), TitleEnd> {
    let permits = Arc::new(Semaphore::new(agent.config.concurrency));
    let title = Arc::new(t.clone());
    let mut tasks = JoinSet::new();
    for i in 0..t.files.len() {
        let (agent, title, permits) = (agent.clone(), title.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let file = &title.files[i];
            let fetch = Fetch {
                disk: &agent.disks[disk],
                title: &title.title,
                token: &title.token,
                file,
                bucket: &agent.bucket,
                progress: &agent.progress,
                deadline,
            };
            let result = fetch.run().await;
            match &result {
                Ok(from) => agent.progress.file_placed(file.size, *from),
                Err(FetchError::Interrupted) => {}
                Err(e) => agent.progress.fail(&title.title, &file.path, e.to_string()),
            }
            result.map(drop)
        });
    }
    let (mut interrupted, mut full, mut failed) = (false, false, false);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(FetchError::Interrupted)) => interrupted = true,
            Ok(Err(FetchError::DiskFull(_))) => full = true,
            Ok(Err(_)) | Err(_) => failed = true,
        }
    }
    if interrupted {
        return Err(TitleEnd::Interrupted);
    }
    if full {
        return Err(TitleEnd::DiskFull);
    }
    if failed {
        return Err(TitleEnd::Failed);
    }
    let record = TitleRecord {
        title: t.title.clone(),
        rank: t.rank,
        files: t
            .files
            .iter()
            .map(|f| FileRecord {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect(),
    };
    let r = record.clone();
    match agent.disks[disk].run(move |io| io.commit(&r)).await.and_then(|r| r) {
        Ok(()) => {
            tracing::info!(title = %t.title, disk = %agent.disks[disk].name(), "title complete");
            agent.inventory.add(disk, record);
            Ok(())
        }
        Err(e) => {
            agent.progress.fail(&t.title, "", e.to_string());
            Err(TitleEnd::Failed)
        }
    }
}
