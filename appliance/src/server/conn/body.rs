//! The send path of a response: the queued head or TLS records, then the
//! body, chunk by chunk, each from the page cache when its bytes are
//! there (`sendfile`; for rustls a read that refuses to wait) or else from
//! a read through the disk's queue, sized to what the socket and the rate
//! cap take next.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Chunk, Conn, Cx, ReadAsk, Reading, Step, MIN_READ, TLS_CHUNK};
use crate::metrics::WorkerMetrics;
use crate::server::reads::ReadBuf;
use crate::server::send;
use crate::store::DIRECT_ALIGN;

impl Conn {
    /// The worker got a buffer for this connection's `Want::Read`: the
    /// read to submit into it.
    pub fn start_read(&mut self, mut buf: ReadBuf, now: Instant) -> Result<(ReadAsk, *mut u8), ReadBuf> {
        let Some(r) = self.reading.as_mut().filter(|r| r.buf.is_none()) else {
            return Err(buf);
        };
        let ptr = buf.as_mut_ptr();
        r.ask.len = r.ask.len.min(buf.len());
        r.buf = Some((buf, now));
        Ok((r.ask, ptr))
    }

    /// The disk this connection is queued on, if it waits for a read that
    /// was not submitted yet.
    pub fn queued_on(&self) -> Option<usize> {
        self.reading.as_ref().filter(|r| r.buf.is_none()).map(|r| r.disk)
    }

    /// A read this connection asked for completed with `res`.
    pub fn on_read(&mut self, res: i32, cx: &mut Cx) {
        let Some(Reading {
            disk,
            skip,
            want,
            buf: Some((buf, started)),
            ..
        }) = self.reading.take()
        else {
            return;
        };
        cx.reads.done(disk);
        cx.metrics
            .disk_read(disk, res.max(0) as u64, cx.now.duration_since(started));
        match res {
            // (An O_DIRECT read that ends at or before `skip` found the file
            // shorter than promised: as a 0 below.)
            n if n > 0 && n as usize > skip => {
                let end = (n as usize).min(skip + want);
                if let Some(body) = self.body.as_mut() {
                    let got = (end - skip) as u64;
                    body.offset += got;
                    body.len -= got.min(body.len);
                }
                self.chunk = Some(Chunk { buf, pos: skip, end });
            }
            e if e == -libc::EAGAIN || e == -libc::EINTR => cx.reads.give(buf),
            e => {
                cx.reads.give(buf);
                // 0: the file shrank under us; the rest: the disk failed
                // (ECANCELED: the worker is going away).
                if e < 0 && e != -libc::ECANCELED {
                    cx.shared.disks.read_failed(disk);
                    let error = io::Error::from_raw_os_error(-e);
                    tracing::warn!(disk, peer = %self.peer, %error, "disk read failed");
                }
                self.fail_body(cx);
            }
        }
    }

    /// Sends what is queued, then the body, as far as the socket, the rate
    /// cap and the page cache allow.
    pub(super) fn write_out(&mut self, cx: &mut Cx) -> Step {
        loop {
            if self.cut {
                return Step::Failed;
            }
            if self.tls.is_some() {
                self.queue_tls_output();
            }
            if self.has_output() && !(self.head_held && self.tls.is_none()) {
                match self.flush(&cx.metrics) {
                    Step::Done => {}
                    other => return other,
                }
            }
            if self.chunk.is_some() {
                self.commit_head();
                if self.head_held_in_out() {
                    continue;
                }
                match self.send_chunk(cx) {
                    Step::Done => continue,
                    other => return other,
                }
            }
            match self.live_step(cx) {
                Some(Step::Again) => continue,
                Some(Step::Done) | None => {}
                Some(other) => return other,
            }
            let Some(body) = self.body.as_ref() else {
                return Step::Done;
            };
            if body.len == 0 {
                return Step::Done;
            }
            let allowed = match self.allowance(body.len, cx.now) {
                Ok(n) => n,
                Err(wait) => return Step::Paced(wait),
            };
            let step = if self.tls.is_some() {
                self.body_through_cipher(allowed, cx)
            } else {
                self.body_by_sendfile(allowed, cx)
            };
            match step {
                Step::Done => continue,
                other => return other,
            }
        }
    }

    /// A plain head still waiting in `out` after a commit (flush it first).
    pub(super) fn head_held_in_out(&self) -> bool {
        self.tls.is_none() && self.has_output()
    }

    pub(super) fn allowance(&mut self, want: u64, now: Instant) -> Result<u64, Duration> {
        match self.pace.as_mut() {
            None => Ok(want),
            Some((rate, bucket)) => bucket.allowance(rate, want, now),
        }
    }

    pub(super) fn spend(&mut self, n: u64) {
        if let Some((_, bucket)) = self.pace.as_mut() {
            bucket.spend(n);
        }
    }

    /// Plain body: `sendfile` what is in the page cache; ask for a read of
    /// what is not.
    pub(super) fn body_by_sendfile(&mut self, allowed: u64, cx: &mut Cx) -> Step {
        let Some(body) = self.body.as_ref() else {
            return Step::Done;
        };
        let hot = body.file.resident(body.offset, allowed);
        if hot == 0 {
            return self.ask_read(allowed, cx);
        }
        if self.head_held {
            // The head goes first (MSG_MORE), now that body bytes follow.
            self.head_held = false;
            match self.flush(&cx.metrics) {
                Step::Done => {}
                other => return other,
            }
        }
        let Some(body) = self.body.as_mut() else {
            return Step::Done;
        };
        match send::sendfile(self.sock.as_raw_fd(), &body.file.file, body.offset, hot) {
            Ok(0) => Step::Failed, // the file shrank under us
            Ok(n) => {
                body.offset += n as u64;
                body.len -= n as u64;
                cx.metrics.sent(n as u64);
                cx.metrics.from_cache(n as u64);
                self.spend(n as u64);
                Step::Done
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Blocked,
            Err(_) => Step::Failed,
        }
    }

    /// TLS body: what the page cache holds goes straight into the cipher;
    /// the rest is read through the disk queue.
    pub(super) fn body_through_cipher(&mut self, allowed: u64, cx: &mut Cx) -> Step {
        let Some(body) = self.body.as_mut() else {
            return Step::Done;
        };
        let want = cx.scratch.len().min(allowed as usize);
        match send::read_cached(&body.file.file, &mut cx.scratch[..want], body.offset) {
            Ok(0) => {
                self.fail_body(cx);
                Step::Done
            }
            Ok(n) => {
                body.offset += n as u64;
                body.len -= (n as u64).min(body.len);
                cx.metrics.from_cache(n as u64);
                self.commit_head();
                if let Some(tls) = self.tls.as_mut() {
                    let _ = tls.writer().write_all(&cx.scratch[..n]);
                }
                self.spend(n as u64);
                Step::Done
            }
            // Not cached, or a filesystem that cannot say (FUSE, say):
            // read it through the disk queue.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                self.ask_read(allowed, cx)
            }
            Err(e) => {
                let disk = body.file.disk;
                cx.shared.disks.read_failed(disk);
                tracing::warn!(disk, peer = %self.peer, error = %e, "disk read failed");
                self.fail_body(cx);
                Step::Done
            }
        }
    }

    /// Asks for the next body bytes from disk, as many as the socket and
    /// the cap take now; waits for room first when the socket is full.
    pub(super) fn ask_read(&mut self, allowed: u64, cx: &Cx) -> Step {
        let Some(body) = self.body.as_ref() else {
            return Step::Done;
        };
        let mut len = body.len.min(allowed).min(cx.reads.buffer_bytes() as u64);
        if !self.head_held {
            if let Some((free, size)) = send::send_space(self.sock.as_raw_fd()) {
                // POLLOUT fires once free >= size/3, so waiting below
                // min(MIN_READ, size/4) can never spin.
                if free < MIN_READ.min(size / 4) {
                    return Step::Blocked;
                }
                len = len.min(free.max(MIN_READ));
            }
        }
        let disk = body.file.disk;
        let buffer = cx.reads.buffer_bytes() as u64;
        // A large file's first cold read bypasses the page cache; asked
        // for again, it is admitted (read through the cache).
        let direct = cx.direct_min.is_some_and(|min| body.file.len >= min) && !body.file.asked_again();
        let (fd, offset, skip, read) = match body.file.direct_fd().filter(|_| direct) {
            Some(fd) => {
                // Aligned start and length; what the body needs sits inside.
                let start = body.offset / DIRECT_ALIGN * DIRECT_ALIGN;
                let skip = body.offset - start;
                len = len.min(buffer - skip);
                (fd, start, skip, (skip + len).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN)
            }
            None => (body.file.file.as_raw_fd(), body.offset, 0, len),
        };
        self.reading = Some(Reading {
            disk,
            ask: ReadAsk {
                fd,
                offset,
                len: read.min(buffer) as usize,
            },
            skip: skip as usize,
            want: len as usize,
            buf: None,
        });
        Step::Read(disk)
    }

    /// Sends the read bytes in hand.
    pub(super) fn send_chunk(&mut self, cx: &mut Cx) -> Step {
        loop {
            let Some(pending) = self.chunk.as_ref().map(|c| (c.end - c.pos) as u64) else {
                return Step::Done;
            };
            if pending == 0 {
                if let Some(c) = self.chunk.take() {
                    cx.reads.give(c.buf);
                }
                return Step::Done;
            }
            let allowed = match self.allowance(pending, cx.now) {
                Ok(n) => n as usize,
                Err(wait) => return Step::Paced(wait),
            };
            let Some(chunk) = self.chunk.as_ref() else {
                return Step::Done;
            };
            let bytes = &chunk.buf.bytes()[chunk.pos..chunk.pos + allowed];
            let n = match self.tls.as_mut() {
                Some(tls) => {
                    let n = tls.writer().write(&bytes[..bytes.len().min(TLS_CHUNK)]).unwrap_or(0);
                    self.queue_tls_output();
                    match self.flush(&cx.metrics) {
                        Step::Done => n,
                        other => {
                            self.advance_chunk(n, cx);
                            return other;
                        }
                    }
                }
                None => {
                    let more = allowed < pending as usize || self.body.as_ref().is_some_and(|b| b.len > 0);
                    match send::send(self.sock.as_raw_fd(), bytes, more) {
                        Ok(n) => {
                            cx.metrics.sent(n as u64);
                            n
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Blocked,
                        Err(_) => return Step::Failed,
                    }
                }
            };
            self.advance_chunk(n, cx);
        }
    }

    pub(super) fn advance_chunk(&mut self, n: usize, cx: &mut Cx) {
        if let Some(c) = self.chunk.as_mut() {
            c.pos += n;
        }
        cx.metrics.from_disk(n as u64);
        self.spend(n as u64);
    }

    /// Sends `out[out_pos..]`; MSG_MORE when a plain body follows, so the
    /// head and the first body bytes share a packet.
    pub(super) fn flush(&mut self, metrics: &WorkerMetrics) -> Step {
        let more = self.tls.is_none() && (self.chunk.is_some() || self.body.as_ref().is_some_and(|b| b.len > 0));
        while self.out_pos < self.out.len() {
            match send::send(self.sock.as_raw_fd(), &self.out[self.out_pos..], more) {
                Ok(n) => {
                    self.out_pos += n;
                    metrics.sent(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Blocked,
                Err(_) => return Step::Failed,
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Step::Done
    }
}
