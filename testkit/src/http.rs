//! The tests' HTTP/1.1 client: plain sockets, so a test can send exactly
//! the bytes it means (a malformed head, a duplicate Host) and see exactly
//! what came back. A body is framed by Content-Length, chunked coding or the
//! connection's end (RFC 9112 §6.3).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for any one answer.
pub const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn line(r: &mut impl BufRead) -> io::Result<String> {
    let mut l = String::new();
    if r.read_line(&mut l)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(l.trim_end_matches(['\r', '\n']).to_string())
}

fn chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = line(r)?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if n == 0 {
            while !line(r)?.is_empty() {} // trailers
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        line(r)?;
    }
}

/// Reads one response; `Ok(None)` on a clean end before any byte. A
/// response to HEAD (`head_request`) has no body whatever its headers say.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<Option<Response>> {
    let status_line = match line(r) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        l => l?,
    };
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut headers = Vec::new();
    loop {
        let h = line(r)?;
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or_else(|| bad("bad header line"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 || status < 200 {
        return Ok(Some(resp));
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        resp.body = chunked(r)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(Some(resp))
}

/// A connection to `addr` that gives up after [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn try_send(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let mut s = connect(addr)?;
    s.write_all(raw)?;
    read_response(&mut BufReader::new(s), raw.starts_with(b"HEAD "))?.ok_or_else(|| bad("closed without an answer"))
}

/// The request head and body of a one-off request: `Host`, `Connection:
/// close` and `Content-Length` added to `headers`.
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a fresh connection; panics when no answer comes.
pub fn call(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_send(addr, &request_bytes(method, target, headers, body))
        .unwrap_or_else(|e| panic!("{method} {target} on {addr}: {e}"))
}

/// `GET target` on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    call(addr, "GET", target, &[], b"")
}

/// Sends `raw` as it is on a fresh connection; panics when no answer comes.
pub fn send(addr: SocketAddr, raw: &str) -> Response {
    try_send(addr, raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?} to {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, head: bool) -> Response {
        read_response(&mut raw.as_bytes(), head).unwrap().unwrap()
    }

    #[test]
    fn frames_by_length_chunks_or_close() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", false);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            false,
        );
        assert_eq!(r.body, b"abcde");
        let r = parse("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nto the end", false);
        assert_eq!(r.text(), "to the end");
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert!(r.body.is_empty() && r.header("CONTENT-LENGTH") == Some("9"));
        assert!(read_response(&mut &b""[..], false).unwrap().is_none());
        assert!(read_response(&mut &b"junk\r\n\r\n"[..], false).is_err());
    }
}
