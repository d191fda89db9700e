//! Cutting a request body into top-level boxes as it arrives, and reading
//! a fragment's timing from its `moof` (ISO/IEC 14496-12 §8.8).

use super::init::Defaults;
use super::IngestError;
use crate::mp4::boxes::{parse_header, BoxRef};
use crate::mp4::Mp4Error;

/// One complete top-level box: its type and all its bytes, header included.
#[derive(Debug)]
pub struct TopBox {
    pub kind: [u8; 4],
    pub bytes: Vec<u8>,
}

impl TopBox {
    /// The body after the header.
    pub fn body(&self) -> Result<&[u8], IngestError> {
        let (_, header, _) = parse_header(&self.bytes, self.bytes.len() as u64)?;
        Ok(&self.bytes[header..])
    }
}

/// Splits a byte stream into top-level boxes, holding at most one
/// incomplete box of at most `limit` bytes.
pub struct Splitter {
    buf: Vec<u8>,
    limit: u64,
}

impl Splitter {
    pub fn new(limit: u64) -> Splitter {
        Splitter { buf: Vec::new(), limit }
    }

    /// Takes the next bytes of the body; returns the boxes they complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<TopBox>, IngestError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(size) = self.next_size(at)? {
            let end = at + size;
            if end > self.buf.len() {
                break;
            }
            let mut kind = [0u8; 4];
            kind.copy_from_slice(&self.buf[at + 4..at + 8]);
            out.push(TopBox {
                kind,
                bytes: self.buf[at..end].to_vec(),
            });
            at = end;
        }
        self.buf.drain(..at);
        Ok(out)
    }

    /// The body ended: anything left is a box cut short.
    pub fn finish(&self) -> Result<(), IngestError> {
        match self.next_size(0)? {
            None if self.buf.is_empty() => Ok(()),
            need => Err(IngestError::Truncated {
                have: self.buf.len() as u64,
                need: need.unwrap_or(8) as u64,
            }),
        }
    }

    /// The size of the box starting at `at`, once its header is in.
    fn next_size(&self, at: usize) -> Result<Option<usize>, IngestError> {
        let head = &self.buf[at..];
        if head.len() < 8 || (head.len() < 16 && head[..4] == [0, 0, 0, 1]) {
            return Ok(None);
        }
        if head[..4] == [0, 0, 0, 0] {
            return Err(Mp4Error::BadBox {
                kind: String::from_utf8_lossy(&head[4..8]).into_owned(),
                reason: "size 0 (to the end of the file) has no end in a stream".into(),
            }
            .into());
        }
        let (kind, _, size) = parse_header(head, u64::MAX)?;
        if size > self.limit {
            return Err(IngestError::Oversize {
                kind: String::from_utf8_lossy(&kind).into_owned(),
                size,
                limit: self.limit,
            });
        }
        Ok(Some(size as usize))
    }
}

/// What a `moof` says of its fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Decode time of the first sample (`tfdt`), in the track's timescale.
    pub base: u64,
    /// Sum of the sample durations.
    pub duration: u64,
    pub samples: u32,
    /// The first sample is a sync sample (a keyframe for video).
    pub starts_with_sync: bool,
    /// Sum of the sample sizes: what the following `mdat` must hold.
    pub data_len: u64,
}

const NON_SYNC: u32 = 0x0001_0000;

/// Reads a `moof` body for track `track_id`, whose `trex` gave `d`. One
/// `traf`, with a `tfdt`, as CMAF requires.
pub fn moof_timing(moof: &[u8], track_id: u32, d: &Defaults) -> Result<Timing, IngestError> {
    moof_samples(moof, track_id, d, None)
}

/// `moof_timing`, and each sample's size pushed to `sizes` if given (in
/// the order of the `mdat`).
pub fn moof_samples(
    moof: &[u8],
    track_id: u32,
    d: &Defaults,
    mut sizes: Option<&mut Vec<u32>>,
) -> Result<Timing, IngestError> {
    let moof = BoxRef {
        kind: *b"moof",
        body: moof,
    };
    let mut trafs = moof
        .children()
        .filter(|b| b.as_ref().map_or(true, |b| &b.kind == b"traf"));
    let traf = trafs.next().ok_or_else(|| missing("traf"))??;
    if trafs.next().is_some() {
        return Err(bad("traf", "more than one track in a CMAF fragment"));
    }
    let (_, flags, mut r) = traf.need(b"tfhd")?.full()?;
    let id = r.u32()?;
    if id != track_id {
        return Err(IngestError::WrongTrack {
            want: track_id,
            got: id,
        });
    }
    let mut d = *d;
    if flags & 0x01 != 0 {
        r.skip(8)?; // base data offset
    }
    if flags & 0x02 != 0 {
        r.skip(4)?; // sample description index
    }
    if flags & 0x08 != 0 {
        d.duration = r.u32()?;
    }
    if flags & 0x10 != 0 {
        d.size = r.u32()?;
    }
    if flags & 0x20 != 0 {
        d.flags = r.u32()?;
    }
    let (v, _, mut t) = traf.need(b"tfdt")?.full()?;
    let base = if v == 1 { t.u64()? } else { u64::from(t.u32()?) };
    let mut timing = Timing {
        base,
        duration: 0,
        samples: 0,
        starts_with_sync: false,
        data_len: 0,
    };
    for b in traf.children() {
        let b = b?;
        if &b.kind == b"trun" {
            trun(&b, &d, &mut timing, sizes.as_deref_mut())?;
        }
    }
    if timing.samples == 0 {
        return Err(bad("trun", "a fragment with no samples"));
    }
    Ok(timing)
}

/// Adds one `trun`'s samples to `t` (and their sizes to `sizes`).
fn trun(b: &BoxRef, d: &Defaults, t: &mut Timing, mut sizes: Option<&mut Vec<u32>>) -> Result<(), IngestError> {
    let (_, flags, mut r) = b.full()?;
    let per = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count() * 4;
    let n = u32::try_from(r.count(per)?).map_err(|_| bad("trun", "sample count"))?;
    if flags & 0x01 != 0 {
        r.skip(4)?; // data offset
    }
    let first_flags = if flags & 0x04 != 0 { Some(r.u32()?) } else { None };
    for i in 0..n {
        let duration = if flags & 0x100 != 0 { r.u32()? } else { d.duration };
        let size = if flags & 0x200 != 0 { r.u32()? } else { d.size };
        let sample_flags = if flags & 0x400 != 0 { r.u32()? } else { d.flags };
        if flags & 0x800 != 0 {
            r.skip(4)?;
        }
        if t.samples == 0 && i == 0 {
            t.starts_with_sync = first_flags.unwrap_or(sample_flags) & NON_SYNC == 0;
        }
        t.duration += u64::from(duration);
        t.data_len += u64::from(size);
        if let Some(s) = sizes.as_deref_mut() {
            s.push(size);
        }
    }
    t.samples = t.samples.checked_add(n).ok_or_else(|| bad("trun", "sample count"))?;
    Ok(())
}

fn missing(what: &str) -> IngestError {
    Mp4Error::Missing {
        what: what.into(),
        inside: "moof".into(),
    }
    .into()
}

fn bad(kind: &str, reason: &str) -> IngestError {
    Mp4Error::BadBox {
        kind: kind.into(),
        reason: reason.into(),
    }
    .into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A box of `kind` around `body`.
    pub(crate) fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// A full box: version 0, `flags`.
    pub(crate) fn full(kind: &[u8; 4], flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = flags.to_be_bytes().to_vec();
        b.extend_from_slice(body);
        bx(kind, &b)
    }

    /// A moof for track 1: tfdt `base`, `n` samples of `size` bytes with
    /// per-sample durations `dur`, the first one sync if `sync`.
    pub(crate) fn moof(base: u64, n: u32, dur: u32, size: u32, sync: bool) -> Vec<u8> {
        let tfhd = full(b"tfhd", 0x02_0000, &1u32.to_be_bytes());
        // Version 1 (in the flags word's top byte): a 64-bit decode time.
        let tfdt = full(b"tfdt", 1 << 24, &base.to_be_bytes());
        let mut trun = n.to_be_bytes().to_vec();
        trun.extend_from_slice(&(if sync { 0u32 } else { NON_SYNC }).to_be_bytes());
        for _ in 0..n {
            trun.extend_from_slice(&dur.to_be_bytes());
            trun.extend_from_slice(&size.to_be_bytes());
        }
        let trun = full(b"trun", 0x04 | 0x100 | 0x200, &trun);
        let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
        bx(b"moof", &[full(b"mfhd", 0, &1u32.to_be_bytes()), traf].concat())
    }

    #[test]
    fn boxes_split_across_any_chunking() {
        let stream = [bx(b"styp", b"cmfs"), moof(0, 3, 512, 10, true), bx(b"mdat", &[7; 30])].concat();
        for step in [1, 3, 7, 64, stream.len()] {
            let mut s = Splitter::new(1 << 20);
            let mut kinds = Vec::new();
            for chunk in stream.chunks(step) {
                kinds.extend(s.push(chunk).unwrap().into_iter().map(|b| b.kind));
            }
            s.finish().unwrap();
            assert_eq!(kinds, [*b"styp", *b"moof", *b"mdat"], "step {step}");
        }
    }

    #[test]
    fn oversize_zero_sized_and_cut_boxes_are_refused() {
        let mut s = Splitter::new(100);
        let big = bx(b"mdat", &[0; 200]);
        assert!(matches!(
            s.push(&big[..8]),
            Err(IngestError::Oversize { size: 208, .. })
        ));
        let mut s = Splitter::new(100);
        assert!(s.push(&[0, 0, 0, 0, b'm', b'd', b'a', b't']).is_err());
        let mut s = Splitter::new(100);
        assert!(s.push(&bx(b"free", &[0; 20])[..15]).unwrap().is_empty());
        assert!(matches!(s.finish(), Err(IngestError::Truncated { have: 15, need: 28 })));
        // A 64-bit size smaller than its own header.
        let mut s = Splitter::new(100);
        let mut huge = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        huge.extend_from_slice(&4u64.to_be_bytes());
        assert!(s.push(&huge).is_err());
    }

    #[test]
    fn moof_timing_reads_tfdt_and_trun() {
        let m = moof(90_000, 15, 1024, 100, true);
        let body = &m[8..];
        let t = moof_timing(body, 1, &Defaults::default()).unwrap();
        assert_eq!(
            t,
            Timing {
                base: 90_000,
                duration: 15 * 1024,
                samples: 15,
                starts_with_sync: true,
                data_len: 1500
            }
        );
        assert!(
            !moof_timing(&moof(0, 1, 1, 1, false)[8..], 1, &Defaults::default())
                .unwrap()
                .starts_with_sync
        );
        assert!(matches!(
            moof_timing(body, 2, &Defaults::default()),
            Err(IngestError::WrongTrack { want: 2, got: 1 })
        ));
        // A sample count the box cannot hold.
        let mut forged = m.clone();
        let at = forged.windows(4).position(|w| w == b"trun").unwrap() + 8;
        forged[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(moof_timing(&forged[8..], 1, &Defaults::default()).is_err());
    }
}
