//! The box's live objects, shared by its workers: one entry per key, at
//! most `cap` bytes in all (bodies plus a fixed cost per entry, so many
//! small answers cannot grow it either), least recently used first out.
//!
//! A lookup either finds a fresh object (a hit, possibly still being
//! filled: the caller then joins that fetch, which is what collapses
//! requests) or creates the object the caller must fetch. Entries being
//! filled are never evicted; an object that cannot be charged for its
//! next bytes because everything else is being filled fails instead.
//! Expiry comes from the fetch when it ends (`finish`); an expired
//! playlist is kept as the stale copy of its replacement for
//! `stale-if-error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::key::{Kind, LiveKey};
use super::object::Object;

/// Bytes an entry costs besides its key and body.
const ENTRY_COST: u64 = 256;
/// After a refresh failed, the stale copy is answered this long before
/// the next try upstream.
const STALE_RETRY: Duration = Duration::from_secs(1);

struct Entry {
    obj: Arc<Object>,
    bytes: u64,
    /// `None` while the fetch runs.
    expires: Option<Instant>,
    /// A playlist may be answered stale until then.
    stale_until: Option<Instant>,
    /// Answered as a stale copy (a refresh failed).
    stale: bool,
}

/// What a lookup found.
pub enum Lookup {
    /// A fresh object (complete or being filled); `stale` when it is a
    /// copy kept because its refresh failed.
    Hit { obj: Arc<Object>, stale: bool },
    /// A new object: the caller fetches it.
    Fetch(Arc<Object>),
    /// No room even for the entry (everything held is being filled).
    Full,
}

pub struct LiveCache {
    map: LruCache<Box<str>, Entry>,
    bytes: u64,
    cap: u64,
    next_id: u64,
}

impl LiveCache {
    pub fn new(cap: u64) -> Self {
        LiveCache {
            map: LruCache::unbounded(),
            bytes: 0,
            cap,
            next_id: 1,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn entries(&self) -> usize {
        self.map.len()
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// A new cap (the agent resizes it); shrinking evicts at once.
    pub fn set_cap(&mut self, cap: u64) {
        self.cap = cap;
        self.evict_to(cap);
    }

    pub fn lookup(&mut self, key: &LiveKey, now: Instant) -> Lookup {
        let mut stale = None;
        if let Some(e) = self.map.get(key.as_str()) {
            match e.expires {
                None => {
                    return Lookup::Hit {
                        obj: e.obj.clone(),
                        stale: false,
                    }
                }
                Some(t) if t > now => {
                    return Lookup::Hit {
                        obj: e.obj.clone(),
                        stale: e.stale,
                    }
                }
                Some(_) => {
                    if e.stale_until.is_some_and(|t| t > now) && e.obj.is_complete() {
                        stale = Some((e.obj.clone(), e.stale_until));
                    }
                }
            }
            self.remove(key.as_str());
        }
        let bytes = ENTRY_COST + key.overhead();
        self.evict_to(self.cap.saturating_sub(bytes));
        if self.bytes + bytes > self.cap {
            return Lookup::Full;
        }
        let id = self.next_id;
        self.next_id += 1;
        let (stale_obj, stale_until) = match stale {
            Some((o, t)) => (Some(o), t),
            None => (None, None),
        };
        let obj = Arc::new(Object::new(id, key.clone(), stale_obj));
        self.bytes += bytes;
        self.map.put(
            key.as_str().into(),
            Entry {
                obj: obj.clone(),
                bytes,
                expires: None,
                stale_until,
                stale: false,
            },
        );
        Lookup::Fetch(obj)
    }

    /// Charges `n` more body bytes to `obj`, evicting others to make room.
    /// False when they do not fit (everything else is being filled): the
    /// fetch must fail.
    pub fn charge(&mut self, obj: &Object, n: u64) -> bool {
        if !self.is_current(obj) {
            // Evicted or replaced: nothing is charged, the fetch goes on
            // for the readers it has.
            return true;
        }
        self.evict_to(self.cap.saturating_sub(n));
        if self.bytes + n > self.cap {
            return false;
        }
        self.bytes += n;
        if let Some(e) = self.map.peek_mut(obj.key.as_str()) {
            e.bytes += n;
        }
        true
    }

    /// The fetch of `obj` ended with an answer, fresh for `ttl`; a
    /// playlist may then be answered stale for `stale` more.
    pub fn finish(&mut self, obj: &Object, ttl: Duration, stale: Duration, now: Instant) {
        if !self.is_current(obj) {
            return;
        }
        // A whole answer needs no fallback; dropping it keeps copies from
        // chaining back through every version of a playlist.
        obj.drop_stale();
        if let Some(e) = self.map.peek_mut(obj.key.as_str()) {
            e.expires = Some(now + ttl);
            e.stale_until = (obj.key.kind() == Kind::Playlist).then_some(now + ttl + stale);
        }
    }

    /// The fetch of `obj` failed. Its entry goes; if it replaced a copy
    /// still within its stale time, that copy is answered for a moment
    /// (returned: the caller answers its readers with it).
    pub fn failed(&mut self, obj: &Object, now: Instant) -> Option<Arc<Object>> {
        if !self.is_current(obj) {
            return None;
        }
        let until = self.map.peek(obj.key.as_str()).and_then(|e| e.stale_until);
        self.remove(obj.key.as_str());
        let old = obj.stale().filter(|_| until.is_some_and(|t| t > now))?;
        let bytes = ENTRY_COST + old.key.overhead() + old.body_len();
        self.evict_to(self.cap.saturating_sub(bytes));
        if self.bytes + bytes > self.cap {
            return Some(old);
        }
        self.bytes += bytes;
        self.map.put(
            old.key.as_str().into(),
            Entry {
                obj: old.clone(),
                bytes,
                expires: Some(now + STALE_RETRY),
                stale_until: until,
                stale: true,
            },
        );
        Some(old)
    }

    fn is_current(&self, obj: &Object) -> bool {
        self.map.peek(obj.key.as_str()).is_some_and(|e| e.obj.id == obj.id)
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.pop(key) {
            self.bytes -= e.bytes;
        }
    }

    /// Evicts least recently used entries that are not being filled until
    /// at most `target` bytes are held (or only filling entries are left).
    fn evict_to(&mut self, target: u64) {
        if self.bytes <= target {
            return;
        }
        let victims: Vec<Box<str>> = self
            .map
            .iter()
            .rev()
            .filter(|(_, e)| e.expires.is_some())
            .scan(self.bytes, |held, (k, e)| {
                (*held > target).then(|| {
                    *held -= e.bytes;
                    k.clone()
                })
            })
            .collect();
        for k in victims {
            self.remove(&k);
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
