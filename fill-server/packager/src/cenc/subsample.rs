//! Which bytes of a sample are encrypted: the subsample map of Common
//! Encryption (ISO/IEC 23001-7 §9.5 and §10).
//!
//! Video (H.264, HEVC) is split at its NAL units: a non-VCL unit (SPS,
//! PPS, SEI, AUD, …) stays clear; a slice keeps its length prefix, its
//! NAL header and the few bytes that make the rest whole 16-byte blocks
//! clear, and the blocks are protected (what Shaka Packager and Bento4
//! do). A decoder can find and parse every NAL unit without the key.
//! Audio is encrypted whole (no subsamples).

use super::CencError;

/// How a track's samples are laid out for encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Length-prefixed NAL units: the prefix size, the NAL header size
    /// (1 for H.264, 2 for HEVC) and the codec.
    Nal { length_size: usize, hevc: bool },
    /// The whole sample is protected.
    Whole,
}

/// One subsample entry: clear bytes, then protected bytes.
pub type Entry = (u16, u32);

const BLOCK: usize = 16;

/// The subsample entries of a `data`-sized sample (empty for `Whole`).
pub fn map(layout: Layout, data: &[u8]) -> Result<Vec<Entry>, CencError> {
    let Layout::Nal { length_size, hevc } = layout else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let mut clear = 0usize;
    let mut at = 0usize;
    while at < data.len() {
        let prefix = data.get(at..at + length_size).ok_or(CencError::BadNal {
            at,
            reason: "a NAL length prefix is cut off",
        })?;
        let len = prefix.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        let end = at
            .checked_add(length_size + len)
            .filter(|&e| e <= data.len())
            .ok_or(CencError::BadNal {
                at,
                reason: "a NAL unit runs past the sample",
            })?;
        let header = if hevc { 2 } else { 1 };
        let nal = &data[at + length_size..end];
        let protected = match nal.first() {
            Some(&b) if is_slice(b, hevc) && nal.len() > header => (nal.len() - header) / BLOCK * BLOCK,
            _ => 0,
        };
        clear += (end - at) - protected;
        if protected > 0 {
            push(&mut entries, &mut clear, protected);
        }
        at = end;
    }
    if clear > 0 {
        push(&mut entries, &mut clear, 0);
    }
    Ok(entries)
}

/// Appends (clear, protected), splitting a clear run longer than 65,535
/// bytes into entries that protect nothing.
fn push(entries: &mut Vec<Entry>, clear: &mut usize, protected: usize) {
    while *clear > usize::from(u16::MAX) {
        entries.push((u16::MAX, 0));
        *clear -= usize::from(u16::MAX);
    }
    entries.push((*clear as u16, protected as u32));
    *clear = 0;
}

/// Whether the NAL unit whose first header byte is `b` is a coded slice
/// (VCL): H.264 types 1-5, HEVC types 0-31.
fn is_slice(b: u8, hevc: bool) -> bool {
    if hevc {
        (b >> 1) & 0x3f < 32
    } else {
        matches!(b & 0x1f, 1..=5)
    }
}

/// The protected byte ranges of a `len`-byte sample under `entries`
/// (the whole sample when there are none).
#[allow(clippy::single_range_in_vec_init)] // one range of bytes is meant
pub fn protected_ranges(entries: &[Entry], len: usize) -> Vec<std::ops::Range<usize>> {
    if entries.is_empty() {
        return vec![0..len];
    }
    let mut at = 0;
    let mut out = Vec::with_capacity(entries.len());
    for &(clear, protected) in entries {
        at += usize::from(clear);
        if protected > 0 {
            out.push(at..at + protected as usize);
        }
        at += protected as usize;
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn nal(kind: u8, body: usize) -> Vec<u8> {
        let mut v = ((body + 1) as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend(std::iter::repeat_n(0xab, body));
        v
    }

    const AVC: Layout = Layout::Nal {
        length_size: 4,
        hevc: false,
    };

    #[test]
    fn parameter_sets_stay_clear_and_slices_protect_whole_blocks() {
        // SPS (7), PPS (8), then an IDR slice (5) of 1 + 100 bytes.
        let mut sample = nal(0x67, 20);
        sample.extend(nal(0x68, 4));
        sample.extend(nal(0x65, 100));
        let entries = map(AVC, &sample).unwrap();
        // Clear: 25 + 9 + (4 + 1 + 100 - 96); protected 96.
        assert_eq!(entries, vec![(25 + 9 + 9, 96)]);
        let ranges = protected_ranges(&entries, sample.len());
        assert_eq!(ranges, vec![43..139]);
        assert_eq!(ranges[0].end, sample.len());
    }

    #[test]
    fn a_trailing_clear_unit_and_a_tiny_slice_are_one_clear_entry() {
        let mut sample = nal(0x41, 10); // a slice too small to protect
        sample.extend(nal(0x06, 3)); // SEI
        assert_eq!(map(AVC, &sample).unwrap(), vec![(sample.len() as u16, 0)]);
    }

    #[test]
    fn long_clear_runs_are_split() {
        let mut sample = nal(0x06, 70_000);
        sample.extend(nal(0x65, 32));
        let entries = map(AVC, &sample).unwrap();
        assert_eq!(entries[0], (u16::MAX, 0));
        let clear: usize = entries.iter().map(|e| usize::from(e.0)).sum();
        let prot: usize = entries.iter().map(|e| e.1 as usize).sum();
        assert_eq!(clear + prot, sample.len());
        assert_eq!(prot, 32);
    }

    #[test]
    fn hevc_slices_keep_their_two_byte_header() {
        let layout = Layout::Nal {
            length_size: 4,
            hevc: true,
        };
        let mut sample = (34u32).to_be_bytes().to_vec();
        sample.extend([0x26, 0x01]); // IDR_W_RADL
        sample.extend([0u8; 32]);
        assert_eq!(map(layout, &sample).unwrap(), vec![(6, 32)]);
    }

    #[test]
    fn a_bad_length_is_refused() {
        let mut sample = nal(0x65, 40);
        sample.truncate(30);
        assert!(matches!(map(AVC, &sample), Err(CencError::BadNal { at: 0, .. })));
        assert!(matches!(map(AVC, &[0, 0]), Err(CencError::BadNal { .. })));
        assert_eq!(protected_ranges(&[], 7), vec![0..7]);
    }
}
