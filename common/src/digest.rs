//! SHA-256 as lowercase hex: how every Nearcast part names file contents
//! (title index, fill manifests, inventory checks).

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Rendezvous (highest-random-weight) score of `key` on the member `id`:
/// the member with the highest score holds the key, and a key moves only
/// when its member leaves. The fill planner places a title's tail copy
/// with it; the boxes of a site pick the shield of a live event with it,
/// and steering must agree with them, so there is one function.
pub fn rendezvous_score(key: &str, id: &str) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{key}\n{id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
