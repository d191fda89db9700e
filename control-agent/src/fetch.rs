//! Downloading one file of the manifest: from each source in turn (peers
//! of the site first, the origin last), resuming a partial download with a
//! range request, under the shared bandwidth cap; the bytes are checked
//! against the manifest's SHA-256 as they are on disk, fsynced and only
//! then renamed into the served place. A mismatch is never placed: the
//! part is thrown away and the next source tried.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::StatusCode;
use nearcast_common::manifest::ManifestFile;
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::disks::{check_rel_path, check_title, Disk, DiskError};
use crate::progress::{Progress, SourceKind};

/// A source silent this long mid-body is given up on (the part is kept).
const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the fill window closed")]
    Interrupted,
    #[error("disk {0} is full")]
    DiskFull(String),
    #[error(transparent)]
    Disk(DiskError),
    #[error("no source could deliver it: {0}")]
    AllSourcesFailed(String),
}

/// One file to fetch and where it goes.
pub struct Fetch<'a> {
    pub disk: &'a Disk,
    pub title: &'a str,
    pub token: &'a str,
    pub file: &'a ManifestFile,
    pub bucket: &'a Bucket,
    pub progress: &'a Progress,
    pub deadline: Instant,
}

/// How one attempt from one source ended, short of success.
enum Attempt {
    /// Try the next source; what was written is kept for resuming.
    Next(String),
    Stop(FetchError),
}

fn disk_err<'a>(path: &Path, disk: &'a Disk) -> impl FnOnce(io::Error) -> FetchError + 'a {
    let path = path.to_path_buf();
    move |e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            disk.set_full(true);
            FetchError::DiskFull(disk.name())
        } else {
            FetchError::Disk(DiskError::Io { path, source: e })
        }
    }
}

/// A disk error, with ENOSPC singled out: it stops that disk, not the fill.
fn on_disk(disk: &Disk) -> impl FnOnce(DiskError) -> FetchError + '_ {
    move |e| match e {
        DiskError::Io { path, source } => disk_err(&path, disk)(source),
        other => FetchError::Disk(other),
    }
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

async fn hash_blocking(path: PathBuf) -> io::Result<String> {
    tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(io::Error::other)?
}

impl Fetch<'_> {
    /// Fetches the file into place. `Ok(None)`: it was there already and
    /// verified; `Ok(Some(kind))`: downloaded from a peer or the origin.
    pub async fn run(&self) -> Result<Option<SourceKind>, FetchError> {
        check_title(self.title).map_err(FetchError::Disk)?;
        check_rel_path(&self.file.path).map_err(FetchError::Disk)?;
        let want = &self.file.sha256;
        let dest = self.disk.final_path(self.title, &self.file.path);
        // Placed before a crash cut the run short: it was verified then,
        // but verify again (it costs a read, and a disk can lie).
        if fs::metadata(&dest).is_ok_and(|m| m.len() == self.file.size) {
            if hash_blocking(dest.clone()).await.is_ok_and(|h| &h == want) {
                return Ok(None);
            }
            let _ = fs::remove_file(&dest);
        }
        let part = self
            .disk
            .part_path(self.title, &self.file.path, want)
            .map_err(on_disk(self.disk))?;
        let mut reasons = Vec::new();
        let last = self.file.sources.len().saturating_sub(1);
        for (i, source) in self.file.sources.iter().enumerate() {
            let kind = if i == last {
                SourceKind::Origin
            } else {
                SourceKind::Peer
            };
            let have = fs::metadata(&part).map_or(0, |m| m.len());
            if have < self.file.size {
                match self.download(source, &part, have).await {
                    Ok(()) => {}
                    Err(Attempt::Next(reason)) => {
                        self.progress.source_failure();
                        reasons.push(format!("{source}: {reason}"));
                        continue;
                    }
                    Err(Attempt::Stop(e)) => return Err(e),
                }
            }
            let got = hash_blocking(part.clone()).await.map_err(disk_err(&part, self.disk))?;
            if &got != want {
                let size = fs::metadata(&part).map_or(0, |m| m.len());
                let _ = fs::remove_file(&part);
                self.progress.discarded(size);
                self.progress.checksum_failure();
                reasons.push(format!("{source}: SHA-256 mismatch (got {got})"));
                continue;
            }
            File::open(&part)
                .and_then(|f| f.sync_all())
                .map_err(disk_err(&part, self.disk))?;
            self.disk
                .place(&part, self.title, &self.file.path)
                .map_err(on_disk(self.disk))?;
            return Ok(Some(kind));
        }
        if self.file.sources.is_empty() {
            reasons.push("the manifest names no source".into());
        }
        Err(FetchError::AllSourcesFailed(reasons.join("; ")))
    }

    /// Appends the rest of the file from `source` to `part`, which holds
    /// `have` bytes already.
    async fn download(&self, source: &str, part: &Path, have: u64) -> Result<(), Attempt> {
        let url = format!(
            "{}/c/{}/{}?{}={}",
            source.trim_end_matches('/'),
            self.title,
            self.file.path,
            nearcast_common::TOKEN_PARAM,
            self.token
        );
        let range = [("range", format!("bytes={have}-"))];
        let headers: &[(&str, String)] = if have > 0 { &range } else { &[] };
        let resp = crate::http::send("GET", &url, headers, Bytes::new())
            .await
            .map_err(|e| Attempt::Next(e.to_string()))?;
        let start = match resp.status() {
            StatusCode::PARTIAL_CONTENT if content_range_start(&resp) == Some(have) => have,
            StatusCode::OK => 0,
            s => return Err(Attempt::Next(format!("answered {s}"))),
        };
        let stop = |e| Attempt::Stop(e);
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(part)
            .map_err(|e| stop(disk_err(part, self.disk)(e)))?;
        f.set_len(start)
            .and_then(|_| f.seek(SeekFrom::Start(start)))
            .map_err(|e| stop(disk_err(part, self.disk)(e)))?;
        if start < have {
            self.progress.discarded(have);
        }
        let mut written = start;
        let mut body = resp.into_body();
        loop {
            let frame = tokio::select! {
                f = tokio::time::timeout(STALL, body.frame()) => f,
                _ = tokio::time::sleep_until(self.deadline) => return Err(stop(FetchError::Interrupted)),
            };
            let data = match frame {
                Err(_) => return Err(Attempt::Next(format!("stalled at byte {written}"))),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(Attempt::Next(format!("body broke at byte {written}: {e}"))),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => d,
                    Err(_) => continue, // trailers
                },
            };
            if written + data.len() as u64 > self.file.size {
                return Err(Attempt::Next(format!(
                    "sent more than the {} bytes listed",
                    self.file.size
                )));
            }
            self.bucket.take(data.len() as u64).await;
            f.write_all(&data).map_err(|e| stop(disk_err(part, self.disk)(e)))?;
            written += data.len() as u64;
            self.progress.downloaded(data.len() as u64);
        }
        if written < self.file.size {
            return Err(Attempt::Next(format!(
                "body ended at byte {written} of {}",
                self.file.size
            )));
        }
        Ok(())
    }
}

/// The first byte of a `Content-Range: bytes a-b/n` answer.
fn content_range_start<B>(resp: &hyper::Response<B>) -> Option<u64> {
    let v = resp.headers().get("content-range")?.to_str().ok()?;
    v.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}
