//! A response's course on its connection: the handler's reply taken (the
//! head held back until the body's first bytes are in hand), a body that
//! cannot be read turned into a 500 or a cut, and the finished response
//! counted before the next request.

use std::io::Write;

use super::{Conn, Current, Phase, LINGER};
use crate::handler::Reply;
use crate::http::Status;
use crate::server::conn::cx::Cx;

impl Conn {
    /// Takes the handler's reply for the request in `inbuf[..used]`.
    pub(super) fn begin_reply(&mut self, reply: Reply, used: usize, cx: &mut Cx) {
        self.inbuf.drain(..used.min(self.inbuf.len()));
        self.open_rounds = 0;
        self.absent_on = 0;
        self.head_held = reply.body.is_some();
        if let Some(tls) = self.tls.as_mut() {
            if self.head_held {
                std::mem::swap(&mut self.held, &mut cx.head);
            } else {
                // Buffered by rustls; cannot fail short of a closed session.
                let _ = tls.writer().write_all(&cx.head);
            }
            cx.head.clear();
        }
        self.current = Some(Current {
            status: reply.status,
            content: reply.content,
            fill: false,
            started: cx.now,
            body_len: reply.body.as_ref().map_or(0, |b| b.len),
            file: reply.body.as_ref().map(|b| b.file.clone()),
        });
        self.body = reply.body;
        self.keep_alive = reply.keep_alive;
        self.phase = Phase::Writing;
    }

    /// The head may go: the body's first bytes are in hand.
    pub(super) fn commit_head(&mut self) {
        if !self.head_held {
            return;
        }
        self.head_held = false;
        if let Some(tls) = self.tls.as_mut() {
            let _ = tls.writer().write_all(&self.held);
            self.held.clear();
        }
    }

    /// The body cannot be read. Before any of it went out the response
    /// becomes a 500; after, the connection closes (the client sees a short
    /// body and retries elsewhere).
    pub(super) fn fail_body(&mut self, cx: &mut Cx) {
        self.body = None;
        if !self.head_held {
            self.cut = true;
            return;
        }
        self.head_held = false;
        let head = if self.tls.is_some() {
            self.held.clear();
            &mut cx.head
        } else {
            self.out.clear();
            self.out_pos = 0;
            &mut self.out
        };
        let _ = cx.handler.fail(Status::InternalError, self.keep_alive, head);
        if let Some(tls) = self.tls.as_mut() {
            let _ = tls.writer().write_all(&cx.head);
            cx.head.clear();
        }
        if let Some(c) = self.current.as_mut() {
            c.status = Status::InternalError;
            c.body_len = 0;
        }
    }

    /// Records the finished response and gets ready for the next request.
    pub(super) fn finish_reply(&mut self, cx: &mut Cx) {
        self.body = None;
        self.head_started = (!self.inbuf.is_empty()).then_some(cx.now);
        if let Some(c) = self.current.take() {
            let disk = c.file.as_ref().map(|f| f.disk);
            cx.metrics
                .response(c.status, c.body_len, disk, cx.now.duration_since(c.started));
            if c.content {
                cx.metrics.playback.answered(c.status);
            }
            if let Some(file) = c.file.filter(|_| !c.fill) {
                match cx.titles.get_mut(&*file.title) {
                    Some(n) => *n += c.body_len,
                    None => {
                        cx.titles.insert(file.title.clone(), c.body_len);
                    }
                }
            }
        }
        if self.keep_alive && !cx.draining {
            self.phase = Phase::Reading;
        } else {
            self.start_linger(&cx.metrics);
            self.deadline = cx.now + LINGER;
        }
    }
}
