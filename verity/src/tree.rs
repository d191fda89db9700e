//! The dm-verity hash tree (format version 1, SHA-256, 4 KiB data and
//! hash blocks, no superblock), as the kernel reads it:
//!
//! ```text
//! slot:  data blocks 0..n (the squashfs, zero-padded to a block)
//!        hash blocks from block n: the tree's levels, top level first
//! level 0: SHA-256(salt ‖ data block) for every data block, 128 to a
//!          hash block, the last block zero-padded
//! level i: the same over level i-1's hash blocks, up to one block
//! root:    SHA-256(salt ‖ the top level's block)
//! ```
//!
//! The number of levels is the kernel's: the least `L` with
//! `(n - 1) >> 7L == 0` (none for a single data block, whose own hash is
//! the root). `veritysetup format --no-superblock` writes the same bytes;
//! a test holds the two together. `Params` is what the kernel needs
//! besides the device: it travels as `BLOCKS:SALT:ROOT` in the signed
//! manifest, in GRUB's environment and on the kernel command line.

use ring::digest::{Context, SHA256};

/// Data and hash block size.
pub const BLOCK: usize = 4096;
const DIGEST: usize = 32;
const PER_BLOCK: usize = BLOCK / DIGEST;
const PER_BLOCK_BITS: u32 = PER_BLOCK.trailing_zeros();

/// What opens a slot through dm-verity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Data blocks; the hash tree starts right after them.
    pub data_blocks: u64,
    pub salt: [u8; DIGEST],
    pub root: [u8; DIGEST],
}

/// Why a `Params` string or a slot image is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("verity parameters '{0}' are not BLOCKS:SALT:ROOT (a block count and two 64-digit hex hashes)")]
    Malformed(String),
    #[error("a verity slot needs at least one data block")]
    Empty,
    #[error("slot image is {got} bytes; its verity parameters need {want}")]
    Size { got: u64, want: u64 },
    #[error("slot image's hash tree does not match its verity root hash")]
    Mismatch,
}

impl Params {
    /// `BLOCKS:SALT:ROOT`, hex lowercase.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.data_blocks, hex(&self.salt), hex(&self.root))
    }

    pub fn parse(s: &str) -> Result<Params, ParamsError> {
        let bad = || ParamsError::Malformed(s.chars().take(200).collect());
        let mut parts = s.trim().split(':');
        let (Some(blocks), Some(salt), Some(root), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let data_blocks: u64 = blocks.parse().map_err(|_| bad())?;
        if data_blocks == 0 {
            return Err(ParamsError::Empty);
        }
        Ok(Params {
            data_blocks,
            salt: unhex(salt).ok_or_else(bad)?,
            root: unhex(root).ok_or_else(bad)?,
        })
    }

    /// Hash blocks after the data.
    pub fn tree_blocks(&self) -> u64 {
        level_blocks(self.data_blocks).iter().sum()
    }

    /// Bytes of the whole slot image: data and tree.
    pub fn image_len(&self) -> u64 {
        (self.data_blocks + self.tree_blocks()) * BLOCK as u64
    }

    /// The device-mapper `verity` target's arguments for a slot on
    /// `dev` (data and tree on the same device). Errors are the kernel's
    /// default: a block that does not verify reads as EIO.
    pub fn table(&self, dev: &str) -> String {
        format!(
            "1 {dev} {dev} {BLOCK} {BLOCK} {n} {n} sha256 {} {}",
            hex(&self.root),
            hex(&self.salt),
            n = self.data_blocks
        )
    }

    /// The mapped device's length in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.data_blocks * (BLOCK as u64 / 512)
    }
}

/// Blocks in each level of the tree, level 0 first (empty for one data
/// block).
fn level_blocks(data_blocks: u64) -> Vec<u64> {
    let mut levels = 0;
    while PER_BLOCK_BITS * levels < 64 && (data_blocks.saturating_sub(1) >> (PER_BLOCK_BITS * levels)) != 0 {
        levels += 1;
    }
    (1..=levels)
        .map(|i| {
            let shift = PER_BLOCK_BITS * i;
            (data_blocks + (1u64 << shift) - 1) >> shift
        })
        .collect()
}

fn digest(salt: &[u8], block: &[u8]) -> [u8; DIGEST] {
    let mut c = Context::new(&SHA256);
    c.update(salt);
    c.update(block);
    let mut out = [0; DIGEST];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// Pads `data` with zeros to a whole block and appends its hash tree:
/// `data` becomes the slot image. The salt is derived from the data, so
/// the same data gives the same image.
pub fn append_tree(data: &mut Vec<u8>) -> Result<Params, ParamsError> {
    if data.is_empty() {
        return Err(ParamsError::Empty);
    }
    data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
    let salt = digest(b"nearcast-verity-salt\n", data);
    let (tree, root) = build(data, &salt);
    let params = Params {
        data_blocks: (data.len() / BLOCK) as u64,
        salt,
        root,
    };
    data.extend_from_slice(&tree);
    Ok(params)
}

/// The tree over `data` (whole blocks), laid out top level first, and
/// its root hash.
fn build(data: &[u8], salt: &[u8]) -> (Vec<u8>, [u8; DIGEST]) {
    let mut hashes: Vec<[u8; DIGEST]> = data.chunks(BLOCK).map(|b| digest(salt, b)).collect();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    for _ in level_blocks((data.len() / BLOCK) as u64) {
        let mut level = Vec::with_capacity(hashes.len().div_ceil(PER_BLOCK) * BLOCK);
        for group in hashes.chunks(PER_BLOCK) {
            for h in group {
                level.extend_from_slice(h);
            }
            level.resize(level.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        hashes = level.chunks(BLOCK).map(|b| digest(salt, b)).collect();
        levels.push(level);
    }
    let root = hashes[0];
    levels.reverse();
    (levels.concat(), root)
}

/// Checks a whole slot image (data and tree) against `params`: what the
/// kernel would find, block by block, had it read every block.
pub fn verify(image: &[u8], params: &Params) -> Result<(), ParamsError> {
    let want = params.image_len();
    if image.len() as u64 != want {
        return Err(ParamsError::Size {
            got: image.len() as u64,
            want,
        });
    }
    let split = params.data_blocks as usize * BLOCK;
    let (tree, root) = build(&image[..split], &params.salt);
    if root != params.root || tree != image[split..] {
        return Err(ParamsError::Mismatch);
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; DIGEST]> {
    if s.len() != DIGEST * 2 {
        return None;
    }
    let mut out = [0; DIGEST];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_the_kernels() {
        assert_eq!(level_blocks(1), Vec::<u64>::new());
        assert_eq!(level_blocks(2), [1]);
        assert_eq!(level_blocks(128), [1]);
        assert_eq!(level_blocks(129), [2, 1]);
        assert_eq!(level_blocks(4096), [32, 1]);
        assert_eq!(level_blocks(16384 + 1), [129, 2, 1]);
    }

    #[test]
    fn a_changed_byte_anywhere_is_found() {
        let mut img: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let p = append_tree(&mut img).unwrap();
        assert_eq!(p.data_blocks, 74);
        assert_eq!(img.len() as u64, p.image_len());
        verify(&img, &p).unwrap();
        for at in [0, 299_999, 300_100, img.len() - 1] {
            let mut bad = img.clone();
            bad[at] ^= 1;
            assert_eq!(verify(&bad, &p), Err(ParamsError::Mismatch), "byte {at}");
        }
        assert!(matches!(
            verify(&img[..img.len() - 1], &p),
            Err(ParamsError::Size { .. })
        ));
    }

    #[test]
    fn params_round_trip_and_bad_ones_are_refused() {
        let mut img = vec![1u8; 5000];
        let p = append_tree(&mut img).unwrap();
        assert_eq!(Params::parse(&p.encode()), Ok(p));
        let t = p.table("/dev/vda2");
        assert!(t.starts_with("1 /dev/vda2 /dev/vda2 4096 4096 2 2 sha256 "), "{t}");
        assert_eq!(p.sectors(), 16);
        for bad in [
            "",
            "2",
            "x:aa:bb",
            "2:zz:00",
            &format!("0:{}:{}", "a".repeat(64), "b".repeat(64)),
        ] {
            assert!(Params::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(append_tree(&mut Vec::new()), Err(ParamsError::Empty));
    }
}
