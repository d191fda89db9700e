//! URL paths the box serves: `/c/{title}/{rendition}/{file}` (and
//! `/c/{title}/{file}` for title-level files such as the multivariant
//! playlist) from the content store, and `/l/{event}/{rendition}/{file}`
//! (and `/l/{event}/{file}`) pulled through from upstream. Either may
//! come after `/t/{token}/` (`split_token`): a token in the path survives
//! a player resolving a playlist's relative segment URIs, a query does not.
//!
//! Every segment is percent-decoded and then must be a plain name:
//! `A-Z a-z 0-9 . _ -`, not starting with a dot. That one rule shuts out
//! `..`, encoded slashes and dots, NUL, absolute paths and hidden files
//! (the fill writes its temporary files with a leading dot).

/// Longest decoded path accepted.
pub const MAX_PATH: usize = 512;
/// Which side of the box a path belongs to; both prefixes are three bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `/c/`: filled at night, on disk.
    Filled,
    /// `/l/`: live, pulled through on a miss.
    Live,
}

const PREFIX_LEN: usize = 3;

/// A validated content path, held inline (no allocation).
pub struct ContentPath {
    buf: [u8; MAX_PATH],
    len: usize,
    space: Space,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("not under /c/ or /l/")]
    NotContent,
    #[error("wrong number of path segments")]
    Shape,
    #[error("path segment is not a plain name")]
    BadSegment,
    #[error("bad percent-encoding")]
    BadEscape,
    #[error("path too long")]
    TooLong,
}

/// `/t/{token}/{rest}`: the (percent-encoded) token and `/{rest}`;
/// `None` for a path without one.
pub fn split_token(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = raw.strip_prefix(b"/t/")?;
    let end = rest.iter().position(|&b| b == b'/')?;
    Some((&rest[..end], &rest[end..]))
}

impl ContentPath {
    /// Parses a request path that may carry a token (`split_token`): the
    /// content path and the token, if the path held one.
    pub fn parse_with_token(raw: &[u8]) -> (Result<Self, PathError>, Option<&[u8]>) {
        match split_token(raw) {
            Some((token, rest)) => (ContentPath::parse(rest), Some(token)),
            None => (ContentPath::parse(raw), None),
        }
    }

    /// Parses a raw (still percent-encoded) request path.
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        let (space, prefix): (Space, &[u8]) = match raw.get(..PREFIX_LEN) {
            Some(b"/c/") => (Space::Filled, b"/c/"),
            Some(b"/l/") => (Space::Live, b"/l/"),
            _ => return Err(PathError::NotContent),
        };
        let rest = &raw[PREFIX_LEN..];
        let mut out = ContentPath {
            buf: [0; MAX_PATH],
            len: 0,
            space,
        };
        out.push(prefix)?;
        let mut segments = 0;
        for seg in rest.split(|&b| b == b'/') {
            if segments > 0 {
                out.push(b"/")?;
            }
            let start = out.len;
            percent_decode(seg, &mut out)?;
            if !nearcast_common::is_plain_name(&out.buf[start..out.len]) {
                return Err(PathError::BadSegment);
            }
            segments += 1;
        }
        if !(2..=3).contains(&segments) {
            return Err(PathError::Shape);
        }
        Ok(out)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), PathError> {
        let end = self.len + bytes.len();
        if end > MAX_PATH {
            return Err(PathError::TooLong);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub fn space(&self) -> Space {
        self.space
    }

    /// The decoded URL path, `/c/…` or `/l/…`: what tokens sign.
    pub fn url_path(&self) -> &str {
        // Only ASCII from `is_plain_name` and the prefix was ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// The path after the prefix, `{title}/…`: relative to a disk's root
    /// for `/c/`.
    pub fn relative(&self) -> &str {
        &self.url_path()[PREFIX_LEN..]
    }

    /// The file name (last segment).
    pub fn file_name(&self) -> &str {
        let p = self.url_path();
        p.rsplit('/').next().unwrap_or(p)
    }

    /// The title or event (first segment).
    pub fn title(&self) -> &str {
        let rel = self.relative();
        rel.split('/').next().unwrap_or(rel)
    }
}

fn percent_decode(seg: &[u8], out: &mut ContentPath) -> Result<(), PathError> {
    let mut i = 0;
    while i < seg.len() {
        let b = if seg[i] == b'%' {
            let hex = seg.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::BadEscape)?;
            i += 3;
            v
        } else {
            i += 1;
            seg[i - 1]
        };
        out.push(&[b])?;
    }
    Ok(())
}

pub use nearcast_common::query::param as query_param;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_content_paths() {
        let p = ContentPath::parse(b"/c/big_buck-1/720p/seg-00001.m4s").unwrap();
        assert_eq!(p.url_path(), "/c/big_buck-1/720p/seg-00001.m4s");
        assert_eq!(p.relative(), "big_buck-1/720p/seg-00001.m4s");
        assert_eq!(p.file_name(), "seg-00001.m4s");
        assert_eq!(p.title(), "big_buck-1");
        let p = ContentPath::parse(b"/c/title/master.m3u8").unwrap();
        assert_eq!(p.relative(), "title/master.m3u8");
        let p = ContentPath::parse(b"/c/t/r/%73eg.m4s").unwrap();
        assert_eq!(p.file_name(), "seg.m4s");
        assert_eq!(p.space(), Space::Filled);
        let p = ContentPath::parse(b"/l/match/v1/12.3.m4s").unwrap();
        assert_eq!(
            (p.space(), p.title(), p.relative()),
            (Space::Live, "match", "match/v1/12.3.m4s")
        );
    }

    #[test]
    fn refuses_tricks() {
        let cases: &[(&[u8], PathError)] = &[
            (b"/etc/passwd", PathError::NotContent),
            (b"//c/t/r/f", PathError::NotContent),
            (b"/c/t", PathError::Shape),
            (b"/c/t/r/f/x", PathError::Shape),
            (b"/c/../../etc/passwd", PathError::BadSegment),
            (b"/c/t/../f", PathError::BadSegment),
            (b"/c/t/%2e%2e/f", PathError::BadSegment),
            (b"/c/t/%2E%2E%2Fetc/passwd", PathError::BadSegment),
            (b"/c/t/r%2f..%2f..%2fx", PathError::BadSegment),
            (b"/c/t/r/f%00.m4s", PathError::BadSegment),
            (b"/c/t/r/.tmp-f", PathError::BadSegment),
            (b"/c/t//f", PathError::BadSegment),
            (b"/c/t/r/", PathError::BadSegment),
            (b"/c/t/r/f%", PathError::BadEscape),
            (b"/c/t/r/f%zz", PathError::BadEscape),
            (b"/c/t/r/f\\..\\x", PathError::BadSegment),
            (b"/l/ev", PathError::Shape),
            (b"/l/ev/../../x", PathError::BadSegment),
            (b"/L/ev/v/f", PathError::NotContent),
        ];
        for (raw, want) in cases {
            assert_eq!(
                ContentPath::parse(raw).err(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let long = format!("/c/t/r/{}", "a".repeat(600));
        assert_eq!(ContentPath::parse(long.as_bytes()).err(), Some(PathError::TooLong));
    }
}
