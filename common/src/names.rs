//! The naming rule for titles, renditions and files: what may appear as
//! one segment of `/c/{title}/{rendition}/{file}`. Plain ASCII names only,
//! so no path trick (`..`, slashes, NUL, hidden temp files) survives it.

/// Longest name accepted.
pub const MAX_NAME: usize = 255;

/// 1 to 255 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name[0] != b'.'
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        for ok in ["movie", "seg-00001.m4s", "a_b.c", "720p"] {
            assert!(is_plain_name(ok.as_bytes()), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in ["", ".", "..", ".tmp-x", "a/b", "a\\b", "a b", "a\0", "ü", long.as_str()] {
            assert!(!is_plain_name(bad.as_bytes()), "{bad:?}");
        }
    }
}
