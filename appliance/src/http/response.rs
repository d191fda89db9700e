//! Response heads, written into a reused buffer without allocating.

use std::io::Write;

/// Every status the appliance sends. The index orders the metrics table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    NoContent,
    PartialContent,
    NotModified,
    BadRequest,
    Forbidden,
    NotFound,
    Gone,
    MethodNotAllowed,
    RequestTimeout,
    UriTooLong,
    RangeNotSatisfiable,
    HeadersTooLarge,
    InternalError,
    BadGateway,
    Unavailable,
}

impl Status {
    pub const ALL: [Status; 16] = [
        Status::Ok,
        Status::NoContent,
        Status::PartialContent,
        Status::NotModified,
        Status::BadRequest,
        Status::Forbidden,
        Status::NotFound,
        Status::Gone,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::UriTooLong,
        Status::RangeNotSatisfiable,
        Status::HeadersTooLarge,
        Status::InternalError,
        Status::BadGateway,
        Status::Unavailable,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::Gone => 410,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::BadGateway => 502,
            Status::Unavailable => 503,
        }
    }

    /// The status of an upstream's answer the box passes on.
    pub fn from_upstream(code: u16) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn index(self) -> usize {
        Status::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::NoContent => "204 No Content",
            Status::PartialContent => "206 Partial Content",
            Status::NotModified => "304 Not Modified",
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::Gone => "410 Gone",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::UriTooLong => "414 URI Too Long",
            Status::RangeNotSatisfiable => "416 Range Not Satisfiable",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::InternalError => "500 Internal Server Error",
            Status::BadGateway => "502 Bad Gateway",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

/// Writes one response head into `buf` (appending).
pub struct Head<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Head<'a> {
    /// Starts a head with the status line, `Server`, `Date` and
    /// `Access-Control-Allow-Origin: *` (browser players load segments
    /// from a page on another origin; access rides on the URL token, never
    /// on cookies, so any origin may read).
    pub fn start(buf: &'a mut Vec<u8>, status: Status, date: &[u8]) -> Self {
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(status.line().as_bytes());
        buf.extend_from_slice(b"\r\nServer: nearcast\r\nAccess-Control-Allow-Origin: *\r\nDate: ");
        buf.extend_from_slice(date);
        buf.extend_from_slice(b"\r\n");
        Head { buf }
    }

    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    pub fn content_length(&mut self, n: u64) -> &mut Self {
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "Content-Length: {n}\r\n");
        self
    }

    pub fn content_range(&mut self, start: u64, end: u64, len: u64) -> &mut Self {
        let _ = write!(self.buf, "Content-Range: bytes {start}-{end}/{len}\r\n");
        self
    }

    pub fn unsatisfied_range(&mut self, len: u64) -> &mut Self {
        let _ = write!(self.buf, "Content-Range: bytes */{len}\r\n");
        self
    }

    /// Ends the head; `keep_alive` false adds `Connection: close`.
    pub fn finish(&mut self, keep_alive: bool) {
        if !keep_alive {
            self.buf.extend_from_slice(b"Connection: close\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Content-Type by file extension, for what a packaged title holds.
pub fn content_type(file: &str) -> &'static str {
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "mp4" | "cmfv" => "video/mp4",
        "m4s" => "video/iso.segment",
        "m4a" | "cmfa" => "audio/mp4",
        "m4v" => "video/mp4",
        "vtt" => "text/vtt",
        "jpg" | "jpeg" => "image/jpeg",
        "json" => "application/json",
        "ts" => "video/mp2t",
        _ => "application/octet-stream",
    }
}

/// A media segment (not a playlist, init segment or key): what CMSD and
/// the players' throughput estimates are about.
pub fn is_media(file: &str) -> bool {
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(ext, "m4s" | "cmfv" | "cmfa" | "m4a" | "m4v" | "ts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_head() {
        let mut buf = Vec::new();
        Head::start(&mut buf, Status::PartialContent, b"Sun, 06 Nov 1994 08:49:37 GMT")
            .content_length(10)
            .content_range(0, 9, 100)
            .finish(false);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nServer: nearcast\r\nAccess-Control-Allow-Origin: *\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 10\r\nContent-Range: bytes 0-9/100\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn types_and_indexes() {
        assert_eq!(content_type("master.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("manifest.mpd"), "application/dash+xml");
        assert_eq!(content_type("seg-1.m4s"), "video/iso.segment");
        assert_eq!(content_type("init.mp4"), "video/mp4");
        assert_eq!(content_type("audio.m4a"), "audio/mp4");
        assert_eq!(content_type("subs.vtt"), "text/vtt");
        assert_eq!(content_type("thumbs/tile-00001.jpg"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }
}
