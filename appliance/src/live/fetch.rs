//! One upstream fetch as a state machine: which upstream to try, the
//! request to send, the answer read into the object as it arrives. It
//! does no I/O: the worker connects, sends what `request` holds, feeds
//! what it receives to `on_data`, and reports the end of the stream or a
//! failure; the fetch says what to do next.
//!
//! An upstream that cannot be reached, times out before its head, or
//! answers with a server error (or refuses the box's token) is left for
//! the next; once a head has been passed on to readers the fetch is
//! bound to that upstream, and a body that ends early fails the object:
//! its readers are cut, nothing short is cached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::key::Kind;
use super::object::{Head, Object};
use super::response::{parse_head, Chunked, ResponseError, UpstreamHead, MAX_HEAD};

/// The bounds of one fetch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    /// From the request sent to the head (not a blocking reload).
    pub first_byte: Duration,
    /// The same for a blocking playlist reload, which the upstream holds
    /// until the part exists.
    pub blocking: Duration,
    /// Longest silence inside a body.
    pub idle: Duration,
    pub max_object: u64,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes (no length, not chunked).
    Close,
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending { pos: usize },
    Head,
    Body(Framing),
    Done,
}

/// Why an attempt failed (for the metrics and the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect")]
    Connect,
    #[error("timed out")]
    Timeout,
    #[error("upstream answered {0}")]
    Status(u16),
    #[error(transparent)]
    Response(#[from] ResponseError),
    #[error("body cut short")]
    Truncated,
    #[error("object larger than the per-object cap")]
    TooLarge,
    #[error("live cache full")]
    CacheFull,
}

impl FetchError {
    /// The label of `nearcast_upstream_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            FetchError::Connect => "refused",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "error_status",
            FetchError::Response(_) => "bad_response",
            FetchError::Truncated => "truncated",
            FetchError::TooLarge | FetchError::CacheFull => "too_large",
        }
    }
}

/// How long answers are reused, by kind (`[live]` in the config).
#[derive(Clone, Copy, Debug)]
pub struct Ttls {
    /// A playlist: at most this (and at most its `max-age`).
    pub playlist: Duration,
    /// A blocking reload's answer.
    pub blocking: Duration,
    /// Media without a `max-age`.
    pub media: Duration,
    /// 400, 404, 410.
    pub negative: Duration,
}

/// What the worker does after a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Close the socket and connect to `target()` again.
    Retry,
    /// The object has failed; wake the workers in the mask.
    GaveUp(u64),
}

/// What a fetch needs from outside while it reads: room in the cache.
pub trait Sink {
    /// Charges `n` more body bytes to the object; false: no room.
    fn charge(&mut self, n: u64) -> bool;
}

pub struct Fetch {
    pub obj: Arc<Object>,
    upstreams: Vec<SocketAddr>,
    tried: usize,
    phase: Phase,
    request: Vec<u8>,
    inbuf: Vec<u8>,
    token: Box<str>,
    limits: Limits,
    deadline: Instant,
    /// The head given to readers, once there is one.
    head: Option<UpstreamHead>,
    /// Workers to wake for what the last calls changed.
    wake: u64,
}

impl Fetch {
    pub fn new(obj: Arc<Object>, upstreams: Vec<SocketAddr>, limits: Limits, now: Instant) -> Self {
        Fetch {
            obj,
            upstreams,
            tried: 0,
            phase: Phase::Connecting,
            request: Vec::new(),
            inbuf: Vec::new(),
            token: "".into(),
            limits,
            deadline: now + limits.connect,
            head: None,
            wake: 0,
        }
    }

    /// The upstream of this attempt; `None` when none is configured.
    pub fn target(&self) -> Option<SocketAddr> {
        self.upstreams.get(self.tried).copied()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The answer so far, once its head arrived.
    pub fn head(&self) -> Option<&UpstreamHead> {
        self.head.as_ref()
    }

    pub fn done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Connected: the request to send, with the box's token for this
    /// upstream and the client's `Host`.
    pub fn connected(&mut self, token: &str, host: &str, now: Instant) {
        let key = self.obj.key.as_str();
        let sep = if key.contains('?') { '&' } else { '?' };
        self.token = token.into();
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "GET {key}{sep}token={token} HTTP/1.1\r\nHost: {host}\r\nVia: 1.1 nearcast\r\nUser-Agent: nearcast-appliance\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        self.phase = Phase::Sending { pos: 0 };
        self.deadline = now + self.limits.first_byte;
    }

    /// The request bytes still to send (empty once sent).
    pub fn unsent(&self) -> &[u8] {
        match self.phase {
            Phase::Sending { pos } => &self.request[pos..],
            _ => &[],
        }
    }

    /// `n` request bytes went out.
    pub fn sent(&mut self, n: usize, now: Instant) {
        if let Phase::Sending { pos } = &mut self.phase {
            *pos += n;
            if *pos >= self.request.len() {
                self.phase = Phase::Head;
                let wait = if self.obj.key.blocking() {
                    self.limits.blocking
                } else {
                    self.limits.first_byte
                };
                self.deadline = now + wait;
            }
        }
    }

    /// Workers to wake for what changed since the last call.
    pub fn take_wake(&mut self) -> u64 {
        std::mem::take(&mut self.wake)
    }

    /// Bytes from the upstream. `Ok(true)`: the answer is complete.
    pub fn on_data(&mut self, data: &[u8], sink: &mut dyn Sink, now: Instant) -> Result<bool, FetchError> {
        self.deadline = now + self.limits.idle;
        let body: &[u8] = match self.phase {
            Phase::Head => {
                self.inbuf.extend_from_slice(data);
                let Some((head, used)) = parse_head(&self.inbuf)? else {
                    if self.inbuf.len() >= MAX_HEAD {
                        return Err(ResponseError::TooLarge.into());
                    }
                    return Ok(false);
                };
                self.take_head(head)?;
                let rest = std::mem::take(&mut self.inbuf);
                return self.body_bytes(&rest[used..], sink);
            }
            Phase::Body(_) => data,
            _ => return Ok(self.done()),
        };
        self.body_bytes(body, sink)
    }

    /// Checks a head and hands it to readers.
    fn take_head(&mut self, head: UpstreamHead) -> Result<(), FetchError> {
        // Answers the box passes on; anything else is the upstream's
        // trouble (5xx, a refused token, a redirect) and the next is asked.
        if !matches!(head.status, 200 | 204 | 400 | 404 | 410) {
            return Err(FetchError::Status(head.status));
        }
        if head.length.is_some_and(|n| n > self.limits.max_object) {
            return Err(FetchError::TooLarge);
        }
        let framing = match (head.chunked, head.length) {
            (true, _) => Framing::Chunked(Chunked::default()),
            (false, Some(n)) => Framing::Length(n),
            (false, None) if head.status == 204 => Framing::Length(0),
            (false, None) => Framing::Close,
        };
        self.wake |= self.obj.set_head(Head {
            status: head.status,
            content_type: head
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            length: head.length,
            cache_control: head.cache_control.clone(),
            upstream_token: self.token.clone(),
        });
        self.head = Some(head);
        self.phase = Phase::Body(framing);
        Ok(())
    }

    fn body_bytes(&mut self, data: &[u8], sink: &mut dyn Sink) -> Result<bool, FetchError> {
        let Phase::Body(framing) = &mut self.phase else {
            return Ok(self.done());
        };
        let mut out: Vec<Bytes> = Vec::new();
        let finished = match framing {
            Framing::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                if n > 0 {
                    out.push(Bytes::copy_from_slice(&data[..n]));
                }
                *left -= n as u64;
                *left == 0
            }
            Framing::Chunked(c) => {
                let mut run = Vec::new();
                c.feed(data, |d| run.extend_from_slice(d))?;
                if !run.is_empty() {
                    out.push(Bytes::from(run));
                }
                c.done()
            }
            Framing::Close => {
                if !data.is_empty() {
                    out.push(Bytes::copy_from_slice(data));
                }
                false
            }
        };
        for chunk in out {
            let n = chunk.len() as u64;
            if self.obj.body_len() + n > self.limits.max_object {
                return Err(FetchError::TooLarge);
            }
            if !sink.charge(n) {
                return Err(FetchError::CacheFull);
            }
            self.wake |= self.obj.push(chunk);
        }
        if finished {
            self.finish();
        }
        Ok(finished)
    }

    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.wake |= self.obj.complete();
    }

    /// The upstream closed its side. `Ok(true)`: that ended the answer.
    pub fn on_eof(&mut self) -> Result<bool, FetchError> {
        match &self.phase {
            Phase::Body(Framing::Close) => {
                self.finish();
                Ok(true)
            }
            Phase::Done => Ok(true),
            Phase::Body(_) => Err(FetchError::Truncated),
            _ => Err(FetchError::Connect),
        }
    }

    /// The attempt failed: try the next upstream while nothing has been
    /// passed on, else fail the object.
    pub fn failed(&mut self, now: Instant) -> After {
        if self.head.is_none() && self.tried + 1 < self.upstreams.len() {
            self.tried += 1;
            self.phase = Phase::Connecting;
            self.inbuf.clear();
            self.deadline = now + self.limits.connect;
            return After::Retry;
        }
        self.phase = Phase::Done;
        After::GaveUp(self.obj.fail() | self.take_wake())
    }

    /// How long the answer may be reused (`docs/live-box.md`).
    pub fn ttl(&self, t: &Ttls) -> Duration {
        let Some(head) = &self.head else {
            return Duration::ZERO;
        };
        if head.status != 200 {
            return t.negative;
        }
        let age = head.max_age();
        match self.obj.key.kind() {
            // It lists the part it was asked for, whenever it is read.
            Kind::Playlist if self.obj.key.blocking() => t.blocking,
            Kind::Playlist => age.unwrap_or(t.playlist).min(t.playlist),
            Kind::Media => age.unwrap_or(t.media),
        }
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
