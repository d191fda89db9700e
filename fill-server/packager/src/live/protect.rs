//! Encrypting a live track as it is ingested, with the same Common
//! Encryption as packaged titles (`crate::cenc`). The encoder's init
//! segment gets its sample entry as `encv`/`enca` with a `sinf`, and a
//! `pssh` in the `moov`; each fragment's samples are encrypted in place in
//! its `mdat`, and its `traf` gets `saiz`, `saio` and `senc`, the `trun`'s
//! data offset moved on by what the `moof` grew. Sample numbers (the
//! `cenc` IVs) run on across fragments and encoder restarts.
//!
//! A fragment this cannot place safely is refused, not passed in the
//! clear: a `tfhd` with an absolute base offset, more than one `trun`, no
//! data offset, or samples that are already encrypted.

use super::fragment::moof_samples;
use super::init::{Defaults, LiveInit};
use super::IngestError;
use crate::cenc::{self, ContentKey, Scheme, TrackCrypto};
use crate::cmaf::writer::BoxWriter;
use crate::mp4::boxes::Boxes;
use crate::mp4::{Mp4Error, TrackKind};

/// One track's encryption, kept across its fragments.
pub struct LiveProtection {
    crypto: TrackCrypto,
    /// The license service the manifests name.
    license_url: String,
    kind: TrackKind,
    /// The number of the next sample (its IV under `cenc`).
    next: u64,
}

fn refuse(reason: &str) -> IngestError {
    Mp4Error::Unsupported(format!("encrypting live media: {reason}")).into()
}

/// A box of `kind` around `body` (32-bit size).
fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 8);
    b.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

impl LiveProtection {
    /// Encryption of the track `init` describes under `key`, licensed by
    /// `license_url`.
    pub fn new(
        scheme: Scheme,
        key: ContentKey,
        init: &LiveInit,
        license_url: &str,
    ) -> Result<LiveProtection, IngestError> {
        let crypto = TrackCrypto::new(scheme, key, &init.track).map_err(|e| refuse(&e.to_string()))?;
        Ok(LiveProtection {
            crypto,
            license_url: license_url.trim_end_matches('/').to_string(),
            kind: init.track.kind,
            next: 0,
        })
    }

    /// What the manifests signal for the track.
    pub fn signalling(&self) -> crate::rendition::Protection {
        crate::rendition::Protection {
            scheme: self.crypto.scheme,
            kid: self.crypto.key.kid,
            license_url: self.license_url.clone(),
            systems: Vec::new(),
        }
    }

    /// The encrypted form of an encoder's init segment.
    pub fn init(&self, bytes: &[u8]) -> Result<Vec<u8>, IngestError> {
        let mut out = Vec::with_capacity(bytes.len() + 256);
        for b in Boxes::new(bytes) {
            let b = b?;
            if &b.kind == b"moov" {
                let mut body = self.descend(b.body, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"])?;
                body.extend_from_slice(&cenc::pssh(&self.crypto.key.kid));
                out.extend_from_slice(&boxed(b"moov", &body));
            } else {
                out.extend_from_slice(&boxed(&b.kind, b.body));
            }
        }
        Ok(out)
    }

    /// `body`'s children, the one on `path` rewritten (down to `stsd`).
    fn descend(&self, body: &[u8], path: &[&[u8; 4]]) -> Result<Vec<u8>, IngestError> {
        let mut out = Vec::with_capacity(body.len() + 128);
        for b in Boxes::new(body) {
            let b = b?;
            let inner = match path {
                [kind, rest @ ..] if &b.kind == *kind && !rest.is_empty() => self.descend(b.body, rest)?,
                [kind] if &b.kind == *kind => self.stsd(b.body)?,
                _ => b.body.to_vec(),
            };
            out.extend_from_slice(&boxed(&b.kind, &inner));
        }
        Ok(out)
    }

    /// An `stsd` body whose first sample entry is encrypted.
    fn stsd(&self, body: &[u8]) -> Result<Vec<u8>, IngestError> {
        let head = body.get(..8).ok_or_else(|| refuse("stsd is too short"))?;
        let entry = Boxes::new(&body[8..])
            .next()
            .ok_or_else(|| refuse("stsd has no sample entry"))??;
        if matches!(&entry.kind, b"encv" | b"enca") {
            return Err(refuse("the encoder's track is encrypted already"));
        }
        let kind = if self.kind == TrackKind::Video {
            b"encv"
        } else {
            b"enca"
        };
        let mut entry_body = entry.body.to_vec();
        entry_body.extend_from_slice(&cenc::sinf(entry.kind, &self.crypto));
        let mut out = head.to_vec();
        out.extend_from_slice(&boxed(kind, &entry_body));
        Ok(out)
    }

    /// The encrypted (`moof`, `mdat`) of one fragment (whole boxes in,
    /// whole boxes out) of track `track_id` with `trex` defaults `d`.
    pub fn fragment(
        &mut self,
        moof: &[u8],
        mdat: &[u8],
        track_id: u32,
        d: &Defaults,
    ) -> Result<(Vec<u8>, Vec<u8>), IngestError> {
        let moof_body = moof.get(8..).ok_or_else(|| refuse("moof too short"))?;
        let mut sizes = Vec::new();
        moof_samples(moof_body, track_id, d, Some(&mut sizes))?;
        let (traf, data_offset) = traf_of(moof_body)?;
        let mut data = mdat.get(8..).ok_or_else(|| refuse("mdat too short"))?.to_vec();
        let start = (data_offset as usize)
            .checked_sub(moof.len() + 8)
            .ok_or_else(|| refuse("the trun's data offset points before the mdat"))?;
        let mut at = start;
        let mut aux = Vec::with_capacity(sizes.len());
        for size in &sizes {
            let end = at + *size as usize;
            let sample = data
                .get_mut(at..end)
                .ok_or_else(|| refuse("a sample runs past the mdat"))?;
            aux.push(
                self.crypto
                    .encrypt(self.next, sample)
                    .map_err(|e| refuse(&e.to_string()))?,
            );
            self.next += 1;
            at = end;
        }
        // The moof again, its traf with the auxiliary information.
        let mut w = BoxWriter::new();
        w.open(b"moof");
        let mut trun_at = None;
        for b in Boxes::new(moof_body) {
            let b = b?;
            if &b.kind != b"traf" {
                w.bytes(&boxed(&b.kind, b.body));
                continue;
            }
            w.open(b"traf");
            for c in Boxes::new(traf) {
                let c = c?;
                if &c.kind == b"trun" {
                    trun_at = Some(w.buf.len());
                }
                w.bytes(&boxed(&c.kind, c.body));
            }
            cenc::write_aux(&mut w, 0, &aux).map_err(|e| refuse(&e.to_string()))?;
            w.close();
        }
        w.close();
        let mut new_moof = w.finish();
        let grew = (new_moof.len() - moof.len()) as u32;
        let field = trun_at.ok_or_else(|| refuse("no trun"))? + 16;
        new_moof[field..field + 4].copy_from_slice(&(data_offset + grew).to_be_bytes());
        Ok((new_moof, boxed(b"mdat", &data)))
    }
}

/// The one `traf` body of a `moof` body and its one `trun`'s data offset;
/// what cannot be placed safely is refused.
fn traf_of(moof_body: &[u8]) -> Result<(&[u8], u32), IngestError> {
    let mut traf = None;
    for b in Boxes::new(moof_body) {
        let b = b?;
        if &b.kind == b"traf" {
            traf = Some(b.body);
        }
    }
    let traf = traf.ok_or_else(|| refuse("no traf"))?;
    let mut offsets = Vec::new();
    for c in Boxes::new(traf) {
        let c = c?;
        match &c.kind {
            b"tfhd" if c.body.get(3).is_some_and(|f| f & 0x01 != 0) => {
                return Err(refuse("the tfhd gives an absolute base data offset"));
            }
            b"senc" | b"saiz" | b"saio" => return Err(refuse("the samples are encrypted already")),
            b"trun" => {
                let flags = c.body.get(3).copied().unwrap_or(0);
                let offset = c.body.get(8..12).filter(|_| flags & 0x01 != 0);
                offsets.push(offset.map(|o| u32::from_be_bytes([o[0], o[1], o[2], o[3]])));
            }
            _ => {}
        }
    }
    match offsets.as_slice() {
        [Some(o)] => Ok((traf, *o)),
        [None] => Err(refuse("the trun has no data offset")),
        other => Err(refuse(&format!("{} truns in a fragment", other.len()))),
    }
}
