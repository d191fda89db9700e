//! CMAF media segments: `styp`, then fragments of `moof(mfhd, traf(tfhd,
//! tfdt, trun))` and `mdat`, with per-sample duration, size, flags and
//! composition offsets; an encrypted track's `traf` adds `saiz`, `saio`
//! and `senc`. Video keyframes get a fragment each, so an I-frame is a
//! byte range a player can fetch and decode alone (trick play).

use super::init::TRACK_ID;
use super::writer::BoxWriter;
use crate::cenc::{self, CencError, TrackCrypto};
use crate::mp4::{Movie, Mp4Error, Sample};

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error(transparent)]
    Read(#[from] Mp4Error),
    #[error("encrypting: {0}")]
    Encrypt(#[from] CencError),
}

/// A track's encryption and the number (from 0) of the segment's first
/// sample in the track.
pub type Encrypt<'a> = Option<(&'a TrackCrypto, u64)>;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;
/// sample_depends_on = 2 (an I-frame).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1, sample_is_non_sync_sample = 1.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A built media segment and where its keyframes' fragments lie in it.
pub struct Segment {
    pub bytes: Vec<u8>,
    /// Each fragment that starts with a keyframe: (byte offset, length,
    /// index of its keyframe in the segment's samples). A byte range a
    /// player can fetch alone (HLS I-frame playlists, DASH trick mode).
    pub keys: Vec<(u64, u64, usize)>,
}

/// Builds a media segment of `samples`, read from `movie` and encrypted
/// as `encrypt` says; `fragments` numbers its fragments (`mfhd`) and is
/// advanced past them. With `split_keys`, each keyframe is a fragment of
/// its own (`moof` + `mdat` holding just it) followed by one for the
/// frames up to the next keyframe; else the segment is one fragment.
pub fn media_segment(
    movie: &Movie,
    fragments: &mut u32,
    samples: &[Sample],
    encrypt: Encrypt,
    split_keys: bool,
) -> Result<Segment, SegmentError> {
    let payload_len: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let mut payload = Vec::with_capacity(payload_len as usize);
    for s in samples {
        movie.read_sample(s, &mut payload)?;
    }
    let aux = match encrypt {
        Some((c, first_n)) => Some(encrypt_samples(c, first_n, samples, &mut payload)?),
        None => None,
    };
    let mut bytes = styp();
    let mut keys = Vec::new();
    let mut at = 0usize;
    for part in parts(samples, split_keys) {
        let len: usize = samples[part.clone()].iter().map(|s| s.size as usize).sum();
        let aux_part = aux.as_ref().map(|a| &a[part.clone()]);
        let frag = moof_mdat(*fragments, &samples[part.clone()], &payload[at..at + len], aux_part)?;
        *fragments += 1;
        if samples[part.start].sync && split_keys {
            keys.push((bytes.len() as u64, frag.len() as u64, part.start));
        }
        bytes.extend_from_slice(&frag);
        at += len;
    }
    Ok(Segment { bytes, keys })
}

/// The fragments' sample ranges: `[K][P…][K][P…]` when split at keys.
fn parts(samples: &[Sample], split_keys: bool) -> Vec<std::ops::Range<usize>> {
    if !split_keys {
        return std::iter::once(0..samples.len()).collect();
    }
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        // A keyframe stands alone; other frames join the run before them
        // unless that run is a keyframe's.
        match out.last_mut() {
            Some(run) if !s.sync && !samples[run.start].sync => run.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The `styp` every segment starts with.
fn styp() -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.open(b"styp")
        .bytes(b"msdh")
        .u32(0)
        .bytes(b"msdh")
        .bytes(b"msix")
        .bytes(b"cmfs")
        .close();
    w.finish()
}

/// A one-fragment segment of `samples` whose bytes are `payload` (laid
/// out in order), with the encryption's auxiliary information if given.
pub fn fragment(
    seq: u32,
    samples: &[Sample],
    payload: &[u8],
    aux: Option<&[cenc::SampleAux]>,
) -> Result<Vec<u8>, SegmentError> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut bytes = styp();
    bytes.extend(moof_mdat(seq, samples, payload, aux)?);
    Ok(bytes)
}

/// `moof` (sequence number `seq`) + `mdat` of `samples`.
fn moof_mdat(
    seq: u32,
    samples: &[Sample],
    payload: &[u8],
    aux: Option<&[cenc::SampleAux]>,
) -> Result<Vec<u8>, SegmentError> {
    let Some(first) = samples.first() else {
        return Ok(Vec::new());
    };
    let payload_len = payload.len() as u64;
    let with_cts = samples.iter().any(|s| s.cts_offset != 0);
    let mut w = BoxWriter::new();
    let moof_start = w.buf.len();
    w.open(b"moof");
    w.open_full(b"mfhd", 0, 0).u32(seq).close();
    w.open(b"traf");
    w.open_full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF).u32(TRACK_ID).close();
    w.open_full(b"tfdt", 1, 0).u64(first.dts).close();
    let flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | if with_cts { TRUN_CTS } else { 0 };
    w.open_full(b"trun", 1, flags).u32(samples.len() as u32);
    let data_offset_at = w.buf.len();
    w.u32(0);
    for s in samples {
        w.u32(s.duration)
            .u32(s.size)
            .u32(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC });
        if with_cts {
            w.u32(s.cts_offset as u32);
        }
    }
    w.close(); // trun
    if let Some(aux) = aux {
        cenc::write_aux(&mut w, moof_start, aux)?;
    }
    w.close().close(); // traf, moof
    let moof_len = w.buf.len() - moof_start;
    let data_offset = (moof_len + 8) as u32;
    w.buf[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    w.u32((payload_len + 8) as u32).bytes(b"mdat");
    let mut buf = w.finish();
    buf.extend_from_slice(payload);
    Ok(buf)
}

/// Encrypts each sample of `payload` (laid out as `samples`) in place.
fn encrypt_samples(
    c: &TrackCrypto,
    first_n: u64,
    samples: &[Sample],
    payload: &mut [u8],
) -> Result<Vec<cenc::SampleAux>, CencError> {
    let mut at = 0usize;
    let mut aux = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let end = at + s.size as usize;
        aux.push(c.encrypt(first_n + i as u64, &mut payload[at..end])?);
        at = end;
    }
    Ok(aux)
}
