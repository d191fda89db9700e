//! What a delta update from one slot image to another costs a box: the
//! chunks of the new image the old one does not have (the agent takes
//! the rest from its running slot). `nearcast-image delta` prints it, so
//! an operator knows a release's download before rolling it out, and
//! `benches/delta` measures it for real releases.

use std::collections::HashSet;

use nearcast_common::chunks;

/// The cost of going from one image to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub chunks: usize,
    pub image_bytes: u64,
    /// Chunks (and their bytes) the old image lacks: what a box fetches.
    pub fetch_chunks: usize,
    pub fetch_bytes: u64,
    /// The chunk index, fetched too.
    pub index_bytes: u64,
}

impl Delta {
    pub fn between(old: &[u8], new: &[u8]) -> Delta {
        let have: HashSet<[u8; 32]> = chunks::chunk(old).iter().map(|c| c.sha256).collect();
        let cut = chunks::chunk(new);
        let fetch: Vec<_> = cut.iter().filter(|c| !have.contains(&c.sha256)).collect();
        Delta {
            chunks: cut.len(),
            image_bytes: new.len() as u64,
            fetch_chunks: fetch.len(),
            fetch_bytes: fetch.iter().map(|c| u64::from(c.len)).sum(),
            index_bytes: chunks::encode(&cut).len() as u64,
        }
    }

    /// Bytes fetched (chunks and index) as a share of the image.
    pub fn ratio(&self) -> f64 {
        (self.fetch_bytes + self.index_bytes) as f64 / self.image_bytes.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_image_costs_only_its_index_and_a_new_one_all_of_it() {
        let a: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let same = Delta::between(&a, &a);
        assert_eq!((same.fetch_chunks, same.fetch_bytes), (0, 0));
        let fresh = Delta::between(&[], &a);
        assert_eq!((fresh.fetch_chunks, fresh.fetch_bytes), (fresh.chunks, a.len() as u64));
        assert!(fresh.ratio() > 1.0);
    }
}
