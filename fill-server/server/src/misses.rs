//! Why the bytes came from the origin. Every steering answer for a title
//! (`/v1/steer`, a `/v1/play` master or MPD) that puts the origin first
//! records its reason, and each reason has its own fix:
//!
//! - `no_prefix`: the client is in no ISP's prefixes (import more).
//! - `no_box`: its ISP has no box (rack one).
//! - `not_filled`: no box of its ISP holds the title (fill more, or
//!   earlier: look at the predictions).
//! - `lost_title`: a box of its ISP holds it, by its inventory, but failed
//!   its viewers' requests for it (its disk lost it): refill it.
//! - `boxes_down`: boxes hold it but none can serve now (failed, failing
//!   their viewers, silent).
//! - `fallback`: origin bytes no recent miss explains: players that left
//!   a box that failed them mid-play (the boxes' failed answers say which),
//!   or a replica other than the one that steered them.
//!
//! An answer that puts a box first but not the one that would lead by load
//! alone is a *detour*, with its reason: the better box is `demoted` (its
//! viewers rebuffer), `box_failing` (its answers fail) or `lost_title`.
//! Detours count sessions only (the bytes came from a box); they are rows
//! of source `box` with a reason.
//!
//! Bytes: the origin engine counts its viewer bytes per title (boxes'
//! fills are not counted); every `SAMPLE_EVERY` this replica reads the
//! difference and shares each title's bytes among the reasons (and ISPs)
//! of that title's recent misses, in proportion to their sessions decayed
//! over `MEMORY_SECS` (a playback goes on fetching long after its steering
//! answer). The rows go to the store's `egress` table, which the misses
//! and costs reports read.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use nearcast_appliance::server::ViewerBytes;
use nearcast_common::Name;
use serde::Serialize;

use crate::steer::View;
use crate::store::{EgressRow, Source};

/// How often origin bytes are sampled and attributed.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a miss keeps drawing its share of its title's origin bytes
/// (the e-folding time of its weight).
pub const MEMORY_SECS: f64 = 600.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NoPrefix,
    NoBox,
    NotFilled,
    LostTitle,
    BoxesDown,
    Fallback,
    Demoted,
    BoxFailing,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::NoPrefix,
        Reason::NoBox,
        Reason::NotFilled,
        Reason::LostTitle,
        Reason::BoxesDown,
        Reason::Fallback,
        Reason::Demoted,
        Reason::BoxFailing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::NoPrefix => "no_prefix",
            Reason::NoBox => "no_box",
            Reason::NotFilled => "not_filled",
            Reason::LostTitle => "lost_title",
            Reason::BoxesDown => "boxes_down",
            Reason::Fallback => "fallback",
            Reason::Demoted => "demoted",
            Reason::BoxFailing => "box_failing",
        }
    }
}

/// Why steering sends a client at `ip` to the origin for `title`, and its
/// ISP; `None` when a box can serve it.
pub fn reason(view: &View, ip: IpAddr, title: &str, now: u64) -> Option<(Reason, String)> {
    let (isp, boxes) = view.candidates(ip, title, now, 1);
    if !boxes.is_empty() {
        return None;
    }
    let Some(isp) = isp else {
        return Some((Reason::NoPrefix, String::new()));
    };
    let why = match view.isp_holdings(isp, title) {
        (0, _) => Reason::NoBox,
        (_, 0) => Reason::NotFilled,
        _ if view.lost_by_a_holder(isp, title, now) => Reason::LostTitle,
        _ => Reason::BoxesDown,
    };
    Some((why, isp.to_string()))
}

/// Records why the answer steering gives a client at `ip` for `title`
/// puts the origin first, if it does.
pub fn note(ledger: &Ledger, view: &View, ip: IpAddr, title: &str, now: u64) {
    if let (Some((why, isp)), Ok(title)) = (reason(view, ip, title, now), Name::new(title)) {
        ledger.miss(why, &isp, &title);
    }
}

/// Why steering's first box for a client at `ip`, `first`, is not the box
/// of its ISP that would lead by load alone, and the ISP; `None` when it is.
pub fn detour(view: &View, ip: IpAddr, title: &str, first: &str, now: u64) -> Option<(Reason, String)> {
    let (isp, _) = view.candidates(ip, title, now, 1);
    let isp = isp?;
    let best = view.best_by_load(isp, title, now)?;
    if best.id == first {
        return None;
    }
    let why = if best.quality.lost(title, now) {
        Reason::LostTitle
    } else if best.quality.failing(now) {
        Reason::BoxFailing
    } else if best.quality.demoted {
        Reason::Demoted
    } else {
        return None; // an equal box, or the player's own (stickiness)
    };
    Some((why, isp.to_string()))
}

/// Records the detour of an answer whose first box is `first`, if it is one.
pub fn note_detour(ledger: &Ledger, view: &View, ip: IpAddr, title: &str, first: &str, now: u64) {
    if let (Some((why, isp)), Ok(title)) = (detour(view, ip, title, first, now), Name::new(title)) {
        let mut book = ledger.book.lock().unwrap_or_else(|p| p.into_inner());
        *book.detours.entry((why, isp, title)).or_default() += 1;
    }
}

type Key = (Reason, String);

#[derive(Default)]
struct Book {
    /// Title → (reason, ISP) → sessions since the last sample.
    fresh: HashMap<Name, HashMap<Key, u64>>,
    /// Title → (reason, ISP) → decayed sessions (the attribution weights).
    weights: HashMap<Name, HashMap<Key, f64>>,
    /// The origin's viewer bytes per title at the last sample.
    last: BTreeMap<Name, u64>,
    /// (reason, ISP, title) → detours since the last sample.
    detours: HashMap<(Reason, String, Name), u64>,
}

/// This replica's misses, waiting for the next sample.
#[derive(Default)]
pub struct Ledger {
    book: Mutex<Book>,
    /// Since start, for Prometheus: sessions and attributed bytes by reason.
    pub totals: Mutex<BTreeMap<Reason, (u64, u64)>>,
    /// The origin engine this replica runs, once it is started.
    origin: Mutex<Option<ViewerBytes>>,
}

impl Ledger {
    /// Attributes the bytes `origin` serves to viewers from now on.
    pub fn watch(&self, origin: ViewerBytes) {
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = Some(origin);
    }

    fn origin(&self) -> Option<ViewerBytes> {
        self.origin.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A steering answer sent a client of `isp` to the origin for `title`.
    pub fn miss(&self, reason: Reason, isp: &str, title: &Name) {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        *book
            .fresh
            .entry(title.clone())
            .or_default()
            .entry((reason, isp.to_string()))
            .or_default() += 1;
    }

    /// The rows of one sample: `served` is the origin's viewer bytes per
    /// title now (totals since it started), `secs` the time since the last
    /// sample, `day` today.
    pub fn sample(&self, served: BTreeMap<Name, u64>, secs: f64, day: i64) -> Vec<EgressRow> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let decay = (-secs / MEMORY_SECS).exp();
        let book = &mut *book;
        for per_title in book.weights.values_mut() {
            per_title.values_mut().for_each(|w| *w *= decay);
            per_title.retain(|_, w| *w > 0.01);
        }
        let mut rows = Vec::new();
        for (title, fresh) in book.fresh.drain() {
            let weights = book.weights.entry(title.clone()).or_default();
            for (key, n) in fresh {
                *weights.entry(key.clone()).or_default() += n as f64;
                rows.push(row(day, &key, &title, n, 0));
            }
        }
        book.weights.retain(|_, w| !w.is_empty());
        for ((why, isp, title), n) in book.detours.drain() {
            rows.push(EgressRow {
                source: Source::Box,
                ..row(day, &(why, isp), &title, n, 0)
            });
        }
        for (title, &now) in &served {
            let before = book.last.get(title).copied().unwrap_or(0);
            let bytes = if now >= before { now - before } else { now };
            if bytes > 0 {
                rows.extend(share(bytes, title, book.weights.get(title), day));
            }
        }
        book.last = served;
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        for r in &rows {
            if let Some(reason) = Reason::ALL.into_iter().find(|x| x.name() == r.reason) {
                let t = totals.entry(reason).or_default();
                t.0 += r.sessions;
                t.1 += r.bytes;
            }
        }
        rows
    }
}

fn row(day: i64, (reason, isp): &Key, title: &Name, sessions: u64, bytes: u64) -> EgressRow {
    EgressRow {
        day,
        isp: isp.clone(),
        title: title.to_string(),
        source: Source::Origin,
        reason: reason.name().to_string(),
        sessions,
        bytes,
    }
}

/// `bytes` of `title` shared by `weights` (the remainder to the heaviest);
/// all `fallback` without any.
fn share(bytes: u64, title: &Name, weights: Option<&HashMap<Key, f64>>, day: i64) -> Vec<EgressRow> {
    let mut keys: Vec<(&Key, f64)> = weights.into_iter().flatten().map(|(k, w)| (k, *w)).collect();
    if keys.is_empty() {
        return vec![row(day, &(Reason::Fallback, String::new()), title, 0, bytes)];
    }
    keys.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let total: f64 = keys.iter().map(|(_, w)| w).sum();
    let mut parts: Vec<u64> = keys.iter().map(|(_, w)| (bytes as f64 * w / total) as u64).collect();
    parts[0] += bytes - parts.iter().sum::<u64>().min(bytes);
    keys.iter()
        .zip(parts)
        .filter(|(_, b)| *b > 0)
        .map(|((k, _), b)| row(day, k, title, 0, b))
        .collect()
}

/// Every `SAMPLE_EVERY`, on a thread of its own, attributes the origin's
/// new viewer bytes (`Ledger::sample`; none until `Ledger::watch`) and
/// stores the rows with the misses' sessions; it ends with the app.
pub fn spawn(app: &std::sync::Arc<crate::app::App>) -> std::io::Result<()> {
    let weak = std::sync::Arc::downgrade(app);
    std::thread::Builder::new()
        .name("nearcast-egress".into())
        .spawn(move || {
            let mut last = std::time::Instant::now();
            loop {
                std::thread::sleep(SAMPLE_EVERY);
                let Some(app) = weak.upgrade() else {
                    return;
                };
                let secs = last.elapsed().as_secs_f64();
                last = std::time::Instant::now();
                let day = crate::store::day_of(nearcast_common::unix_now());
                let served = app.misses.origin().map(|o| o.by_title()).unwrap_or_default();
                let rows = app.misses.sample(served, secs, day);
                if let Err(e) = app.store.add_egress(&rows) {
                    tracing::warn!(error = %e, rows = rows.len(), "origin egress not stored");
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests;
