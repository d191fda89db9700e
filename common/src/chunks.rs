//! Content-defined chunks of a slot image, for delta OS updates (the idea
//! of casync and desync): a box builds the new slot from the chunks its
//! active slot already has and fetches only the rest.
//!
//! Boundaries come from a gear rolling hash (FastCDC, normalised): a cut
//! where the hash's top bits are zero, harder to meet before the average
//! size and easier after, never under `MIN` or over `MAX` bytes. They
//! depend on the bytes alone, so a change moves only the chunks around
//! it, and the image builder, the fill server and the box, each chunking
//! the same bytes, agree.
//!
//! The index, whose SHA-256 the bundle manifest signs:
//!
//! ```text
//! "NEARCAST-CHUNKS-1\n"     magic (18 bytes)
//! u32 big-endian           chunk count (≤ MAX_CHUNKS)
//! count × (u32 big-endian length, 32-byte SHA-256)
//! ```
//!
//! Offsets are the running sum of lengths; the lengths sum to the image.

use ring::digest::{digest, SHA256};

/// The least chunk (but the image's last).
pub const MIN: usize = 16 << 10;
/// The chunk size aimed at.
pub const AVG: usize = 64 << 10;
/// The largest chunk.
pub const MAX: usize = 256 << 10;
/// An index names at most this many chunks (2 GiB of minimum-size ones).
pub const MAX_CHUNKS: usize = 1 << 17;
const MAGIC: &[u8; 18] = b"NEARCAST-CHUNKS-1\n";
const ENTRY: usize = 4 + 32;
/// Cut masks: the top 18 bits before `AVG`, the top 14 after.
const MASK_HARD: u64 = !(u64::MAX >> 18);
const MASK_EASY: u64 = !(u64::MAX >> 14);

/// The gear table: 256 fixed pseudo-random words (SplitMix64 from 0).
const GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut s: u64 = 0;
    let mut i = 0;
    while i < 256 {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

/// Why an index is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// No magic, or entries cut short.
    #[error("not a chunk index (bad magic or cut short)")]
    Malformed,
    /// More than [`MAX_CHUNKS`].
    #[error("chunk index has {0} chunks, more than allowed")]
    TooMany(usize),
    /// A chunk of 0 or more than [`MAX`] bytes.
    #[error("chunk index has a chunk of {0} bytes (allowed 1 to {MAX})")]
    BadLength(u32),
    /// The lengths do not sum to the image.
    #[error("chunk index covers {got} bytes, the image is {want}")]
    Coverage {
        /// Bytes the chunks cover.
        got: u64,
        /// Bytes of the image.
        want: u64,
    },
}

/// One chunk of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Where it starts in the image.
    pub offset: u64,
    /// Its bytes.
    pub len: u32,
    /// SHA-256 of them.
    pub sha256: [u8; 32],
}

impl Chunk {
    /// The hash in lowercase hex (its name in the chunk store).
    pub fn hex(&self) -> String {
        crate::digest::hex(&self.sha256)
    }

    /// Its bytes' range in the image.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.len as usize
    }
}

/// The length of the chunk that starts `data` (all of it when shorter
/// than `MIN`). It looks at most `MAX` bytes ahead, so a reader that
/// streams an image cuts it as `chunk` does if it hands over at least
/// `MAX` bytes each time, except at the end.
pub fn cut(data: &[u8]) -> usize {
    if data.len() <= MIN {
        return data.len();
    }
    let end = data.len().min(MAX);
    let mut h: u64 = 0;
    for (i, &b) in data.iter().enumerate().take(end).skip(MIN) {
        h = (h << 1).wrapping_add(GEAR[b as usize]);
        let mask = if i < AVG { MASK_HARD } else { MASK_EASY };
        if h & mask == 0 {
            return i + 1;
        }
    }
    end
}

/// `data` cut into chunks, each hashed.
pub fn chunk(data: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::with_capacity(data.len() / AVG + 1);
    let mut at = 0;
    while at < data.len() {
        let n = cut(&data[at..]);
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(digest(&SHA256, &data[at..at + n]).as_ref());
        out.push(Chunk {
            offset: at as u64,
            len: n as u32,
            sha256,
        });
        at += n;
    }
    out
}

/// The index's bytes.
pub fn encode(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + chunks.len() * ENTRY);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    for c in chunks {
        out.extend_from_slice(&c.len.to_be_bytes());
        out.extend_from_slice(&c.sha256);
    }
    out
}

/// Lowercase hex SHA-256 of an index's bytes (what manifests sign).
pub fn index_sha256(index: &[u8]) -> String {
    crate::sha256_hex(index)
}

/// Parses an index that must cover exactly `image_len` bytes.
pub fn parse(bytes: &[u8], image_len: u64) -> Result<Vec<Chunk>, ChunkError> {
    let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or(ChunkError::Malformed)?;
    let (count, entries) = body.split_first_chunk::<4>().ok_or(ChunkError::Malformed)?;
    let count = u32::from_be_bytes(*count) as usize;
    if count > MAX_CHUNKS {
        return Err(ChunkError::TooMany(count));
    }
    if entries.len() != count * ENTRY {
        return Err(ChunkError::Malformed);
    }
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(count);
    for e in entries.chunks_exact(ENTRY) {
        let (len, hash) = e.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if len == 0 || len as usize > MAX {
            return Err(ChunkError::BadLength(len));
        }
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(hash);
        out.push(Chunk { offset, len, sha256 });
        offset += u64::from(len);
    }
    if offset != image_len {
        return Err(ChunkError::Coverage {
            got: offset,
            want: image_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_data_within_their_bounds() {
        let data = noise(3 << 20, 1);
        let c = chunk(&data);
        assert_eq!(c.iter().map(|c| c.len as usize).sum::<usize>(), data.len());
        assert!(c[..c.len() - 1].iter().all(|c| (MIN..=MAX).contains(&(c.len as usize))));
        let avg = data.len() / c.len();
        assert!((AVG / 2..AVG * 2).contains(&avg), "average {avg}");
        assert!(chunk(&[]).is_empty());
        assert_eq!(chunk(&[7; 100]).len(), 1);
    }

    #[test]
    fn an_insertion_moves_only_the_chunks_around_it() {
        let a = noise(4 << 20, 2);
        let mut b = a.clone();
        b.splice(1_000_000..1_000_000, noise(5000, 3));
        let have: std::collections::HashSet<[u8; 32]> = chunk(&a).iter().map(|c| c.sha256).collect();
        let new = chunk(&b);
        let fresh: usize = new
            .iter()
            .filter(|c| !have.contains(&c.sha256))
            .map(|c| c.len as usize)
            .sum();
        assert!(fresh < 3 * MAX, "{fresh} bytes of new chunks for a 5000-byte insertion");
    }

    #[test]
    fn the_index_round_trips_and_bad_ones_are_refused() {
        let data = noise(1 << 20, 4);
        let c = chunk(&data);
        let idx = encode(&c);
        assert_eq!(parse(&idx, data.len() as u64), Ok(c.clone()));
        assert_eq!(
            parse(&idx, data.len() as u64 + 1),
            Err(ChunkError::Coverage {
                got: data.len() as u64,
                want: data.len() as u64 + 1
            })
        );
        assert_eq!(
            parse(&idx[..idx.len() - 1], data.len() as u64),
            Err(ChunkError::Malformed)
        );
        assert_eq!(parse(b"nonsense", 0), Err(ChunkError::Malformed));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse(&huge, 0), Err(ChunkError::TooMany(u32::MAX as usize)));
        let mut zero = encode(&c[..1]);
        zero[18 + 4..18 + 8].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse(&zero, 0), Err(ChunkError::BadLength(0)));
    }
}
