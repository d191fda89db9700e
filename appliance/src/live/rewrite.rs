//! Playlists and MPDs name their URIs with the token the box sent
//! upstream (the origin writes the request's token into every URI). Each
//! client gets the copy with its own token written in that place, so a
//! playlist fetched once serves clients of every prefix.

/// `body` with every `token=` + `upstream` replaced by `token=` + `client`;
/// without a client token, the box's own stays (it is bound to the box's
/// address, so it grants a client nothing).
pub fn with_token(body: &[u8], upstream: &str, client: Option<&[u8]>, out: &mut Vec<u8>) {
    let (Some(client), false) = (client, upstream.is_empty()) else {
        out.extend_from_slice(body);
        return;
    };
    let needle = upstream.as_bytes();
    let mut rest = body;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(client);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
}

/// First place of `needle` (not empty) in `hay`: candidates by the first
/// byte, so a playlist is scanned about once.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = hay.get(from..)?.iter().position(|&b| b == needle[0]) {
        let at = from + i;
        if hay.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_clients_token_everywhere() {
        let body = b"#EXT-X-MAP:URI=\"init-0.mp4?token=BOX\"\n3.m4s?token=BOX\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"4.0.m4s?token=BOX\"\n";
        let mut out = Vec::new();
        with_token(body, "BOX", Some(b"k1-99-1.2.3.0%2F24-ab"), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("k1-99-1.2.3.0%2F24-ab").count(), 3);
        assert!(!text.contains("BOX"));
        let mut out = Vec::new();
        with_token(body, "BOX", None, &mut out);
        assert_eq!(out, body);
    }
}
