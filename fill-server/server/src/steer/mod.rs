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

use nearcast_common::prefix::canonical;
use nearcast_common::{Grant, IpPrefix, Name, PrefixTable, SigningKey, TitlePath, TOKEN_PARAM};
use serde::Serialize;

/// One appliance as steering sees it.
#[derive(Clone, Debug)]
pub struct Appliance {
    pub id: String,
    pub isp: String,
    pub site: String,
    /// Base URL players use (`https://box1.isp.example:443`).
    pub url: String,
    /// Unix seconds of its last heartbeat.
    pub last_heartbeat: u64,
    /// 0.0 idle … 1.0 saturated, from its heartbeat.
    pub load: f64,
    /// False when the box reports itself or a disk failed.
    pub healthy: bool,
    pub titles: BTreeSet<nearcast_common::Name>,
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
}

/// An ISP's boxes, least loaded first (ties by id, so the order is stable).
fn by_load(boxes: &[Arc<Appliance>], mut list: Vec<usize>) -> Vec<usize> {
    list.sort_by(|&a, &b| {
        boxes[a]
            .load
            .total_cmp(&boxes[b].load)
            .then_with(|| boxes[a].id.cmp(&boxes[b].id))
    });
    list
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
        for (i, b) in boxes.iter().enumerate() {
            by_site.entry(b.site.clone()).or_default().push(i);
        }
        View {
            by_site: Arc::new(by_site),
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

    /// This view with one appliance's heartbeat applied: no storage read,
    /// and only that appliance's ISP is re-sorted, so a heartbeat costs
    /// the same however large the fleet. `None` if the view does not know
    /// the appliance (not registered in a site yet).
    pub fn with_heartbeat(&self, id: &str, at: u64, load: f64, healthy: bool) -> Option<View> {
        let &i = self.ids.get(id)?;
        let mut boxes = self.boxes.clone();
        boxes[i] = Arc::new(Appliance {
            last_heartbeat: at,
            load,
            healthy,
            ..(*boxes[i]).clone()
        });
        let isp = &boxes[i].isp;
        let mut by_isp = self.by_isp.clone();
        let list = by_isp.get(isp).map(|l| l.to_vec()).unwrap_or_default();
        by_isp.insert(isp.clone(), Arc::new(by_load(&boxes, list)));
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
        })
    }

    fn usable(&self, b: &Appliance, title: &str, now: u64) -> bool {
        self.alive(b, now) && b.titles.contains(title)
    }

    /// Healthy and heard from lately.
    fn alive(&self, b: &Appliance, now: u64) -> bool {
        b.healthy && now.saturating_sub(b.last_heartbeat) <= self.heartbeat_timeout_secs
    }

    /// Up to `limit` appliances a player at `ip` may use for `title` now,
    /// best first, and their ISP. The boxes whose BGP table covers `ip`
    /// (longest prefix across all boxes) come first; when none of them can
    /// serve, the boxes of the ISP the imported prefixes name.
    pub fn candidates(&self, ip: IpAddr, title: &str, now: u64, limit: usize) -> (Option<&str>, Vec<&Appliance>) {
        let (isp, mut boxes) = self.isp_boxes(ip, |b| self.usable(b, title, now));
        boxes.truncate(limit);
        (isp, boxes)
    }

    /// The boxes that pass `ok` for a player at `ip`, least loaded first,
    /// and their ISP: those whose BGP table covers `ip`, else those of the
    /// ISP the imported prefixes name.
    fn isp_boxes(&self, ip: IpAddr, ok: impl Fn(&Appliance) -> bool) -> (Option<&str>, Vec<&Appliance>) {
        if let Some((_, ids)) = self.bgp.lookup(ip) {
            let mut boxes: Vec<&Appliance> = ids
                .iter()
                .filter_map(|id| self.ids.get(id))
                .map(|&i| self.boxes[i].as_ref())
                .filter(|b| ok(b))
                .collect();
            if !boxes.is_empty() {
                boxes.sort_by(|a, b| a.load.total_cmp(&b.load).then_with(|| a.id.cmp(&b.id)));
                return (Some(boxes[0].isp.as_str()), boxes);
            }
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
mod tests {
    use super::*;
    use nearcast_common::Keyring;

    const NOW: u64 = 1_800_000_000;

    fn view() -> View {
        let mut prefixes = PrefixTable::new();
        prefixes.insert("198.51.100.0/22".parse().unwrap(), "isp-a".to_string());
        prefixes.insert("2001:db8::/32".parse().unwrap(), "isp-a".to_string());
        prefixes.insert("203.0.113.0/24".parse().unwrap(), "isp-b".to_string());
        let b = |id: &str, isp: &str, load: f64, beat: u64, healthy: bool, titles: &[&str]| Appliance {
            id: id.into(),
            isp: isp.into(),
            site: format!("{isp}-site"),
            url: format!("http://{id}.example:8080"),
            last_heartbeat: beat,
            load,
            healthy,
            titles: titles.iter().map(|t| nearcast_common::Name::new(*t).unwrap()).collect(),
        };
        View::new(
            Arc::new(prefixes),
            vec![
                b("a1", "isp-a", 0.7, NOW - 5, true, &["movie", "show"]),
                b("a2", "isp-a", 0.2, NOW - 5, true, &["movie"]),
                b("a3", "isp-a", 0.1, NOW - 500, true, &["movie"]), // stale heartbeat
                b("a4", "isp-a", 0.0, NOW - 5, false, &["movie"]),  // failed
                b("b1", "isp-b", 0.1, NOW - 5, true, &["movie"]),
            ],
            "http://origin.example/".into(),
            30,
            4,
        )
    }

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn p(s: &str) -> TitlePath {
        TitlePath::new(s).unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::new("k1", &[9; 32]).unwrap()
    }

    /// `view.steer` for `client` asking for `title`'s `file`, now.
    fn ask(view: &View, client: &str, title: &str, file: &str) -> Answer {
        view.steer(&key(), client.parse().unwrap(), &n(title), &p(file), NOW, 60)
    }

    #[test]
    fn healthy_boxes_of_the_clients_isp_least_loaded_first_origin_last() {
        let a = ask(&view(), "198.51.101.7", "movie", "master.m3u8");
        assert_eq!(a.isp.as_deref(), Some("isp-a"));
        let hosts: Vec<&str> = a.urls.iter().map(|u| u.split("/c/").next().unwrap()).collect();
        assert_eq!(
            hosts,
            [
                "http://a2.example:8080",
                "http://a1.example:8080",
                "http://origin.example"
            ]
        );
        // The title filter applies; an unknown client gets the origin only.
        let s = ask(&view(), "2001:db8::5", "show", "master.m3u8");
        assert_eq!(s.urls.len(), 2);
        let none = ask(&view(), "192.0.2.1", "movie", "manifest.mpd");
        assert_eq!((none.isp, none.urls.len()), (None, 1));
    }

    #[test]
    fn answers_name_at_most_max_appliances_then_the_origin() {
        let mut v = view();
        v.max_appliances = 1;
        let a = ask(&v, "198.51.101.7", "movie", "master.m3u8");
        let hosts: Vec<&str> = a.urls.iter().map(|u| u.split("/c/").next().unwrap()).collect();
        assert_eq!(hosts, ["http://a2.example:8080", "http://origin.example"]);
    }

    #[test]
    fn a_silent_box_leaves_the_answers_after_the_timeout() {
        let v = view();
        let ip = "198.51.100.1".parse().unwrap();
        assert_eq!(v.candidates(ip, "movie", NOW, 4).1.len(), 2);
        let b = v.boxes[1].clone();
        let v = v.with_heartbeat(&b.id, NOW - 31, b.load, true).unwrap();
        let ids: Vec<&str> = v
            .candidates(ip, "movie", NOW, 4)
            .1
            .iter()
            .map(|b| b.id.as_str())
            .collect();
        assert_eq!(ids, ["a1"]);
    }

    #[test]
    fn bgp_routes_steer_before_the_imported_prefixes() {
        let mut v = view();
        let mut bgp: PrefixTable<Arc<[String]>> = PrefixTable::new();
        // a1 hears 192.0.2.0/24 (in no imported prefix) and a more
        // specific part of isp-a's block.
        bgp.insert("192.0.2.0/24".parse().unwrap(), vec!["a1".to_string()].into());
        bgp.insert(
            "198.51.100.0/25".parse().unwrap(),
            vec!["a1".to_string(), "nobody".to_string()].into(),
        );
        v.bgp = Arc::new(bgp);
        let ids = |ip: &str, title: &str| -> Vec<String> {
            v.candidates(ip.parse().unwrap(), title, NOW, 4)
                .1
                .iter()
                .map(|b| b.id.clone())
                .collect()
        };
        assert_eq!(ids("192.0.2.9", "movie"), ["a1"], "BGP alone");
        assert_eq!(
            ids("198.51.100.9", "movie"),
            ["a1"],
            "the BGP box, not the ISP's least loaded"
        );
        assert_eq!(
            ids("198.51.100.200", "movie"),
            ["a2", "a1"],
            "outside the BGP prefix: the ISP's boxes"
        );
        assert!(ids("192.0.2.9", "nothing-here").is_empty(), "no box holds it: origin");
    }

    #[test]
    fn a_heartbeat_reorders_and_can_take_a_box_out() {
        let ip = "198.51.100.1".parse().unwrap();
        let order = |v: &View| -> Vec<String> {
            v.candidates(ip, "movie", NOW, 4)
                .1
                .iter()
                .map(|b| b.id.clone())
                .collect()
        };
        let v = view();
        assert_eq!(order(&v), ["a2", "a1"]);
        let v = v.with_heartbeat("a1", NOW, 0.0, true).unwrap();
        assert_eq!(order(&v), ["a1", "a2"], "a1 is now the least loaded");
        let v = v.with_heartbeat("a1", NOW, 0.0, false).unwrap();
        assert_eq!(order(&v), ["a2"], "a1 reported a failure");
        assert!(v.with_heartbeat("nobody", NOW, 0.0, true).is_none());
    }

    #[test]
    fn urls_carry_tokens_the_appliance_accepts_for_that_client_only() {
        let ip: IpAddr = "198.51.101.7".parse().unwrap();
        let a = view().steer(&key(), ip, &n("movie"), &p("720p/seg-00001.m4s"), NOW, 60);
        assert_eq!(a.expires, NOW + 60);
        let ring = Keyring::new(vec![key()]);
        for url in &a.urls {
            let (path, token) = url
                .split_once("/c/")
                .map(|(_, rest)| rest.split_once("?token=").unwrap())
                .unwrap();
            let path = format!("/c/{path}");
            assert!(ring
                .verify(&path, token, "198.51.101.200".parse().unwrap(), NOW)
                .is_ok());
            assert!(
                ring.verify(&path, token, "198.51.102.1".parse().unwrap(), NOW).is_err(),
                "other /24"
            );
        }
    }
}
