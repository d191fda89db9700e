//! Concurrent streams per subject. A stream (a play session's id, or a
//! bearer entitlement's) counts from its first license while it renews
//! within its lease: every license, key or renewal call of the stream
//! moves its lease on. A new stream over the subject's limit is refused;
//! one whose lease ran out frees its place by itself.
//!
//! Memory is bounded: at most `MAX_STREAMS_PER_SUBJECT` per subject (the
//! limit a token may ask for is capped there) and expired leases are
//! swept as the table is used.
//!
//! Replicas share their leases: each admission that is new, or that moved
//! its lease on by half a lease since it was last shared, waits in an
//! outbox (`take_shared`) for the server to pass to the other replicas,
//! which `apply` it. A stream therefore counts on every replica within
//! about a second; two replicas admitting one subject's streams in that
//! second may both let one through.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A lease as replicas share it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub sub: String,
    pub id: String,
    pub until: u64,
}

/// Shared leases waiting at most this many (more are not shared).
const MAX_OUTBOX: usize = 100_000;

/// One held lease: its id, when it ends, and the end last shared.
#[derive(Debug)]
struct Held {
    id: String,
    end: u64,
    shared: u64,
}

/// The most streams one subject holds, whatever its entitlement says.
pub const MAX_STREAMS_PER_SUBJECT: usize = 64;
/// The table is swept of expired leases at most this often (seconds).
const SWEEP_EVERY_SECS: u64 = 10;

#[derive(Default)]
pub struct Streams {
    /// Subject → its leases.
    by_subject: HashMap<String, Vec<Held>>,
    swept_at: u64,
    outbox: Vec<Lease>,
}

impl Streams {
    /// Counts `stream` of `sub` as playing until `now + lease`; false
    /// (and nothing changed) when it is new and the subject already
    /// plays `max` (or the cap) others.
    pub fn admit(&mut self, sub: &str, stream: &str, max: Option<u32>, now: u64, lease: u64) -> bool {
        self.sweep(now);
        let streams = self.by_subject.entry(sub.to_string()).or_default();
        streams.retain(|h| h.end > now);
        let end = now + lease;
        let held = match streams.iter().position(|h| h.id == stream) {
            Some(i) => &mut streams[i],
            None => {
                let cap = max.map_or(MAX_STREAMS_PER_SUBJECT, |m| (m as usize).min(MAX_STREAMS_PER_SUBJECT));
                if streams.len() >= cap {
                    return false;
                }
                streams.push(Held {
                    id: stream.to_string(),
                    end,
                    shared: 0,
                });
                streams.last_mut().expect("just pushed")
            }
        };
        held.end = held.end.max(end);
        if held.end >= held.shared + lease / 2 && self.outbox.len() < MAX_OUTBOX {
            held.shared = held.end;
            self.outbox.push(Lease {
                sub: sub.to_string(),
                id: stream.to_string(),
                until: held.end,
            });
        }
        true
    }

    fn sweep(&mut self, now: u64) {
        if now >= self.swept_at + SWEEP_EVERY_SECS {
            self.by_subject.retain(|_, v| {
                v.retain(|h| h.end > now);
                !v.is_empty()
            });
            self.swept_at = now;
        }
    }

    /// A lease another replica admitted (kept up to the per-subject cap;
    /// not shared again).
    pub fn apply(&mut self, l: &Lease) {
        let streams = self.by_subject.entry(l.sub.clone()).or_default();
        if let Some(h) = streams.iter_mut().find(|h| h.id == l.id) {
            h.end = h.end.max(l.until);
            h.shared = h.shared.max(l.until);
        } else if streams.len() < MAX_STREAMS_PER_SUBJECT {
            streams.push(Held {
                id: l.id.clone(),
                end: l.until,
                shared: l.until,
            });
        }
    }

    /// The leases to share since the last call.
    pub fn take_shared(&mut self) -> Vec<Lease> {
        std::mem::take(&mut self.outbox)
    }

    /// Streams of `sub` playing at `now`.
    pub fn playing(&self, sub: &str, now: u64) -> usize {
        self.by_subject
            .get(sub)
            .map_or(0, |v| v.iter().filter(|h| h.end > now).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_while_leases_renew_and_frees_when_they_lapse() {
        let mut s = Streams::default();
        assert!(s.admit("alice", "a", Some(2), 100, 60));
        assert!(s.admit("alice", "b", Some(2), 100, 60));
        assert!(!s.admit("alice", "c", Some(2), 110, 60), "a third stream");
        assert!(s.admit("bob", "c", Some(2), 110, 60), "another subject");
        // a renews, b lapses: c takes b's place.
        assert!(s.admit("alice", "a", Some(2), 150, 60));
        assert!(!s.admit("alice", "c", Some(2), 159, 60));
        assert!(s.admit("alice", "c", Some(2), 161, 60));
        assert_eq!(s.playing("alice", 161), 2);
        // No limit still stops at the cap.
        for i in 0..MAX_STREAMS_PER_SUBJECT {
            assert!(s.admit("carol", &i.to_string(), None, 200, 60));
        }
        assert!(!s.admit("carol", "one more", None, 200, 60));
        assert!(!s.admit("dave", "x", Some(0), 200, 60), "a limit of 0 plays nothing");
        // Another replica's leases count here; what was admitted here is
        // shared once, renewals again only after half a lease.
        let mut other = Streams::default();
        assert!(other.admit("frank", "f1", Some(1), 100, 60));
        assert!(other.admit("frank", "f1", Some(1), 110, 60));
        let shared = other.take_shared();
        assert_eq!(
            shared,
            vec![Lease {
                sub: "frank".into(),
                id: "f1".into(),
                until: 160
            }]
        );
        for l in &shared {
            s.apply(l);
        }
        assert!(
            !s.admit("frank", "f2", Some(1), 120, 60),
            "f1 plays on the other replica"
        );
        assert!(other.admit("frank", "f1", Some(1), 131, 60));
        assert_eq!(other.take_shared().len(), 1, "renewed by half a lease: shared again");
        assert!(
            s.take_shared().iter().all(|l| l.sub != "frank"),
            "applied leases are not shared back"
        );
        // Sweeping drops whole subjects whose leases all ran out.
        s.admit("erin", "x", None, 1000, 60);
        assert_eq!(s.by_subject.len(), 1);
    }
}
