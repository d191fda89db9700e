//! Where a player should fetch a title: the client address is matched by
//! longest prefix to an ISP; among that ISP's healthy appliances that hold
//! the title, least loaded first, each answer is a URL signed for the
//! client's prefix; the origin comes last. Answers come from an immutable
//! in-memory `View` that the control plane rebuilds and swaps, so steering
//! never waits on storage.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

mod live;
pub mod quality;

use nearcast_common::control::{Health, Heartbeat};
use nearcast_common::prefix::canonical;
use nearcast_common::{Grant, IpPrefix, Name, PrefixTable, SigningKey, TitlePath, TOKEN_PARAM};
use serde::{Deserialize, Serialize};

/// One appliance as steering sees it.
#[derive(Clone, Debug)]
pub struct Appliance {
    pub id: String,
    pub isp: String,
    pub site: String,
    /// Base URL players use (`https://box1.isp.example:443`).
    pub url: String,
    /// What its disks hold for fill, as registered.
    pub capacity_bytes: u64,
    /// Unix seconds of its last heartbeat.
    pub last_heartbeat: u64,
    /// 0.0 idle … 1.0 saturated, from its heartbeat.
    pub load: f64,
    /// False when the box reports itself or a disk failed.
    pub healthy: bool,
    pub titles: BTreeSet<nearcast_common::Name>,
    /// How it serves its viewers (`quality`).
    pub quality: quality::Quality,
}

impl Appliance {
    /// What steering orders an ISP's boxes by, lowest first: the load,
    /// and one more for a box whose viewers rebuffer (`quality`).
    pub fn rank(&self) -> f64 {
        self.load + self.quality.penalty()
    }
}

/// One heartbeat as steering sees it: what a view patch needs, and what
/// the change log carries to the other replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    pub id: String,
    /// Unix seconds the server received it.
    pub at: u64,
    pub load: f64,
    pub healthy: bool,
    /// What it says of the box's viewers.
    #[serde(default)]
    pub sample: quality::Sample,
}

impl Beat {
    /// A failed disk does not take the box out: its titles leave through
    /// the next inventory, the other disks keep serving. A box that says
    /// it failed does.
    pub fn of(id: &str, hb: &Heartbeat, at: u64) -> Beat {
        Beat {
            id: id.to_string(),
            at,
            load: hb.load,
            healthy: hb.health != Health::Failed,
            sample: hb.playback.as_ref().map(quality::Sample::of).unwrap_or_default(),
        }
    }
}

/// A snapshot steering answers from.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Client prefixes → ISP. Shared between views: rebuilt only when the
    /// ISPs or prefixes change, not on every heartbeat.
    pub prefixes: Arc<PrefixTable<String>>,
    /// Prefixes the appliances learned over BGP → the appliances (ids)
    /// that learned each. Checked before `prefixes`; rebuilt only when an
    /// appliance reports new routes.
    pub bgp: Arc<PrefixTable<Arc<[String]>>>,
    /// Shared with the views patched from it: a heartbeat replaces one.
    pub boxes: Vec<Arc<Appliance>>,
    pub origin_url: String,
    /// A box whose last heartbeat is older than this is not used.
    pub heartbeat_timeout_secs: u64,
    /// Appliances named in one answer at most (before the origin).
    pub max_appliances: usize,
    /// ISP → indexes into `boxes`, least loaded first: built once per view
    /// so an answer never scans or sorts the whole fleet.
    by_isp: HashMap<String, Arc<Vec<usize>>>,
    /// Appliance id → index into `boxes`.
    ids: Arc<HashMap<String, usize>>,
    /// Site → indexes into `boxes` (by id).
    by_site: Arc<HashMap<String, Vec<usize>>>,
    /// ISP → title → the ISP's boxes holding it (indexes into `boxes`):
    /// a title few boxes hold is answered without looking through the
    /// whole ISP. Holdings change with inventories, not heartbeats, so
    /// patched views share it.
    holders: Arc<HashMap<String, HashMap<Name, Vec<usize>>>>,
}

/// An ISP's boxes, best ranked first (ties by id, so the order is stable).
fn by_load(boxes: &[Arc<Appliance>], mut list: Vec<usize>) -> Vec<usize> {
    list.sort_by(|&a, &b| by_rank(&boxes[a], &boxes[b]));
    list
}

/// Best ranked first (`Appliance::rank`), ties by id.
fn by_rank(a: &Appliance, b: &Appliance) -> std::cmp::Ordering {
    a.rank().total_cmp(&b.rank()).then_with(|| a.id.cmp(&b.id))
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// The ISP the client matched, if any.
    pub isp: Option<String>,
    /// Signed URLs, best first; the origin is always last.
    pub urls: Vec<String>,
    /// Unix seconds at which the URLs' tokens expire.
    pub expires: u64,
}

/// Tokens bind to the client's /24 (IPv4) or /48 (IPv6), so a player that
/// moves between addresses of one home network keeps working.
pub fn client_prefix(ip: IpAddr) -> Option<IpPrefix> {
    let ip = canonical(ip);
    let len = if ip.is_ipv4() { 24 } else { 48 };
    IpPrefix::new(ip, len).ok()
}

/// What a token handed to a player at `ip` now grants: `ttl_secs` of use,
/// from the player's prefix. Every URL steering signs uses it.
pub fn grant(ip: IpAddr, now: u64, ttl_secs: u64) -> Grant {
    Grant {
        expires: now + ttl_secs,
        client_prefix: client_prefix(ip),
    }
}

impl View {
    pub fn new(
        prefixes: Arc<PrefixTable<String>>,
        boxes: Vec<Appliance>,
        origin_url: String,
        heartbeat_timeout_secs: u64,
        max_appliances: usize,
    ) -> View {
        let boxes: Vec<Arc<Appliance>> = boxes.into_iter().map(Arc::new).collect();
        let mut lists: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, b) in boxes.iter().enumerate() {
            lists.entry(b.isp.clone()).or_default().push(i);
        }
        let by_isp = lists
            .into_iter()
            .map(|(isp, list)| (isp, Arc::new(by_load(&boxes, list))))
            .collect();
        let ids = Arc::new(boxes.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect());
        let mut by_site: HashMap<String, Vec<usize>> = HashMap::new();
        let mut holders: HashMap<String, HashMap<Name, Vec<usize>>> = HashMap::new();
        for (i, b) in boxes.iter().enumerate() {
            by_site.entry(b.site.clone()).or_default().push(i);
            let titles = holders.entry(b.isp.clone()).or_default();
            for t in &b.titles {
                titles.entry(t.clone()).or_default().push(i);
            }
        }
        View {
            by_site: Arc::new(by_site),
            holders: Arc::new(holders),
            prefixes,
            bgp: Arc::default(),
            boxes,
            origin_url,
            heartbeat_timeout_secs,
            max_appliances,
            by_isp,
            ids,
        }
    }

    /// This view with heartbeats applied: no storage read, and only the
    /// ISPs of the boxes that beat are re-sorted, so a batch costs the same
    /// however large the fleet. `None` if the view knows none of the boxes
    /// (not registered in a site yet).
    pub fn with_heartbeats(&self, beats: &[Beat]) -> Option<View> {
        let mut boxes = self.boxes.clone();
        let mut isps = BTreeSet::new();
        for beat in beats {
            let Some(&i) = self.ids.get(&beat.id) else {
                continue;
            };
            boxes[i] = Arc::new(Appliance {
                last_heartbeat: beat.at,
                load: beat.load,
                healthy: beat.healthy,
                quality: boxes[i]
                    .quality
                    .after(&beat.sample, beat.at, beat.at.saturating_sub(boxes[i].last_heartbeat)),
                ..(*boxes[i]).clone()
            });
            isps.insert(boxes[i].isp.clone());
        }
        if isps.is_empty() {
            return None;
        }
        let mut by_isp = self.by_isp.clone();
        for isp in isps {
            let list = by_isp.get(&isp).map(|l| l.to_vec()).unwrap_or_default();
            let sorted = Arc::new(by_load(&boxes, list));
            by_isp.insert(isp, sorted);
        }
        Some(View {
            prefixes: self.prefixes.clone(),
            bgp: self.bgp.clone(),
            boxes,
            origin_url: self.origin_url.clone(),
            heartbeat_timeout_secs: self.heartbeat_timeout_secs,
            max_appliances: self.max_appliances,
            by_isp,
            ids: self.ids.clone(),
            by_site: self.by_site.clone(),
            holders: self.holders.clone(),
        })
    }

    /// `with_heartbeats` for one box.
    pub fn with_heartbeat(&self, id: &str, at: u64, load: f64, healthy: bool) -> Option<View> {
        let beat = Beat {
            id: id.to_string(),
            at,
            load,
            healthy,
            sample: quality::Sample::default(),
        };
        self.with_heartbeats(std::slice::from_ref(&beat))
    }

    /// This view with each box's `quality` taken from `before` (a rebuild
    /// from the store knows only what the store holds). A title the box
    /// had lost and that is back in its inventory (refilled) is no longer
    /// lost.
    pub fn keep_quality(mut self, before: &View) -> View {
        let mut changed = false;
        for b in self.boxes.iter_mut() {
            let Some(old) = before.get(&b.id).filter(|o| o.quality != b.quality) else {
                continue;
            };
            let mut quality = old.quality.clone();
            quality
                .lost
                .retain(|(t, _)| old.titles.contains(t) || !b.titles.contains(t));
            Arc::make_mut(b).quality = quality;
            changed = true;
        }
        if changed {
            let isps: Vec<String> = self.by_isp.keys().cloned().collect();
            for isp in isps {
                let list = self.by_isp.get(&isp).map(|l| l.to_vec()).unwrap_or_default();
                self.by_isp.insert(isp, Arc::new(by_load(&self.boxes, list)));
            }
        }
        self
    }

    fn usable(&self, b: &Appliance, title: &str, now: u64) -> bool {
        self.alive(b, now) && b.titles.contains(title) && !b.quality.lost(title, now)
    }

    /// How many boxes `isp` has, and how many of them hold `title`
    /// (alive or not).
    pub fn isp_holdings(&self, isp: &str, title: &str) -> (usize, usize) {
        let boxes = self.by_isp.get(isp).map_or(0, |l| l.len());
        let holders = self.holders.get(isp).and_then(|t| t.get(title)).map_or(0, Vec::len);
        (boxes, holders)
    }

    /// The box of `isp` holding `title` that would lead by load alone (the
    /// healthy ones heard from lately, whatever their viewers say).
    pub fn best_by_load(&self, isp: &str, title: &str, now: u64) -> Option<&Appliance> {
        let holders = self.holders.get(isp).and_then(|t| t.get(title))?;
        holders
            .iter()
            .map(|&i| self.boxes[i].as_ref())
            .filter(|b| b.healthy && now.saturating_sub(b.last_heartbeat) <= self.heartbeat_timeout_secs)
            .min_by(|a, b| a.load.total_cmp(&b.load).then_with(|| a.id.cmp(&b.id)))
    }

    /// Whether a box of `isp` that holds `title` and is alive is out of
    /// steering for it, having failed its viewers for it (`quality`).
    pub fn lost_by_a_holder(&self, isp: &str, title: &str, now: u64) -> bool {
        let holders = self.holders.get(isp).and_then(|t| t.get(title));
        holders
            .into_iter()
            .flatten()
            .map(|&i| self.boxes[i].as_ref())
            .any(|b| self.alive(b, now) && b.quality.lost(title, now))
    }

    /// Box `id`, if the view knows it.
    pub fn get(&self, id: &str) -> Option<&Appliance> {
        self.ids.get(id).map(|&i| self.boxes[i].as_ref())
    }

    /// The boxes of `site`, by id.
    pub fn site(&self, site: &str) -> impl Iterator<Item = &Appliance> {
        self.by_site
            .get(site)
            .into_iter()
            .flatten()
            .map(|&i| self.boxes[i].as_ref())
    }

    /// Healthy, not failing its viewers, and heard from lately.
    pub fn alive(&self, b: &Appliance, now: u64) -> bool {
        b.healthy && !b.quality.failing(now) && now.saturating_sub(b.last_heartbeat) <= self.heartbeat_timeout_secs
    }

    /// Up to `limit` appliances a player at `ip` may use for `title` now,
    /// best first, and their ISP. The boxes whose BGP table covers `ip`
    /// (longest prefix across all boxes) come first; when none of them can
    /// serve, the boxes of the ISP the imported prefixes name.
    pub fn candidates(&self, ip: IpAddr, title: &str, now: u64, limit: usize) -> (Option<&str>, Vec<&Appliance>) {
        if let Some((isp, mut boxes)) = self.bgp_boxes(ip, |b| self.usable(b, title, now)) {
            boxes.truncate(limit);
            return (Some(isp), boxes);
        }
        let Some((_, isp)) = self.prefixes.lookup(ip) else {
            return (None, Vec::new());
        };
        (Some(isp.as_str()), self.holding(isp, title, now, limit))
    }

    /// Up to `limit` live boxes of `isp` holding `title`, least loaded
    /// first: from the title's holders when they are few, else the first
    /// ones of the ISP's list by load that hold it.
    fn holding(&self, isp: &str, title: &str, now: u64, limit: usize) -> Vec<&Appliance> {
        let holders = self
            .holders
            .get(isp)
            .and_then(|t| t.get(title))
            .map_or(&[][..], |h| h.as_slice());
        let all = self.by_isp.get(isp).map_or(0, |l| l.len());
        if holders.len() * 4 >= all {
            let list = self.by_isp.get(isp).into_iter().flat_map(|l| l.iter());
            return list
                .map(|&i| self.boxes[i].as_ref())
                .filter(|b| self.usable(b, title, now))
                .take(limit)
                .collect();
        }
        let mut boxes: Vec<&Appliance> = holders
            .iter()
            .map(|&i| self.boxes[i].as_ref())
            .filter(|b| self.alive(b, now) && !b.quality.lost(title, now))
            .collect();
        boxes.sort_by(|a, b| by_rank(a, b));
        boxes.truncate(limit);
        boxes
    }

    /// The boxes whose BGP table covers `ip` that pass `ok`, least loaded
    /// first, and their ISP; `None` when there are none.
    fn bgp_boxes(&self, ip: IpAddr, ok: impl Fn(&Appliance) -> bool) -> Option<(&str, Vec<&Appliance>)> {
        let (_, ids) = self.bgp.lookup(ip)?;
        let mut boxes: Vec<&Appliance> = ids
            .iter()
            .filter_map(|id| self.ids.get(id))
            .map(|&i| self.boxes[i].as_ref())
            .filter(|b| ok(b))
            .collect();
        if boxes.is_empty() {
            return None;
        }
        boxes.sort_by(|a, b| by_rank(a, b));
        Some((boxes[0].isp.as_str(), boxes))
    }

    /// The boxes that pass `ok` for a player at `ip`, least loaded first,
    /// and their ISP: those whose BGP table covers `ip`, else those of the
    /// ISP the imported prefixes name.
    fn isp_boxes(&self, ip: IpAddr, ok: impl Fn(&Appliance) -> bool) -> (Option<&str>, Vec<&Appliance>) {
        if let Some((isp, boxes)) = self.bgp_boxes(ip, &ok) {
            return (Some(isp), boxes);
        }
        let Some((_, isp)) = self.prefixes.lookup(ip) else {
            return (None, Vec::new());
        };
        let boxes = self
            .by_isp
            .get(isp)
            .into_iter()
            .flat_map(|l| l.iter())
            .map(|&i| self.boxes[i].as_ref())
            .filter(|b| ok(b))
            .collect();
        (Some(isp.as_str()), boxes)
    }

    /// `path` (`/c/…`) on each of `boxes`, then on the origin: the base
    /// URLs players and manifests use, best first.
    pub fn urls<'a>(&'a self, boxes: &'a [&Appliance], path: &'a str) -> impl Iterator<Item = String> + 'a {
        boxes
            .iter()
            .map(|b| b.url.as_str())
            .chain([self.origin_url.as_str()])
            .map(move |base| format!("{}{path}", base.trim_end_matches('/')))
    }

    /// The base URL of the box named `id`, or the origin's when no box is.
    pub fn url_of(&self, id: &str) -> &str {
        self.ids
            .get(id)
            .map_or(self.origin_url.as_str(), |&i| self.boxes[i].url.as_str())
    }

    /// Signed URLs of `/c/{title}/{file}` for a client at `ip`.
    pub fn steer(
        &self,
        key: &SigningKey,
        ip: IpAddr,
        title: &Name,
        file: &TitlePath,
        now: u64,
        ttl_secs: u64,
    ) -> Answer {
        let path = format!("/c/{title}/{file}");
        let grant = grant(ip, now, ttl_secs);
        let query = format!("?{TOKEN_PARAM}={}", key.sign(&path, &grant));
        let (isp, boxes) = self.candidates(ip, title, now, self.max_appliances);
        let urls = self.urls(&boxes, &path).map(|u| u + &query).collect();
        Answer {
            isp: isp.map(str::to_string),
            urls,
            expires: grant.expires,
        }
    }
}

#[cfg(test)]
mod tests;
