//! Downloading one file of the manifest: from each source in turn (peers
//! of the site first, the origin last), resuming a partial download with a
//! range request, under the shared bandwidth cap. The bytes go to the
//! disk's own thread as they arrive (`disks/io.rs`), which writes them,
//! checks them against the manifest's SHA-256 as they are on disk, fsyncs
//! and only then renames them into the served place, and answers
//! `Placed | Mismatch | Full | Failed`. A mismatch is never placed: the
//! part is thrown away and the next source tried.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::StatusCode;
use nearcast_common::manifest::ManifestFile;
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::disks::{Disk, DiskError, Finished};
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

/// A disk error, with ENOSPC singled out: it stops that disk, not the fill.
fn on_disk(disk: &Disk) -> impl FnOnce(DiskError) -> FetchError + '_ {
    move |e| match e {
        DiskError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            disk.set_full(true);
            FetchError::DiskFull(disk.name())
        }
        other => FetchError::Disk(other),
    }
}

impl Fetch<'_> {
    /// Fetches the file into place. `Ok(None)`: it was there already and
    /// verified; `Ok(Some(kind))`: downloaded from a peer or the origin.
    pub async fn run(&self) -> Result<Option<SourceKind>, FetchError> {
        let (title, path, size, want) = (
            self.title.to_string(),
            self.file.path.to_string(),
            self.file.size,
            self.file.sha256.clone(),
        );
        // Placed before a crash cut the run short: it was verified then,
        // but verify again (it costs a read, and a disk can lie).
        let (t, p, w) = (title.clone(), path.clone(), want.clone());
        if self.on_disk(move |io| Ok(io.verify_placed(&t, &p, size, &w))).await? {
            return Ok(None);
        }
        let mut reasons = Vec::new();
        let last = self.file.sources.len().saturating_sub(1);
        for (i, source) in self.file.sources.iter().enumerate() {
            let kind = if i == last {
                SourceKind::Origin
            } else {
                SourceKind::Peer
            };
            let (t, p, w) = (title.clone(), path.clone(), want.clone());
            let (part, have) = self.on_disk(move |io| io.part(&t, &p, &w)).await?;
            if have < size {
                let got = self.download(source, &part, have).await;
                let p = part.clone();
                let _ = self.disk.run(move |io| io.close(&p)).await;
                match got {
                    Ok(()) => {}
                    Err(Attempt::Next(reason)) => {
                        self.progress.source_failure();
                        reasons.push(format!("{source}: {reason}"));
                        continue;
                    }
                    Err(Attempt::Stop(e)) => return Err(e),
                }
            }
            let (t, p, w) = (title.clone(), path.clone(), want.clone());
            match self.disk.run(move |io| io.finish(&part, &t, &p, &w)).await {
                Ok(Finished::Placed) => return Ok(Some(kind)),
                Ok(Finished::Mismatch { got, size }) => {
                    self.progress.discarded(size);
                    self.progress.checksum_failure();
                    reasons.push(format!("{source}: SHA-256 mismatch (got {got})"));
                }
                Ok(Finished::Full) => {
                    self.disk.set_full(true);
                    return Err(FetchError::DiskFull(self.disk.name()));
                }
                Ok(Finished::Failed(e)) | Err(e) => return Err(on_disk(self.disk)(e)),
            }
        }
        if self.file.sources.is_empty() {
            reasons.push("the manifest names no source".into());
        }
        Err(FetchError::AllSourcesFailed(reasons.join("; ")))
    }

    /// Runs `f` on the disk's thread; its errors as fetch errors.
    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::disks::DiskIo) -> Result<T, DiskError> + Send + 'static,
    ) -> Result<T, FetchError> {
        self.disk.run(f).await.and_then(|r| r).map_err(on_disk(self.disk))
    }

    /// Appends the rest of the file from `source` to `part`, which holds
    /// `have` bytes already; the bytes go to the disk's thread as they
    /// arrive.
    async fn download(&self, source: &str, part: &std::path::Path, have: u64) -> Result<(), Attempt> {
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
        let part: PathBuf = part.to_path_buf();
        let p = part.clone();
        self.on_disk(move |io| io.begin(&p, start))
            .await
            .map_err(Attempt::Stop)?;
        if start < have {
            self.progress.discarded(have);
        }
        let mut written = start;
        let mut body = resp.into_body();
        loop {
            let frame = tokio::select! {
                f = tokio::time::timeout(STALL, body.frame()) => f,
                _ = tokio::time::sleep_until(self.deadline) => return Err(Attempt::Stop(FetchError::Interrupted)),
            };
            let data: Bytes = match frame {
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
            let n = data.len() as u64;
            let p = part.clone();
            self.on_disk(move |io| io.write(&p, &data))
                .await
                .map_err(Attempt::Stop)?;
            written += n;
            self.progress.downloaded(n);
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
