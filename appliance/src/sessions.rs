//! Player sessions as the box sees them through CMCD (CTA-5004): each
//! content request's report (the `CMCD=` argument or the `CMCD-*`
//! headers) is read without allocating and tallied per session (`sid`) in
//! a bounded per-worker table; every tick the worker hands its tallies to
//! the shared [`Book`], which keeps each session's totals for the agent
//! (`/status`) and forgets sessions idle for `IDLE`. A malformed or absent
//! report changes nothing: the request is served the same either way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nearcast_common::cmcd::{Cmcd, ObjectType, MAX_LEN};
use nearcast_common::playback::SessionStats;
use nearcast_common::query;

use crate::http::Request;

/// Sessions one worker tallies between two ticks; more are not counted
/// until the next tick.
pub const WORKER_MAX: usize = 4_096;
/// Sessions the shared book keeps.
pub const BOOK_MAX: usize = 20_000;
/// A session not heard from for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(120);

/// What one request's report adds to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// A media object (audio, video or muxed; or, without `ot`, one with
    /// an encoded bitrate).
    pub media: bool,
    /// The buffer ran dry before it (`bs`).
    pub starved: bool,
    /// Its encoded bitrate (`br`).
    pub bitrate_kbps: Option<u32>,
}

/// Reads the request's CMCD: the `CMCD` query argument if there is one,
/// else the four headers together. `None` when there is none, it names no
/// session, or any part is malformed.
pub fn read<'a>(req: &Request<'a>, buf: &'a mut [u8; MAX_LEN]) -> Option<Cmcd<'a>> {
    let c = match query::param(req.query, "CMCD", buf) {
        Some(text) => Cmcd::parse(text).ok()?,
        None => {
            let mut c = Cmcd::default();
            for h in req.cmcd.iter().flatten() {
                c.merge(std::str::from_utf8(h).ok()?).ok()?;
            }
            c
        }
    };
    c.session.filter(|s| SessionStats::valid_sid(s))?;
    Some(c)
}

/// One session's tally since the worker's last tick.
#[derive(Debug, Clone)]
pub struct Tally {
    pub title: Box<str>,
    pub cmcd_last: Last,
    pub media: u64,
    pub starved: u64,
    pub bitrate_sum: u64,
    pub bitrate_samples: u64,
    /// When this worker first saw it in this tally.
    pub first_at: Instant,
    /// When it last did (whose report `cmcd_last` is).
    pub last_at: Instant,
    /// Its first media request without `su`, in this tally.
    pub playing_at: Option<Instant>,
}

/// The last values a session reported.
#[derive(Debug, Clone, Default)]
pub struct Last {
    pub content_id: Option<Box<str>>,
    pub bitrate_kbps: Option<u32>,
    pub buffer_ms: Option<u32>,
    pub measured_kbps: Option<u32>,
    pub requested_kbps: Option<u32>,
}

/// One worker's tallies; the hot path allocates only for a session new
/// to this tick.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<Box<str>, Tally>,
}

impl Sessions {
    /// Tallies one request for `title`; `None` when the report names no
    /// session or the table is full.
    pub fn observe(&mut self, c: &Cmcd<'_>, title: &str, now: Instant) -> Option<Seen> {
        let sid = c.session?;
        let media = match c.object {
            Some(ObjectType::Audio | ObjectType::Video | ObjectType::Muxed) => true,
            Some(_) => false,
            None => c.bitrate_kbps.is_some(),
        };
        if !self.map.contains_key(sid) {
            if self.map.len() >= WORKER_MAX {
                return None;
            }
            self.map.insert(sid.into(), Tally::new(title, now));
        }
        let t = self.map.get_mut(sid)?;
        t.last_at = now;
        let last = &mut t.cmcd_last;
        if let Some(cid) = c.content {
            if last.content_id.as_deref() != Some(cid) {
                last.content_id = Some(cid.into());
            }
        }
        last.buffer_ms = c.buffer_ms.or(last.buffer_ms);
        last.measured_kbps = c.measured_kbps.or(last.measured_kbps);
        last.requested_kbps = c.requested_kbps.or(last.requested_kbps);
        if media {
            t.media += 1;
            t.starved += u64::from(c.starved);
            if let Some(br) = c.bitrate_kbps {
                last.bitrate_kbps = Some(br);
                t.bitrate_sum += u64::from(br);
                t.bitrate_samples += 1;
            }
            if !c.startup && t.playing_at.is_none() {
                t.playing_at = Some(now);
            }
        }
        Some(Seen {
            media,
            starved: media && c.starved,
            bitrate_kbps: c.bitrate_kbps.filter(|_| media),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The tallies since the last call, for the book.
    pub fn drain(&mut self) -> impl Iterator<Item = (Box<str>, Tally)> + '_ {
        self.map.drain()
    }
}

impl Tally {
    fn new(title: &str, now: Instant) -> Tally {
        Tally {
            title: title.into(),
            cmcd_last: Last::default(),
            media: 0,
            starved: 0,
            bitrate_sum: 0,
            bitrate_samples: 0,
            first_at: now,
            last_at: now,
            playing_at: None,
        }
    }
}

struct Entry {
    stats: SessionStats,
    first_at: Instant,
    /// When the book last heard of it (for forgetting idle sessions).
    last_at: Instant,
    /// The time of the report its last values are from: a session's
    /// requests may reach several workers, whose ticks come in any order.
    reported_at: Instant,
}

/// Every worker's sessions, with their totals since first seen.
#[derive(Default)]
pub struct Book {
    map: HashMap<String, Entry>,
    /// When a full book was last swept for idle sessions: a full book of
    /// active ones is swept at most once a second, not for every newcomer.
    swept: Option<Instant>,
}

impl Book {
    /// Adds one worker's tally of session `sid`.
    pub fn add(&mut self, sid: &str, t: Tally, now: Instant) {
        if !self.map.contains_key(sid) && !self.make_room(now) {
            return;
        }
        let e = self.map.entry(sid.to_string()).or_insert_with(|| Entry {
            stats: SessionStats {
                sid: sid.to_string(),
                ..SessionStats::default()
            },
            first_at: t.first_at,
            last_at: now,
            reported_at: t.last_at,
        });
        e.first_at = e.first_at.min(t.first_at);
        e.last_at = now;
        let newer = t.last_at >= e.reported_at;
        e.reported_at = e.reported_at.max(t.last_at);
        let s = &mut e.stats;
        if s.title.is_none() {
            // Titles come from paths the request parser let through.
            s.title = nearcast_common::Name::new(&*t.title).ok();
        }
        // The newer report's values win; the older one only fills gaps.
        let pick = |mine: Option<u32>, theirs: Option<u32>| match newer {
            true => theirs.or(mine),
            false => mine.or(theirs),
        };
        let last = t.cmcd_last;
        s.bitrate_kbps = pick(Some(s.bitrate_kbps).filter(|&b| b > 0), last.bitrate_kbps).unwrap_or(0);
        s.buffer_ms = pick(s.buffer_ms, last.buffer_ms);
        s.measured_kbps = pick(s.measured_kbps, last.measured_kbps);
        s.requested_kbps = pick(s.requested_kbps, last.requested_kbps);
        let cid = last.content_id.map(String::from);
        s.content_id = match newer {
            true => cid.or(s.content_id.take()),
            false => s.content_id.take().or(cid),
        };
        s.media_requests += t.media;
        s.starved += t.starved;
        s.bitrate_sum_kbps += t.bitrate_sum;
        s.bitrate_samples += t.bitrate_samples;
        if let (None, Some(at)) = (s.startup_ms, t.playing_at) {
            let ms = at.saturating_duration_since(e.first_at).as_millis();
            s.startup_ms = Some(ms.min(u128::from(u32::MAX)) as u32);
        }
    }

    /// Whether a new session fits: idle ones are forgotten first.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.map.len() < BOOK_MAX {
            return true;
        }
        if self
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.swept = Some(now);
            self.forget_idle(now);
        }
        self.map.len() < BOOK_MAX
    }

    /// Forgets sessions not heard from for `IDLE`.
    pub fn forget_idle(&mut self, now: Instant) {
        self.map.retain(|_, e| now.saturating_duration_since(e.last_at) < IDLE);
    }

    /// Every session's totals, most recently active first.
    pub fn report(&mut self, now: Instant) -> Vec<SessionStats> {
        self.forget_idle(now);
        let mut list: Vec<&Entry> = self.map.values().collect();
        list.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.stats.sid.cmp(&b.stats.sid)));
        list.into_iter().map(|e| e.stats.clone()).collect()
    }

    /// Sessions heard from within `within`.
    pub fn active(&self, now: Instant, within: Duration) -> usize {
        self.map
            .values()
            .filter(|e| now.saturating_duration_since(e.last_at) < within)
            .count()
    }
}

#[cfg(test)]
mod tests;
