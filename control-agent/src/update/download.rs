//! The bundle download into the inactive slot: the header (signature,
//! release, size, verity parameters) checked before the first byte is
//! written, the hash carried as the bytes go by, a cut download resumed
//! from the byte it stopped at.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use nearcast_common::bundle::{BundleError, Header, RootfsCheck};
use nearcast_verity::Params;

use super::slots::{self, Slot};
use super::writer::SlotWriter;
use super::{UpdateError, Updater};

/// How often a cut download is resumed before the install gives up (and
/// is tried again at a later heartbeat, from the start).
const MAX_RESUMES: u32 = 5;
/// The pause before resuming.
const RESUME_AFTER: Duration = Duration::from_secs(1);

/// A bundle download under way.
struct Download<'a> {
    release: &'a str,
    dev: std::path::PathBuf,
    room: u64,
    target: Slot,
    /// Bundle bytes received so far (header included).
    received: u64,
    /// The header, until it is whole.
    buf: Vec<u8>,
    /// Once the header is in and checked: the slot's writer …
    writer: Option<SlotWriter>,
    /// … and the slot's verity parameters.
    verity: Option<Params>,
}

impl Updater {
    /// Writes `release` into the inactive slot and returns its verity
    /// parameters, as signed: by delta (`delta`) when the server holds the
    /// release's chunk index, else the whole bundle streamed in, signature
    /// first, hash as it goes, then the slot read back. A cut bundle
    /// download resumes from the byte it stopped at (a range request, the
    /// same release, the hash carried on), up to `MAX_RESUMES` times.
    pub(super) async fn write_slot(self: &Arc<Self>, release: &str) -> Result<Params, UpdateError> {
        if let Some((verity, stats)) = self.write_slot_delta(release).await? {
            tracing::info!(%release, "written to slot {}: {stats}", self.slot.other().name());
            let text = format!("installing {release}: {stats}");
            let _ = self.save_blocking(move |s| s.last = text).await;
            return Ok(verity);
        }
        let target = self.slot.other();
        let (dev, room) = slots::device(&self.cfg.sys_block, &self.cfg.dev_dir, target.partname())?;
        let mut dl = Download {
            release,
            dev,
            room,
            target,
            received: 0,
            buf: Vec::new(),
            writer: None,
            verity: None,
        };
        let mut resumes = 0;
        loop {
            match self.stream(&mut dl).await {
                Ok(()) => break,
                Err(UpdateError::Download(e)) if resumes < MAX_RESUMES => {
                    resumes += 1;
                    tracing::warn!(%release, at = dl.received, error = %e, "OS download cut; resuming");
                    tokio::time::sleep(RESUME_AFTER).await;
                }
                Err(e) => return Err(e),
            }
        }
        match (dl.writer, dl.verity) {
            (Some(w), Some(verity)) => w.finish().await.map(|()| verity),
            _ => Err(BundleError::Truncated { got: 0, want: 1 }.into()),
        }
    }

    /// One request's worth of the download: from `dl.received` to the end
    /// of the bundle or the first error.
    async fn stream(&self, dl: &mut Download<'_>) -> Result<(), UpdateError> {
        let download = |e: Box<dyn std::error::Error + Send + Sync>| UpdateError::Download(e);
        let (resp, served) = self
            .link
            .server
            .os_bundle(dl.received)
            .await
            .map_err(|e| download(e.into()))?;
        if dl.received > 0 && served != dl.release {
            let why = format!("resuming release {}, the server now sends '{served}'", dl.release);
            return Err(download(why.into()));
        }
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| download(e.into()))?;
            let Ok(chunk) = frame.into_data() else { continue };
            self.link.bucket.take(chunk.len() as u64).await;
            dl.received += chunk.len() as u64;
            if let Some(w) = &mut dl.writer {
                w.write(chunk).await?;
                continue;
            }
            dl.buf.extend_from_slice(&chunk);
            let Some(h) = Header::parse(&dl.buf)? else { continue };
            dl.verity = Some(self.check_header(&h, dl.release, dl.room, dl.target)?);
            // Only a signed bundle of the right release reaches the slot.
            let check = RootfsCheck::new(&h.manifest);
            let mut w = SlotWriter::start(dl.dev.clone(), dl.target.name(), check, &h.manifest);
            w.write(hyper::body::Bytes::copy_from_slice(&dl.buf[h.len..])).await?;
            dl.writer = Some(w);
            dl.buf = Vec::new();
        }
        Ok(())
    }

    /// The signature, the release, the size and the verity parameters
    /// (which must describe exactly the signed image), before a byte is
    /// written.
    pub(super) fn check_header(
        &self,
        h: &Header,
        release: &str,
        room: u64,
        target: Slot,
    ) -> Result<Params, UpdateError> {
        h.verify(&self.trusted)?;
        if h.manifest.version != release {
            return Err(UpdateError::WrongRelease {
                got: h.manifest.version.to_string(),
                want: release.to_string(),
            });
        }
        if h.manifest.rootfs_size > room {
            return Err(UpdateError::TooBig {
                size: h.manifest.rootfs_size,
                slot: target.name(),
                room,
            });
        }
        let verity = h
            .manifest
            .verity
            .as_deref()
            .ok_or(UpdateError::Verity("the manifest has none".into()))?;
        let params = Params::parse(verity).map_err(|e| UpdateError::Verity(e.to_string()))?;
        if params.image_len() != h.manifest.rootfs_size {
            let why = format!(
                "they describe {} bytes, the image is {}",
                params.image_len(),
                h.manifest.rootfs_size
            );
            return Err(UpdateError::Verity(why));
        }
        Ok(params)
    }
}
