//! One live object as its fetch fills it and its readers follow it.
//!
//! The worker that missed fetches it from upstream and appends the body
//! as it arrives; readers on any worker hold a [`Cursor`] and take the
//! bytes after it. The body is a list of immutable `Bytes` chunks, so a
//! reader clones a chunk under the lock (a reference count) and sends it
//! without. A reader that has caught up registers its worker in the
//! object's waiting set under the same lock, so no append can slip
//! between "nothing new" and "wake me"; every change returns the set of
//! workers to wake and clears it.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::key::LiveKey;

/// What the upstream answered, as far as readers need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: Box<str>,
    /// `Content-Length`, when the upstream sent one.
    pub length: Option<u64>,
    /// The upstream's `Cache-Control` value, passed on.
    pub cache_control: Option<Box<str>>,
    /// The token the box sent upstream; playlists carry it in their URIs
    /// and readers write their own in its place.
    pub upstream_token: Box<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    Complete,
    /// The fetch failed; whether any byte had been passed on is in the
    /// head (`None`: no answer at all).
    Failed,
}

struct State {
    head: Option<Arc<Head>>,
    chunks: Vec<Bytes>,
    len: u64,
    end: End,
    /// Workers (bit i: worker i) with a reader waiting for a change.
    waiting: u64,
    /// Readers attached (for the per-object bound).
    readers: usize,
}

pub struct Object {
    pub id: u64,
    pub key: LiveKey,
    /// The copy this one replaces, for `stale-if-error`, until this one
    /// is whole (then it is dropped, so copies never chain).
    stale: Mutex<Option<Arc<Object>>>,
    state: Mutex<State>,
}

/// Where a reader is in the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    chunk: usize,
    offset: usize,
    /// Body bytes taken so far.
    pub pos: u64,
}

/// What a reader finds after its cursor.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Body bytes; the cursor has moved past them.
    Data(Bytes),
    /// Nothing new yet; its worker will be woken on the next change.
    Wait,
    /// The whole body has been taken.
    End,
    /// The fetch failed before the body was complete.
    Failed,
}

/// The head, once known, or how the fetch ended without one.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadState {
    Known(Arc<Head>),
    Wait,
    Failed,
}

impl Object {
    pub fn new(id: u64, key: LiveKey, stale: Option<Arc<Object>>) -> Self {
        Object {
            id,
            key,
            stale: Mutex::new(stale),
            state: Mutex::new(State {
                head: None,
                chunks: Vec::new(),
                len: 0,
                end: End::Open,
                waiting: 0,
                readers: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-changed: every
        // change below is one assignment or push.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The copy this one replaces, while it is kept.
    pub fn stale(&self) -> Option<Arc<Object>> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Drops the copy this one replaced.
    pub fn drop_stale(&self) {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The head, or `Wait` after registering worker `me` to be woken.
    pub fn head(&self, me: usize) -> HeadState {
        let mut s = self.lock();
        match (&s.head, s.end) {
            (Some(h), _) => HeadState::Known(h.clone()),
            (None, End::Open) => {
                s.waiting |= 1 << me;
                HeadState::Wait
            }
            (None, _) => HeadState::Failed,
        }
    }

    /// The next bytes after `cur`, or `Wait` after registering worker `me`.
    pub fn next(&self, cur: &mut Cursor, me: usize) -> Next {
        let mut s = self.lock();
        while let Some(chunk) = s.chunks.get(cur.chunk) {
            if cur.offset < chunk.len() {
                let data = chunk.slice(cur.offset..);
                cur.chunk += 1;
                cur.offset = 0;
                cur.pos += data.len() as u64;
                return Next::Data(data);
            }
            cur.chunk += 1;
            cur.offset = 0;
        }
        match s.end {
            End::Open => {
                s.waiting |= 1 << me;
                Next::Wait
            }
            End::Complete => Next::End,
            End::Failed => Next::Failed,
        }
    }

    /// The whole body, if it is complete (for playlists).
    pub fn whole(&self) -> Option<Vec<u8>> {
        let s = self.lock();
        (s.end == End::Complete).then(|| s.chunks.iter().flat_map(|c| c.iter().copied()).collect())
    }

    pub fn body_len(&self) -> u64 {
        self.lock().len
    }

    pub fn is_complete(&self) -> bool {
        self.lock().end == End::Complete
    }

    pub fn is_open(&self) -> bool {
        self.lock().end == End::Open
    }

    /// A reader attaches; false when `max` readers already are.
    pub fn attach(&self, max: usize) -> bool {
        let mut s = self.lock();
        if s.readers >= max {
            return false;
        }
        s.readers += 1;
        true
    }

    pub fn detach(&self) {
        let mut s = self.lock();
        s.readers = s.readers.saturating_sub(1);
    }

    /// Upstream's head arrived. Returns the workers to wake.
    pub fn set_head(&self, head: Head) -> u64 {
        let mut s = self.lock();
        s.head = Some(Arc::new(head));
        std::mem::take(&mut s.waiting)
    }

    /// Body bytes arrived. Returns the workers to wake.
    pub fn push(&self, data: Bytes) -> u64 {
        let mut s = self.lock();
        s.len += data.len() as u64;
        s.chunks.push(data);
        std::mem::take(&mut s.waiting)
    }

    /// The body is whole. Returns the workers to wake.
    pub fn complete(&self) -> u64 {
        let mut s = self.lock();
        if s.end == End::Open {
            s.end = End::Complete;
        }
        std::mem::take(&mut s.waiting)
    }

    /// The fetch failed. Returns the workers to wake.
    pub fn fail(&self) -> u64 {
        let mut s = self.lock();
        if s.end == End::Open {
            s.end = End::Failed;
        }
        std::mem::take(&mut s.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ContentPath;

    pub fn object(path: &str) -> Object {
        let key = LiveKey::new(&ContentPath::parse(path.as_bytes()).unwrap(), b"").unwrap();
        Object::new(1, key, None)
    }

    fn head() -> Head {
        Head {
            status: 200,
            content_type: "video/iso.segment".into(),
            length: None,
            cache_control: None,
            upstream_token: "t".into(),
        }
    }

    #[test]
    fn readers_follow_the_fetch_and_are_woken() {
        let o = object("/l/e/v/1.m4s");
        assert_eq!(o.head(3), HeadState::Wait);
        assert_eq!(o.set_head(head()), 1 << 3);
        let mut a = Cursor::default();
        assert_eq!(o.next(&mut a, 0), Next::Wait);
        assert_eq!(o.push(Bytes::from_static(b"abc")), 1);
        // Nobody waits any more: the set was cleared.
        assert_eq!(o.push(Bytes::from_static(b"de")), 0);
        assert_eq!(o.next(&mut a, 0), Next::Data(Bytes::from_static(b"abc")));
        let mut b = Cursor::default();
        assert_eq!(o.next(&mut b, 1), Next::Data(Bytes::from_static(b"abc")));
        assert_eq!(o.next(&mut a, 0), Next::Data(Bytes::from_static(b"de")));
        assert_eq!(a.pos, 5);
        assert_eq!(o.next(&mut a, 0), Next::Wait);
        assert_eq!(o.next(&mut b, 1), Next::Data(Bytes::from_static(b"de")));
        assert_eq!(o.next(&mut b, 1), Next::Wait);
        assert_eq!(o.whole(), None);
        assert_eq!(o.complete(), 0b11);
        assert_eq!(o.next(&mut a, 0), Next::End);
        assert_eq!(o.whole().unwrap(), b"abcde");
    }

    #[test]
    fn a_failed_fetch_is_never_complete() {
        let o = object("/l/e/v/1.m4s");
        o.set_head(head());
        o.push(Bytes::from_static(b"abc"));
        let mut a = Cursor::default();
        assert!(matches!(o.next(&mut a, 0), Next::Data(_)));
        assert_eq!(o.next(&mut a, 0), Next::Wait);
        assert_eq!(o.fail(), 1);
        assert_eq!(o.complete(), 0);
        assert_eq!(o.next(&mut a, 0), Next::Failed);
        assert_eq!(o.whole(), None);
        let o = object("/l/e/v/2.m4s");
        o.fail();
        assert_eq!(o.head(0), HeadState::Failed);
    }

    #[test]
    fn readers_are_bounded() {
        let o = object("/l/e/v/1.m4s");
        assert!(o.attach(2) && o.attach(2));
        assert!(!o.attach(2));
        o.detach();
        assert!(o.attach(2));
    }
}
