//! A connection's answer from a live object: it waits (parked, nothing in
//! flight) until the object's head is known, writes the head, then sends
//! the body as it arrives: with its length when the upstream gave one,
//! else chunked (HTTP/1.1) or to the close. Playlists are answered whole,
//! with the client's token written into their URIs. A fetch that fails
//! before the head becomes a 502 (or the stale copy of a playlist); after
//! it, the connection is cut, so no client takes a short body for a whole
//! one.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Conn, Current, Cx, Phase, Step};
use crate::handler::LiveAsk;
use crate::http::{Request, Status};
use crate::live::object::{Cursor, Head, HeadState, Next};
use crate::live::{rewrite, Kind, Lookup, Object};
use crate::server::send;
use crate::server::upstream::FetchAsk;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AwaitHead,
    Streaming,
    Finished,
}

/// What a request for a live object keeps of its request.
pub struct LiveRequest {
    /// The client's token as it sent it (written into playlists).
    pub token: Option<Vec<u8>>,
    pub host: Box<str>,
    pub http11: bool,
    pub from_peer: bool,
}

impl LiveRequest {
    pub fn of(req: &Request) -> Self {
        let token = req
            .query
            .split(|&b| b == b'&')
            .find_map(|p| p.strip_prefix(b"token="))
            .map(<[u8]>::to_vec);
        let host = req
            .host
            .filter(|h| h.iter().all(|&b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or("nearcast");
        LiveRequest {
            token,
            host: host.into(),
            http11: req.http11,
            from_peer: req.from_peer,
        }
    }
}

/// A live answer under way.
pub(super) struct Following {
    obj: Arc<Object>,
    stage: Stage,
    cursor: Cursor,
    head_only: bool,
    token: Option<Vec<u8>>,
    http11: bool,
    chunked: bool,
    /// Body bytes being sent, and how many of them went.
    pending: Option<(Bytes, usize)>,
    started: Instant,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.obj.detach();
    }
}

impl Conn {
    /// Takes a checked live request: joins the object's fetch, or asks the
    /// worker to start one.
    pub(super) fn begin_live(&mut self, ask: LiveAsk, req: LiveRequest, used: usize, cx: &mut Cx) {
        let live = cx.shared.live.clone();
        let lookup = live.cache().lookup(&ask.key, cx.now);
        let obj = match lookup {
            Lookup::Full => return self.unavailable(ask.keep_alive, used, cx),
            Lookup::Hit { obj, stale } => {
                live.counters.hits.fetch_add(1, Relaxed);
                if stale {
                    live.counters.stale.fetch_add(1, Relaxed);
                }
                if obj.is_open() {
                    live.counters.collapsed.fetch_add(1, Relaxed);
                }
                obj
            }
            Lookup::Fetch(obj) => {
                live.counters.misses.fetch_add(1, Relaxed);
                cx.fetch_asks.push(FetchAsk {
                    obj: obj.clone(),
                    host: req.host,
                    from_peer: req.from_peer,
                });
                obj
            }
        };
        if !obj.attach(live.config.max_readers_per_object) {
            live.counters.too_many_readers.fetch_add(1, Relaxed);
            return self.unavailable(ask.keep_alive, used, cx);
        }
        self.inbuf.drain(..used.min(self.inbuf.len()));
        self.open_rounds = 0;
        self.absent_on = 0;
        self.keep_alive = ask.keep_alive;
        self.live = Some(Following {
            obj,
            stage: Stage::AwaitHead,
            cursor: Cursor::default(),
            head_only: ask.head_only,
            token: req.token,
            http11: req.http11,
            chunked: false,
            pending: None,
            started: cx.now,
        });
        self.phase = Phase::Writing;
    }

    /// A 503 for the request in `inbuf[..used]` (the cache or the object
    /// is full).
    fn unavailable(&mut self, keep_alive: bool, used: usize, cx: &mut Cx) {
        let out = if self.tls.is_some() {
            &mut cx.head
        } else {
            &mut self.out
        };
        let reply = cx.handler.fail(Status::Unavailable, keep_alive, out);
        self.begin_reply(reply, used, cx);
    }

    /// One step of the live answer; `None` when there is none.
    pub(super) fn live_step(&mut self, cx: &mut Cx) -> Option<Step> {
        let stage = self.live.as_ref()?.stage;
        Some(match stage {
            Stage::AwaitHead => self.live_head(cx),
            Stage::Streaming => self.live_body(cx),
            Stage::Finished => {
                self.live = None;
                Step::Done
            }
        })
    }

    /// Writes the head once the object has one.
    fn live_head(&mut self, cx: &mut Cx) -> Step {
        let Some(f) = self.live.as_mut() else {
            return Step::Done;
        };
        let head = match f.obj.head(cx.me) {
            HeadState::Wait => return Step::Park(f.obj.id),
            HeadState::Known(h) => h,
            HeadState::Failed => match f.obj.stale().filter(|o| o.is_complete()) {
                Some(old) => {
                    cx.shared.live.counters.stale.fetch_add(1, Relaxed);
                    old.attach(usize::MAX);
                    std::mem::replace(&mut f.obj, old).detach();
                    return Step::Again;
                }
                None => {
                    let started = f.started;
                    self.live = None;
                    let out = if self.tls.is_some() {
                        &mut cx.head
                    } else {
                        &mut self.out
                    };
                    cx.handler.fail(Status::BadGateway, self.keep_alive, out);
                    self.set_current(Status::BadGateway, 0, started);
                    self.queue_for_tls(cx);
                    return Step::Again;
                }
            },
        };
        let status = Status::from_upstream(head.status).unwrap_or(Status::BadGateway);
        if f.obj.key.kind() == Kind::Playlist {
            return self.live_playlist(&head, status, cx);
        }
        // A body already whole has a length even if it came chunked: one
        // send per chunk instead of three.
        let length = head.length.or_else(|| f.obj.is_complete().then(|| f.obj.body_len()));
        f.chunked = length.is_none() && f.http11 && !f.head_only;
        if length.is_none() && !f.http11 {
            self.keep_alive = false;
        }
        let (chunked, head_only, keep_alive, started) = (f.chunked, f.head_only, self.keep_alive, f.started);
        f.stage = if head_only { Stage::Finished } else { Stage::Streaming };
        let out = if self.tls.is_some() {
            &mut cx.head
        } else {
            &mut self.out
        };
        cx.handler.live_head(status, &head, length, chunked, keep_alive, out);
        self.set_current(status, length.unwrap_or(0), started);
        self.queue_for_tls(cx);
        Step::Again
    }

    /// A playlist is answered whole, with the client's token in its URIs.
    fn live_playlist(&mut self, head: &Head, status: Status, cx: &mut Cx) -> Step {
        let Some(f) = self.live.as_mut() else {
            return Step::Done;
        };
        match f.obj.next(&mut f.cursor, cx.me) {
            Next::Wait => return Step::Park(f.obj.id),
            Next::Failed => return Step::Failed,
            // Read to its end; `whole` gives it at once.
            Next::Data(_) => return Step::Again,
            Next::End => {}
        }
        let Some(body) = f.obj.whole() else {
            return Step::Failed;
        };
        let mut text = Vec::with_capacity(body.len() + 256);
        rewrite::with_token(&body, &head.upstream_token, f.token.as_deref(), &mut text);
        let (head_only, started) = (f.head_only, f.started);
        f.stage = Stage::Finished;
        let keep_alive = self.keep_alive;
        let out = if self.tls.is_some() {
            &mut cx.head
        } else {
            &mut self.out
        };
        cx.handler
            .live_head(status, head, Some(text.len() as u64), false, keep_alive, out);
        if !head_only {
            out.extend_from_slice(&text);
        }
        self.set_current(status, text.len() as u64, started);
        self.queue_for_tls(cx);
        Step::Again
    }

    /// Sends the body bytes in hand, then takes the next from the object.
    fn live_body(&mut self, cx: &mut Cx) -> Step {
        let Some(f) = self.live.as_mut() else {
            return Step::Done;
        };
        if let Some((data, sent)) = f.pending.as_mut() {
            match self.tls.as_mut() {
                Some(tls) => {
                    let _ = tls.writer().write_all(&data[*sent..]);
                    *sent = data.len();
                }
                // MSG_MORE only when the chunk's CRLF follows at once.
                None => match send::send(self.sock.as_raw_fd(), &data[*sent..], f.chunked) {
                    Ok(n) => {
                        *sent += n;
                        cx.metrics.sent(n as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Blocked,
                    Err(_) => return Step::Failed,
                },
            }
            if *sent < data.len() {
                return Step::Again;
            }
            f.pending = None;
            if f.chunked {
                self.push_out(b"\r\n", cx);
            }
            return Step::Again;
        }
        match f.obj.next(&mut f.cursor, cx.me) {
            Next::Data(d) => {
                let frame = f.chunked.then(|| format!("{:x}\r\n", d.len()));
                f.pending = Some((d, 0));
                if let Some(frame) = frame {
                    self.push_out(frame.as_bytes(), cx);
                }
                Step::Again
            }
            Next::Wait => Step::Park(f.obj.id),
            Next::End => {
                f.stage = Stage::Finished;
                if f.chunked {
                    self.push_out(b"0\r\n\r\n", cx);
                }
                Step::Again
            }
            Next::Failed => Step::Failed,
        }
    }

    /// Bytes for the socket before what follows (chunk framing).
    fn push_out(&mut self, bytes: &[u8], cx: &mut Cx) {
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.writer().write_all(bytes);
            }
            None => {
                if self.out.capacity() == 0 {
                    self.out = cx.take_buf();
                }
                self.out.extend_from_slice(bytes);
            }
        }
    }

    /// A TLS head written into `cx.head` goes into the cipher.
    fn queue_for_tls(&mut self, cx: &mut Cx) {
        if let Some(tls) = self.tls.as_mut() {
            let _ = tls.writer().write_all(&cx.head);
            cx.head.clear();
        }
    }

    fn set_current(&mut self, status: Status, body_len: u64, started: Instant) {
        self.current = Some(Current {
            content: false,
            fill: false,
            status,
            started,
            body_len,
            file: None,
        });
    }
}
