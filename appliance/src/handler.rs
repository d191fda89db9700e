//! What to answer: routes a parsed request to the content store, checks
//! its token, applies conditionals and ranges, and writes the response head.
//! The body, if any, is returned as a file region for the worker to send.
//! When the file's lookup would wait on the disk, the decision is to open
//! it first ([`Decision::Open`]); the worker does, and asks again. A live
//! path, once its token is good, is handed to the live side
//! ([`Decision::Live`]), which answers from the live cache or upstream.

use std::ffi::CString;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use nearcast_common::{Keyring, TokenError, TOKEN_PARAM};

use crate::http::range::{evaluate_range, not_modified, Validators};
use crate::http::response::content_type;
use crate::http::{Head, Method, ParseError, RangeOutcome, Request, Status};
use crate::live::LiveKey;
use crate::path::{query_param, ContentPath, Space};
use crate::store::{FileCache, OpenFile, StoreError};

/// Bytes of a file to send after the head.
pub struct Body {
    pub file: Rc<OpenFile>,
    pub offset: u64,
    pub len: u64,
}

/// What to do with one request.
pub enum Decision {
    /// Answer it: the head is already in the buffer.
    Reply(Reply),
    /// Open the file first, through io_uring, then decide again.
    Open(OpenAsk),
    /// A live object: nothing is written yet.
    Live(LiveAsk),
}

/// A request for a live object, checked.
pub struct LiveAsk {
    pub key: LiveKey,
    pub head_only: bool,
    pub keep_alive: bool,
}

/// An open the worker does for the handler.
pub struct OpenAsk {
    /// The path relative to a disk root (the cache's key).
    pub rel: Box<str>,
    pub disk: usize,
    /// The full path on that disk.
    pub path: CString,
}

/// The answer to one request; the head is already in the buffer.
pub struct Reply {
    pub status: Status,
    pub body: Option<Body>,
    pub keep_alive: bool,
    /// For a title's file, past the token check: its status tells whether
    /// the box served the viewer (`playback::Playback::errors`).
    pub content: bool,
}

/// The connection a request came on, as far as the answer tells of it.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub peer: IpAddr,
    /// The connection's throughput as the server estimates it (CMSD `etp`).
    pub etp_kbps: Option<u32>,
    /// Its round trip time (CMSD `rtt`).
    pub rtt_ms: Option<u32>,
    /// The box is over its load threshold (CMSD `du`).
    pub duress: bool,
}

impl Link {
    /// A connection from `peer`, nothing estimated.
    pub fn from(peer: IpAddr) -> Link {
        Link {
            peer,
            etp_kbps: None,
            rtt_ms: None,
            duress: false,
        }
    }
}

pub struct Handler {
    keyring: Arc<Keyring>,
    auth_required: bool,
    files: FileCache,
    date: DateCache,
    cmsd: Option<crate::config::CmsdConfig>,
}

impl Handler {
    pub fn new(keyring: Arc<Keyring>, auth_required: bool, files: FileCache) -> Self {
        Handler {
            keyring,
            auth_required,
            files,
            date: DateCache::default(),
            cmsd: None,
        }
    }

    /// Media answers carry CMSD as `cmsd` says (off: none).
    pub fn with_cmsd(mut self, cmsd: &crate::config::CmsdConfig) -> Self {
        self.cmsd = cmsd.enabled.then(|| cmsd.clone());
        self
    }

    /// Whether media answers carry CMSD (the caller then fills `Link`).
    pub fn cmsd(&self) -> bool {
        self.cmsd.is_some()
    }

    /// Decides on a well-formed request from `link`; an answer's head goes
    /// into `out`. `skip`: disks the file was already found absent on
    /// (see `FileCache::open`).
    pub fn respond(&mut self, req: &Request, link: &Link, now: Instant, skip: u64, out: &mut Vec<u8>) -> Decision {
        self.answer(req, link, now, skip, out)
    }

    /// An open asked for by [`Decision::Open`] completed with `res` (a
    /// descriptor or `-errno`).
    pub fn opened(&mut self, ask: &OpenAsk, res: i32, now: Instant) {
        self.files.opened(&ask.rel, ask.disk, res, now);
    }

    fn answer(&mut self, req: &Request, link: &Link, now: Instant, skip: u64, out: &mut Vec<u8>) -> Decision {
        let peer = link.peer;
        let head_only = req.method() == Method::Head;
        let keep_alive = req.keep_alive;
        let wall = self.date.refresh();
        let (path, path_token) = ContentPath::parse_with_token(req.path);
        let path = match path {
            Ok(p) => p,
            Err(crate::path::PathError::NotContent) => {
                return Decision::Reply(self.error(Status::NotFound, keep_alive, head_only, out))
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "refused path");
                return Decision::Reply(self.error(Status::BadRequest, keep_alive, head_only, out));
            }
        };
        if self.auth_required {
            if let Err(e) = self.check_token(&path, path_token, req.query, peer, wall) {
                tracing::debug!(%peer, path = path.url_path(), error = %e, "token refused");
                return Decision::Reply(self.error(Status::Forbidden, keep_alive, head_only, out));
            }
        }
        if path.space() == Space::Live {
            return self.live(&path, req, peer, out);
        }
        match self.file(&path, req, link, now, skip, out) {
            Decision::Reply(r) => Decision::Reply(Reply { content: true, ..r }),
            d => d,
        }
    }

    /// A title's file, its token checked.
    fn file(
        &mut self,
        path: &ContentPath,
        req: &Request,
        link: &Link,
        now: Instant,
        skip: u64,
        out: &mut Vec<u8>,
    ) -> Decision {
        let (head_only, keep_alive) = (req.method() == Method::Head, req.keep_alive);
        let file = match self.files.open(path.relative(), now, skip) {
            Ok(f) => f,
            Err(StoreError::NotFound) => {
                return Decision::Reply(self.error(Status::NotFound, keep_alive, head_only, out))
            }
            Err(StoreError::WouldBlock { disk }) => {
                let rel = path.relative();
                return match self.files.path_of(disk, rel) {
                    Some(path) => Decision::Open(OpenAsk {
                        rel: rel.into(),
                        disk,
                        path,
                    }),
                    None => Decision::Reply(self.error(Status::NotFound, keep_alive, head_only, out)),
                };
            }
            Err(e) => {
                tracing::warn!(path = path.url_path(), error = %e, "store error");
                return Decision::Reply(self.error(Status::InternalError, keep_alive, head_only, out));
            }
        };
        let v = Validators {
            etag: file.etag.as_bytes(),
            modified: file.modified,
        };
        if not_modified(req.if_none_match, req.if_modified_since, &v) {
            let mut h = Head::start(out, Status::NotModified, self.date.get());
            h.header("ETag", file.etag.as_bytes())
                .header("Last-Modified", file.last_modified.as_bytes());
            h.finish(keep_alive);
            return Decision::Reply(reply(Status::NotModified, None, keep_alive));
        }
        let (status, offset, len) = match evaluate_range(req.range, req.if_range, file.len, &v) {
            RangeOutcome::Full => (Status::Ok, 0, file.len),
            RangeOutcome::Partial { start, end } => (Status::PartialContent, start, end - start + 1),
            RangeOutcome::Unsatisfiable => {
                let mut h = Head::start(out, Status::RangeNotSatisfiable, self.date.get());
                h.unsatisfied_range(file.len).content_length(0);
                h.finish(keep_alive);
                return Decision::Reply(reply(Status::RangeNotSatisfiable, None, keep_alive));
            }
        };
        let mut h = Head::start(out, status, self.date.get());
        h.header("Content-Type", content_type(path.file_name()).as_bytes())
            .content_length(len)
            .header("Last-Modified", file.last_modified.as_bytes())
            .header("ETag", file.etag.as_bytes())
            .header("Accept-Ranges", b"bytes");
        if status == Status::PartialContent {
            h.content_range(offset, offset + len - 1, file.len);
        }
        if let Some(cmsd) = self
            .cmsd
            .as_ref()
            .filter(|_| crate::http::response::is_media(path.file_name()))
        {
            cmsd_headers(&mut h, cmsd, link);
        }
        h.finish(keep_alive);
        let body = (!head_only && len > 0).then_some(Body { file, offset, len });
        Decision::Reply(reply(status, body, keep_alive))
    }

    /// The head of a live answer, from what its upstream answered: its
    /// length when known, else chunked (or neither: to the close).
    pub fn live_head(
        &mut self,
        status: Status,
        head: &crate::live::object::Head,
        length: Option<u64>,
        chunked: bool,
        keep_alive: bool,
        out: &mut Vec<u8>,
    ) {
        self.date.refresh();
        let mut h = Head::start(out, status, self.date.get());
        h.header("Content-Type", head.content_type.as_bytes());
        if let Some(cc) = &head.cache_control {
            h.header("Cache-Control", cc.as_bytes());
        }
        match (length, chunked) {
            (Some(n), _) => {
                h.content_length(n);
            }
            (None, true) => {
                h.header("Transfer-Encoding", b"chunked");
            }
            (None, false) => {}
        }
        h.finish(keep_alive);
    }

    /// A live request with a good token goes to the live side, if its
    /// arguments make a key.
    fn live(&mut self, path: &ContentPath, req: &Request, peer: IpAddr, out: &mut Vec<u8>) -> Decision {
        let (head_only, keep_alive) = (req.method() == Method::Head, req.keep_alive);
        match LiveKey::new(path, req.query) {
            Ok(key) => Decision::Live(LiveAsk {
                key,
                head_only,
                keep_alive,
            }),
            Err(e) => {
                tracing::debug!(%peer, path = path.url_path(), error = %e, "refused live request");
                Decision::Reply(self.error(Status::BadRequest, keep_alive, head_only, out))
            }
        }
    }

    /// Answers a request that could not be parsed; the connection closes.
    pub fn refuse(&mut self, err: ParseError, out: &mut Vec<u8>) -> Reply {
        let status = match err {
            ParseError::Malformed | ParseError::BodyNotAllowed => Status::BadRequest,
            ParseError::UriTooLong => Status::UriTooLong,
            ParseError::HeadersTooLarge => Status::HeadersTooLarge,
            ParseError::MethodNotAllowed => Status::MethodNotAllowed,
        };
        self.date.refresh();
        self.error(status, false, false, out)
    }

    /// An error answer after the decision: a response whose body cannot be
    /// read (nothing of it was sent), or a file that could not be opened.
    /// Writes the head and text of `status` into `out`.
    pub fn fail(&mut self, status: Status, keep_alive: bool, out: &mut Vec<u8>) -> Reply {
        self.date.refresh();
        self.error(status, keep_alive, false, out)
    }

    /// The token in the path (`/t/{token}/…`) or else in the query, for
    /// `path` and `peer` at `now`.
    fn check_token(
        &self,
        path: &ContentPath,
        in_path: Option<&[u8]>,
        query: &[u8],
        peer: IpAddr,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let mut buf = [0u8; 256];
        let token = match in_path {
            Some(raw) => nearcast_common::query::decode(raw, &mut buf),
            None => query_param(query, TOKEN_PARAM, &mut buf),
        }
        .ok_or(TokenError::Missing)?;
        let unix = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.keyring.verify(path.url_path(), token, peer, unix).map(|_| ())
    }

    /// A short text response for an error status.
    fn error(&mut self, status: Status, keep_alive: bool, head_only: bool, out: &mut Vec<u8>) -> Reply {
        let text: &[u8] = match status {
            Status::BadRequest => b"bad request\n",
            Status::Forbidden => b"forbidden\n",
            Status::NotFound => b"not found\n",
            Status::BadGateway => b"no upstream answered\n",
            Status::Unavailable => b"unavailable\n",
            Status::MethodNotAllowed => b"only GET and HEAD\n",
            Status::UriTooLong => b"request line too long\n",
            Status::HeadersTooLarge => b"request headers too large\n",
            _ => b"server error\n",
        };
        let mut h = Head::start(out, status, self.date.get());
        h.header("Content-Type", b"text/plain")
            .content_length(text.len() as u64);
        if status == Status::MethodNotAllowed {
            h.header("Allow", b"GET, HEAD");
        }
        h.finish(keep_alive);
        if !head_only {
            out.extend_from_slice(text);
        }
        reply(status, None, keep_alive)
    }
}

fn reply(status: Status, body: Option<Body>, keep_alive: bool) -> Reply {
    Reply {
        status,
        body,
        keep_alive,
        content: false,
    }
}

/// CMSD (CTA-5006) on a media answer: `CMSD-Static` names the box and
/// says the stream is on demand; `CMSD-Dynamic` is the box's entry with
/// its estimate of the connection's throughput and round trip, `du` when
/// it is over its load threshold, and `mb` when the operator caps the
/// bitrate players should pick.
fn cmsd_headers(h: &mut Head<'_>, cmsd: &crate::config::CmsdConfig, link: &Link) {
    use std::fmt::Write;
    let id = &cmsd.server_id;
    let mut dynamic = format!("\"{id}\"");
    if let Some(etp) = link.etp_kbps {
        let _ = write!(dynamic, ";etp={etp}");
    }
    if let Some(rtt) = link.rtt_ms {
        let _ = write!(dynamic, ";rtt={rtt}");
    }
    if cmsd.max_bitrate_kbps > 0 {
        let _ = write!(dynamic, ";mb={}", cmsd.max_bitrate_kbps);
    }
    if link.duress {
        dynamic.push_str(";du");
    }
    h.header("CMSD-Static", format!("n=\"{id}\",st=v").as_bytes())
        .header("CMSD-Dynamic", dynamic.as_bytes());
}

/// The `Date` header, formatted once a second.
#[derive(Default)]
struct DateCache {
    secs: u64,
    text: String,
}

impl DateCache {
    fn refresh(&mut self) -> SystemTime {
        let now = SystemTime::now();
        let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
        now
    }

    fn get(&self) -> &[u8] {
        self.text.as_bytes()
    }
}
