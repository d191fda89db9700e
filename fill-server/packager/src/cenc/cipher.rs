//! The two ciphers of Common Encryption (ISO/IEC 23001-7) over a sample's
//! protected ranges:
//!
//! - `cenc`: AES-128-CTR. The counter block is the sample's 8-byte IV
//!   followed by a 64-bit big-endian block counter from 0; the key stream
//!   runs on across the sample's protected ranges (a partial block at the
//!   end of one range continues in the next).
//! - `cbcs`: AES-128-CBC with a pattern of `crypt` encrypted then `skip`
//!   clear 16-byte blocks, restarted from the constant IV in each
//!   protected range; the chain runs through the encrypted blocks only,
//!   and a trailing partial block stays clear. Pattern 0:0 (audio) means
//!   every whole block.
//!
//! Both encrypt in place. The tests check CBC against NIST SP 800-38A
//! F.2.1 and CTR against the AES key stream it must be.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

const BLOCK: usize = 16;

/// AES-128-CTR over `ranges` of `data` (byte ranges in order), one key
/// stream from `iv` (8 bytes) || 0.
pub fn ctr(key: &[u8; 16], iv: &[u8; 8], data: &mut [u8], ranges: &[std::ops::Range<usize>]) {
    let aes = Aes128::new(GenericArray::from_slice(key));
    let mut counter: u64 = 0;
    let mut stream = [0u8; BLOCK];
    let mut used = BLOCK;
    for range in ranges {
        for byte in &mut data[range.clone()] {
            if used == BLOCK {
                stream[..8].copy_from_slice(iv);
                stream[8..].copy_from_slice(&counter.to_be_bytes());
                aes.encrypt_block(GenericArray::from_mut_slice(&mut stream));
                counter = counter.wrapping_add(1);
                used = 0;
            }
            *byte ^= stream[used];
            used += 1;
        }
    }
}

/// AES-128-CBC with the (crypt, skip) pattern over each of `ranges`,
/// each range restarted from `iv`.
pub fn cbcs(key: &[u8; 16], iv: &[u8; 16], pattern: (u8, u8), data: &mut [u8], ranges: &[std::ops::Range<usize>]) {
    let aes = Aes128::new(GenericArray::from_slice(key));
    let (crypt, skip) = match pattern {
        (0, 0) => (usize::MAX, 0),
        (c, s) => (usize::from(c), usize::from(s)),
    };
    for range in ranges {
        let mut chain = *iv;
        let region = &mut data[range.clone()];
        let whole = region.len() / BLOCK;
        let mut block = 0;
        while block < whole {
            let run = crypt.min(whole - block);
            for b in block..block + run {
                let bytes = &mut region[b * BLOCK..(b + 1) * BLOCK];
                for (x, c) in bytes.iter_mut().zip(chain) {
                    *x ^= c;
                }
                aes.encrypt_block(GenericArray::from_mut_slice(bytes));
                chain.copy_from_slice(bytes);
            }
            block += run + skip;
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range of bytes is meant
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";

    #[test]
    fn cbc_matches_nist_with_no_pattern() {
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let mut data = hex(PLAIN);
        cbcs(&key, &iv, (0, 0), &mut data, &[0..32]);
        assert_eq!(
            data,
            hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
    }

    #[test]
    fn ctr_is_the_aes_key_stream_across_ranges() {
        // The key stream is AES(IV || 0), AES(IV || 1), …; a range split
        // mid-block continues it.
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let iv = [7u8; 8];
        let aes = Aes128::new(GenericArray::from_slice(&key));
        let mut stream = Vec::new();
        for n in 0u64..2 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&iv);
            b[8..].copy_from_slice(&n.to_be_bytes());
            aes.encrypt_block(GenericArray::from_mut_slice(&mut b));
            stream.extend_from_slice(&b);
        }
        let plain = hex(PLAIN);
        let mut data = plain.clone();
        // Bytes 5..10 stay clear; the stream continues over them.
        ctr(&key, &iv, &mut data, &[0..5, 10..32]);
        assert_eq!(&data[5..10], &plain[5..10]);
        let protected: Vec<usize> = (0..5).chain(10..32).collect();
        for (n, &i) in protected.iter().enumerate() {
            assert_eq!(data[i], plain[i] ^ stream[n], "byte {i}");
        }
        // Applying it twice gives the plain text back.
        ctr(&key, &iv, &mut data, &[0..5, 10..32]);
        assert_eq!(data, plain);
    }

    #[test]
    fn the_pattern_encrypts_one_block_in_ten_and_leaves_the_tail_clear() {
        let key = [1u8; 16];
        let iv = [2u8; 16];
        let plain: Vec<u8> = (0..(16 * 21 + 5)).map(|i| i as u8).collect();
        let mut data = plain.clone();
        cbcs(&key, &iv, (1, 9), &mut data, &[0..plain.len()]);
        for block in 0..21 {
            let r = block * 16..(block + 1) * 16;
            let changed = data[r.clone()] != plain[r];
            assert_eq!(changed, block % 10 == 0, "block {block}");
        }
        assert_eq!(&data[16 * 21..], &plain[16 * 21..], "the partial tail is clear");
        // Block 10 is chained from block 0's cipher text, not from the IV.
        let mut alone = plain[160..176].to_vec();
        cbcs(&key, &iv, (1, 9), &mut alone, &[0..16]);
        assert_ne!(alone, data[160..176]);
    }
}
