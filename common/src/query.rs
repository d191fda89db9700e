//! Query strings as clients send them: one parameter's value,
//! percent-decoded into the caller's buffer, allocation-free (the
//! appliance reads tokens with it on its hot path). Players and their
//! libraries re-encode queries (hls.js writes `/` in a token as `%2F` when
//! it adds `_HLS_msn`), so a token is always read decoded.

/// The value of query parameter `name`, percent-decoded into `out`.
/// Returns `None` when absent, undecodable or longer than `out`.
pub fn param<'o>(query: &[u8], name: &str, out: &'o mut [u8]) -> Option<&'o str> {
    let raw = query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        (k == name.as_bytes()).then(|| &v[1..])
    })?;
    decode(raw, out)
}

/// `raw` percent-decoded (`+` as a space) into `out`: `None` when it is
/// undecodable, not UTF-8 or longer than `out`.
pub fn decode<'o>(raw: &[u8], out: &'o mut [u8]) -> Option<&'o str> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
                i += 2;
                u8::from_str_radix(hex, 16).ok()?
            }
            b'+' => b' ',
            b => b,
        };
        *out.get_mut(n)? = b;
        n += 1;
        i += 1;
    }
    std::str::from_utf8(&out[..n]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_query_params() {
        let mut buf = [0u8; 64];
        assert_eq!(
            param(b"a=1&token=k1-5-1.2.3.0%2F24-ab", "token", &mut buf),
            Some("k1-5-1.2.3.0/24-ab")
        );
        assert_eq!(param(b"tokenx=1", "token", &mut buf), None);
        assert_eq!(param(b"token=%zz", "token", &mut buf), None);
        let mut tiny = [0u8; 2];
        assert_eq!(param(b"token=abc", "token", &mut tiny), None);
        assert_eq!(param(b"", "token", &mut buf), None);
    }
}
