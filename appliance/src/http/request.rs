//! Request parsing: `httparse` tokenises, this module enforces what the
//! appliance accepts (GET/HEAD, origin-form targets, no request bodies) and
//! keeps only the headers the server acts on, as borrowed slices.

use httparse::Status as PStatus;

/// Most headers a request may carry; more is answered with 431.
pub const MAX_HEADERS: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// The parts of a request the server acts on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Option<Method>,
    /// The target's path, still percent-encoded.
    pub path: &'a [u8],
    /// The target's query without the `?`, still percent-encoded.
    pub query: &'a [u8],
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    pub range: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    /// HTTP/1.1 (chunked bodies may be sent).
    pub http11: bool,
    /// A `Via` naming nearcast: the request comes from a peer box.
    pub from_peer: bool,
    /// A box's agent filling (`User-Agent: nearcast-agent/…`): its bytes
    /// are not viewers' demand.
    pub fill: bool,
    /// The `CMCD-Request`, `CMCD-Object`, `CMCD-Status` and
    /// `CMCD-Session` headers a player sent (`crate::sessions` reads them).
    pub cmcd: [Option<&'a [u8]>; 4],
}

impl Request<'_> {
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Get)
    }
}

#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole request head, and how many bytes of the buffer it used.
    Complete(Request<'a>, usize),
    /// More bytes are needed.
    Partial,
}

/// Why a request is refused before routing; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed request")]
    Malformed,
    #[error("request line too long")]
    UriTooLong,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request bodies are not accepted")]
    BodyNotAllowed,
}

/// Parses one request head from the start of `buf`. `max_head` bounds the
/// head's size: a partial head that already fills it is an error.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Parsed<'_>, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(PStatus::Complete(n)) if n > max_head => return Err(oversize(buf, max_head)),
        Ok(PStatus::Complete(n)) => n,
        Ok(PStatus::Partial) if buf.len() >= max_head => return Err(oversize(buf, max_head)),
        Ok(PStatus::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadersTooLarge),
        Err(_) => return Err(ParseError::Malformed),
    };
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some(_) => return Err(ParseError::MethodNotAllowed),
        None => return Err(ParseError::Malformed),
    };
    let target = req.path.ok_or(ParseError::Malformed)?.as_bytes();
    if target.first() != Some(&b'/') {
        // Absolute-form and asterisk-form targets are for proxies.
        return Err(ParseError::Malformed);
    }
    let target = match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    };
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &target[target.len()..]),
    };
    let http11 = req.version == Some(1);
    let mut out = Request {
        method: Some(method),
        path,
        query,
        keep_alive: http11,
        http11,
        ..Request::default()
    };
    let mut hosts = 0;
    for h in req.headers.iter() {
        take_header(&mut out, h.name.as_bytes(), trim(h.value), &mut hosts)?;
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host.
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(ParseError::Malformed);
    }
    Ok(Parsed::Complete(out, used))
}

/// Keeps what the server acts on of one header (`hosts` counts `Host`).
fn take_header<'a>(out: &mut Request<'a>, name: &[u8], value: &'a [u8], hosts: &mut usize) -> Result<(), ParseError> {
    let http11 = out.http11;
    if name.eq_ignore_ascii_case(b"connection") {
        for token in value.split(|&b| b == b',').map(trim) {
            if token.eq_ignore_ascii_case(b"close") {
                out.keep_alive = false;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                out.keep_alive = true;
            }
        }
    } else if name.eq_ignore_ascii_case(b"host") {
        *hosts += 1;
        out.host = Some(value);
    } else if name.eq_ignore_ascii_case(b"via") {
        out.from_peer |= value.windows(8).any(|w| w.eq_ignore_ascii_case(b"nearcast"));
    } else if name.eq_ignore_ascii_case(b"range") {
        out.range = Some(value);
    } else if name.eq_ignore_ascii_case(b"if-none-match") {
        out.if_none_match = Some(value);
    } else if name.eq_ignore_ascii_case(b"if-modified-since") {
        out.if_modified_since = Some(value);
    } else if name.eq_ignore_ascii_case(b"if-range") {
        out.if_range = Some(value);
    } else if name.eq_ignore_ascii_case(b"user-agent") {
        out.fill = value.starts_with(b"nearcast-agent/");
    } else if let Some(i) = cmcd_header(name) {
        out.cmcd[i] = Some(value);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        // A body we would not read would be parsed as the next request.
        return Err(ParseError::BodyNotAllowed);
    } else if name.eq_ignore_ascii_case(b"content-length") && value != b"0" {
        return Err(ParseError::BodyNotAllowed);
    }
    Ok(())
}

/// Which of the four CMCD headers `name` is, if one.
fn cmcd_header(name: &[u8]) -> Option<usize> {
    const NAMES: [&[u8]; 4] = [b"request", b"object", b"status", b"session"];
    let rest = name
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"cmcd-"))
        .map(|_| &name[5..])?;
    NAMES.iter().position(|n| rest.eq_ignore_ascii_case(n))
}

/// A head over the limit is 414 when the request line alone does not fit,
/// 431 otherwise.
fn oversize(buf: &[u8], max_head: usize) -> ParseError {
    let window = &buf[..buf.len().min(max_head)];
    if window.contains(&b'\n') {
        ParseError::HeadersTooLarge
    } else {
        ParseError::UriTooLong
    }
}

pub fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> (Request<'_>, usize) {
        match parse_request(raw, 8192) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_target_and_headers() {
        let raw = b"GET /c/t/r/f.m4s?token=abc#frag HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9 \r\nIf-None-Match: \"e\"\r\n\r\nGET";
        let (r, n) = complete(raw);
        assert_eq!(n, raw.len() - 3);
        assert_eq!(r.method(), Method::Get);
        assert_eq!(r.path, b"/c/t/r/f.m4s");
        assert_eq!(r.query, b"token=abc");
        assert_eq!(r.range, Some(&b"bytes=0-9"[..]));
        assert_eq!(r.if_none_match, Some(&b"\"e\""[..]));
        assert!(r.keep_alive);
    }

    #[test]
    fn keeps_the_cmcd_headers() {
        let raw = b"GET /c/t/f HTTP/1.1\r\nHost: x\r\nCMCD-Object: br=3200,ot=v\r\ncmcd-session: sid=\"a\"\r\nCMCD-Status: bs\r\nCMCD-Requestx: y\r\n\r\n";
        let (r, _) = complete(raw);
        assert_eq!(r.cmcd[0], None);
        assert_eq!(r.cmcd[1], Some(&b"br=3200,ot=v"[..]));
        assert_eq!(r.cmcd[2], Some(&b"bs"[..]));
        assert_eq!(r.cmcd[3], Some(&b"sid=\"a\""[..]));
        assert!(!r.fill);
        let (r, _) = complete(b"GET /c/t/f HTTP/1.1\r\nHost: x\r\nUser-Agent: nearcast-agent/0.1.0\r\n\r\n");
        assert!(r.fill);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(!complete(b"HEAD / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn partial_and_oversize() {
        assert!(matches!(
            parse_request(b"GET /c/x HTTP/1.1\r\nHo", 64),
            Ok(Parsed::Partial)
        ));
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(long_line.as_bytes(), 64).unwrap_err(),
            ParseError::UriTooLong
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(big.as_bytes(), 64).unwrap_err(),
            ParseError::HeadersTooLarge
        );
        let many: String = (0..60).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(many.as_bytes(), 8192).unwrap_err(),
            ParseError::HeadersTooLarge
        );
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::MethodNotAllowed),
            (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::MethodNotAllowed),
            (b"GET http://a/ HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", ParseError::Malformed),
            (b"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", ParseError::Malformed),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", ParseError::Malformed),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                ParseError::BodyNotAllowed,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::BodyNotAllowed,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_request(raw, 8192).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 8192),
            Ok(Parsed::Complete(..))
        ));
    }
}
