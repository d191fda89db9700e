//! Reading an upstream's answer: the head (status, length or chunked,
//! `Cache-Control`, `Content-Type`) and a chunked body decoder that hands
//! out the data as it arrives. Bytes in, events out; no I/O.

use std::time::Duration;

/// Largest upstream response head.
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response head")]
    Malformed,
    #[error("response head too large")]
    TooLarge,
    #[error("malformed chunked body")]
    BadChunk,
    #[error("unsupported transfer coding")]
    Coding,
}

/// The parts of an upstream head the box acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHead {
    pub status: u16,
    pub length: Option<u64>,
    pub chunked: bool,
    pub content_type: Option<Box<str>>,
    pub cache_control: Option<Box<str>>,
}

impl UpstreamHead {
    /// `max-age` (or `s-maxage`, which wins) of its `Cache-Control`.
    pub fn max_age(&self) -> Option<Duration> {
        let cc = self.cache_control.as_deref()?;
        let mut max_age = None;
        for d in cc.split(',').map(str::trim) {
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            let secs = v.trim_matches('"').parse::<u64>().ok();
            match k.to_ascii_lowercase().as_str() {
                "s-maxage" => return secs.map(Duration::from_secs),
                "max-age" => max_age = secs.map(Duration::from_secs),
                "no-store" | "no-cache" | "private" => return Some(Duration::ZERO),
                _ => {}
            }
        }
        max_age
    }
}

/// Parses a response head from the start of `buf`: `None` until it is
/// complete, then the head and its length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(UpstreamHead, usize)>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(ResponseError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let mut head = UpstreamHead {
        status: resp.code.ok_or(ResponseError::Malformed)?,
        length: None,
        chunked: false,
        content_type: None,
        cache_control: None,
    };
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ResponseError::Malformed)?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.parse().map_err(|_| ResponseError::Malformed)?;
            if head.length.is_some_and(|m| m != n) {
                return Err(ResponseError::Malformed);
            }
            head.length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(ResponseError::Coding);
            }
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.into());
        } else if h.name.eq_ignore_ascii_case("cache-control") {
            head.cache_control = Some(value.into());
        }
    }
    if head.chunked {
        // RFC 9112 §6.3: chunked wins; a length beside it is a smuggling sign.
        if head.length.is_some() {
            return Err(ResponseError::Malformed);
        }
    }
    Ok(Some((head, used)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a size line (hex digits, optional extension) up to LF.
    Size {
        size: u64,
        digits: usize,
        ext: bool,
    },
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd {
        cr: bool,
    },
    /// After the last chunk: trailer lines up to an empty line.
    Trailer {
        empty_line: bool,
        line_len: usize,
    },
    Done,
}

/// Decodes a chunked body incrementally.
#[derive(Debug)]
pub struct Chunked {
    state: ChunkState,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: ChunkState::Size {
                size: 0,
                digits: 0,
                ext: false,
            },
        }
    }
}

impl Chunked {
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, handing each run of body bytes to `data`.
    pub fn feed(&mut self, mut input: &[u8], mut data: impl FnMut(&[u8])) -> Result<(), ResponseError> {
        while !input.is_empty() {
            let (b, rest) = (input[0], &input[1..]);
            match &mut self.state {
                ChunkState::Size { size, digits, ext } => {
                    input = rest;
                    match b {
                        b'\n' if *digits > 0 => {
                            self.state = match *size {
                                0 => ChunkState::Trailer {
                                    empty_line: true,
                                    line_len: 0,
                                },
                                n => ChunkState::Data(n),
                            };
                        }
                        b'\r' => {}
                        b';' | b' ' | b'\t' if *digits > 0 => *ext = true,
                        _ if *ext => {}
                        _ => {
                            let v = (b as char).to_digit(16).ok_or(ResponseError::BadChunk)?;
                            if *digits >= 15 {
                                return Err(ResponseError::BadChunk);
                            }
                            *size = *size * 16 + u64::from(v);
                            *digits += 1;
                        }
                    }
                }
                ChunkState::Data(left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    data(&input[..n]);
                    *left -= n as u64;
                    input = &input[n..];
                    if *left == 0 {
                        self.state = ChunkState::DataEnd { cr: false };
                    }
                }
                ChunkState::DataEnd { cr } => {
                    input = rest;
                    match (b, *cr) {
                        (b'\r', false) => *cr = true,
                        (b'\n', _) => {
                            self.state = ChunkState::Size {
                                size: 0,
                                digits: 0,
                                ext: false,
                            }
                        }
                        _ => return Err(ResponseError::BadChunk),
                    }
                }
                ChunkState::Trailer { empty_line, line_len } => {
                    input = rest;
                    match b {
                        b'\n' if *empty_line => self.state = ChunkState::Done,
                        b'\n' => {
                            *empty_line = true;
                            *line_len = 0;
                        }
                        b'\r' => {}
                        _ => {
                            *empty_line = false;
                            *line_len += 1;
                            if *line_len > MAX_HEAD {
                                return Err(ResponseError::BadChunk);
                            }
                        }
                    }
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nTransfer-Encoding: chunked\r\n\
                    Cache-Control: public, max-age=7200\r\n\r\nabc";
        let (h, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(used, raw.len() - 3);
        assert!(h.chunked && h.length.is_none() && h.status == 200);
        assert_eq!(h.max_age(), Some(Duration::from_secs(7200)));
        assert_eq!(h.content_type.as_deref(), Some("video/iso.segment"));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let (h, _) = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nCache-Control: no-store\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.length, h.max_age()), (404, Some(3), Some(Duration::ZERO)));
        let h = UpstreamHead {
            cache_control: Some("max-age=1, s-maxage=3".into()),
            ..h
        };
        assert_eq!(h.max_age(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn refuses_bad_heads() {
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"garbage\r\n\r\n",
        ];
        for raw in bad {
            assert!(parse_head(raw).is_err(), "{}", String::from_utf8_lossy(raw));
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(huge.as_bytes()).unwrap_err(), ResponseError::TooLarge);
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let mut out = Vec::new();
            c.feed(&body[..split], |d| out.extend_from_slice(d)).unwrap();
            assert!(!c.done() || split == body.len());
            c.feed(&body[split..], |d| out.extend_from_slice(d)).unwrap();
            assert!(c.done(), "split {split}");
            assert_eq!(out, b"hello world");
        }
    }

    #[test]
    fn refuses_bad_chunks() {
        for raw in [&b"zz\r\n"[..], b"5\r\nhelloXX", b"\r\n", b"ffffffffffffffff\r\n"] {
            let mut c = Chunked::default();
            assert!(c.feed(raw, |_| {}).is_err(), "{}", String::from_utf8_lossy(raw));
        }
        // A body cut before its last chunk is not done.
        let mut c = Chunked::default();
        c.feed(b"5\r\nhel", |_| {}).unwrap();
        assert!(!c.done());
    }
}
