//! The boxes Common Encryption adds to CMAF: `sinf` in the sample entry
//! (`frma`, `schm`, `schi/tenc`) and `pssh` in the init segment; `saiz`,
//! `saio` and `senc` in every fragment's `traf` (ISO/IEC 23001-7 §8 and
//! ISO/IEC 14496-12 §8.7.8-9).

use super::subsample::Entry;
use super::{CencError, Scheme, TrackCrypto, COMMON_SYSTEM_ID};
use crate::cmaf::writer::BoxWriter;

/// One sample's auxiliary information: its IV (`cenc`; `cbcs` uses the
/// constant IV in `tenc`) and subsamples (video).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleAux {
    pub iv: Option<[u8; 8]>,
    pub subsamples: Option<Vec<Entry>>,
}

impl SampleAux {
    /// Bytes of this sample's `senc` entry (what `saiz` lists).
    fn size(&self) -> usize {
        self.iv.map_or(0, |iv| iv.len()) + self.subsamples.as_ref().map_or(0, |s| 2 + 6 * s.len())
    }
}

/// The `sinf` box that goes at the end of an `encv`/`enca` sample entry
/// whose original type was `original`.
pub fn sinf(original: [u8; 4], c: &TrackCrypto) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.open(b"sinf");
    w.open(b"frma").bytes(&original).close();
    let scheme: &[u8; 4] = match c.scheme {
        Scheme::Cenc => b"cenc",
        Scheme::Cbcs => b"cbcs",
    };
    w.open_full(b"schm", 0, 0).bytes(scheme).u32(0x0001_0000).close();
    w.open(b"schi");
    match c.scheme {
        Scheme::Cenc => {
            w.open_full(b"tenc", 0, 0)
                .bytes(&[0, 0, 1, 8])
                .bytes(&c.key.kid)
                .close();
        }
        Scheme::Cbcs => {
            let (crypt, skip) = c.pattern;
            w.open_full(b"tenc", 1, 0)
                .bytes(&[0, (crypt << 4) | (skip & 0x0f), 1, 0])
                .bytes(&c.key.kid)
                .bytes(&[16])
                .bytes(&c.iv)
                .close();
        }
    }
    w.close().close(); // schi, sinf
    w.finish()
}

/// A version-1 `pssh` box of the common system naming `kid`.
pub fn pssh(kid: &[u8; 16]) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.open_full(b"pssh", 1, 0)
        .bytes(&COMMON_SYSTEM_ID)
        .u32(1)
        .bytes(kid)
        .u32(0)
        .close();
    w.finish()
}

/// Writes `saiz`, `saio` and `senc` for `aux` (one per sample of the
/// fragment) into the open `traf`; `saio` points at the first entry of
/// `senc`, counted from the `moof` at `moof_start` (the base offset,
/// as `tfhd` says default-base-is-moof).
pub fn write_aux(w: &mut BoxWriter, moof_start: usize, aux: &[SampleAux]) -> Result<(), CencError> {
    let sizes: Vec<u8> = aux
        .iter()
        .map(|a| {
            u8::try_from(a.size()).map_err(|_| CencError::TooManySubsamples(a.subsamples.as_ref().map_or(0, Vec::len)))
        })
        .collect::<Result<_, _>>()?;
    let count = aux.len() as u32;
    w.open_full(b"saiz", 0, 0);
    match sizes.first() {
        // A default size of 0 means "a table follows", so entries of no
        // bytes (cbcs audio) are listed one by one.
        Some(&first) if first > 0 && sizes.iter().all(|&s| s == first) => {
            w.bytes(&[first]).u32(count);
        }
        _ => {
            w.bytes(&[0]).u32(count).bytes(&sizes);
        }
    }
    w.close();
    w.open_full(b"saio", 0, 0).u32(1);
    let offset_at = w.buf.len();
    w.u32(0).close();
    let with_subsamples = aux.iter().any(|a| a.subsamples.is_some());
    w.open_full(b"senc", 0, if with_subsamples { 2 } else { 0 }).u32(count);
    let first_entry = (w.buf.len() - moof_start) as u32;
    w.buf[offset_at..offset_at + 4].copy_from_slice(&first_entry.to_be_bytes());
    for a in aux {
        if let Some(iv) = a.iv {
            w.bytes(&iv);
        }
        if let Some(subs) = &a.subsamples {
            w.u16(subs.len() as u16);
            for &(clear, protected) in subs {
                w.u16(clear).u32(protected);
            }
        }
    }
    w.close();
    Ok(())
}
