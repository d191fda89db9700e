//! Live events on boxes. A box pulls what it lacks, so every healthy box
//! of the player's ISP is a candidate; the event is concentrated on as few
//! boxes as load allows: boxes under `SPREAD_LOAD` come in the order of
//! their rendezvous score for the event (every player of the ISP gets the
//! same first box, whose cache is hot, and it is the shield of its site,
//! since the site's shield is the same rule over fewer boxes), busier ones
//! after them by load; the origin is the players' last pathway. And the
//! lists each box pulls through: its site's healthy boxes and the live
//! origin (`nearcast_common::live`).

use std::net::IpAddr;

use nearcast_common::digest::rendezvous_score;
use nearcast_common::live::PeerUrl;

use super::{Appliance, View};

/// A box this loaded takes no more of an event's players while one less
/// loaded is left.
pub const SPREAD_LOAD: f64 = 0.75;

impl View {
    /// Up to `limit` boxes a player at `ip` may use for live `event`, best
    /// first, and their ISP.
    pub fn live_candidates(&self, ip: IpAddr, event: &str, now: u64, limit: usize) -> (Option<&str>, Vec<&Appliance>) {
        let (isp, boxes) = self.isp_boxes(ip, |b| self.alive(b, now));
        let (mut calm, busy): (Vec<&Appliance>, Vec<&Appliance>) =
            boxes.into_iter().partition(|b| b.rank() < SPREAD_LOAD);
        calm.sort_by_key(|b| std::cmp::Reverse(rendezvous_score(event, &b.id)));
        calm.extend(busy);
        calm.truncate(limit);
        (isp, calm)
    }

    /// The boxes box `id` pulls live objects through: the healthy boxes of
    /// its site, itself always among them. `None` for a box the view does
    /// not know.
    pub fn site_peers(&self, id: &str, now: u64) -> Option<Vec<PeerUrl>> {
        let me = self.get(id)?;
        let peers = self
            .site(&me.site)
            .filter(|b| b.id == id || self.alive(b, now))
            .map(|b| PeerUrl {
                id: b.id.clone(),
                url: b.url.clone(),
            })
            .collect();
        Some(peers)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nearcast_common::PrefixTable;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn view(loads: &[(&str, &str, f64, bool)]) -> View {
        let mut prefixes = PrefixTable::new();
        prefixes.insert("198.51.100.0/22".parse().unwrap(), "isp-a".to_string());
        let boxes = loads
            .iter()
            .enumerate()
            .map(|(i, (id, site, load, healthy))| Appliance {
                id: (*id).into(),
                isp: "isp-a".into(),
                site: (*site).into(),
                url: format!("http://127.0.0.{}:8080", i + 1),
                capacity_bytes: 1 << 40,
                last_heartbeat: NOW - 5,
                load: *load,
                healthy: *healthy,
                titles: Default::default(),
                quality: Default::default(),
            })
            .collect();
        View::new(Arc::new(prefixes), boxes, "http://origin.example/".into(), 30, 4)
    }

    #[test]
    fn every_player_of_the_isp_gets_the_same_first_box_until_it_is_busy() {
        let v = view(&[
            ("a", "s1", 0.1, true),
            ("b", "s1", 0.2, true),
            ("c", "s2", 0.3, true),
            ("d", "s2", 0.0, false),
        ]);
        let player = "198.51.100.7".parse().unwrap();
        let mut firsts = std::collections::BTreeSet::new();
        for e in 0..20 {
            let event = format!("event{e}");
            let (isp, boxes) = v.live_candidates(player, &event, NOW, 4);
            assert_eq!(isp, Some("isp-a"));
            let got: Vec<&str> = boxes.iter().map(|b| b.id.as_str()).collect();
            assert_eq!(got.len(), 3, "every healthy box, not the failed one: {got:?}");
            let best = ["a", "b", "c"]
                .into_iter()
                .max_by_key(|id| rendezvous_score(&event, id))
                .unwrap();
            assert_eq!(got[0], best);
            firsts.insert(got[0]);
            // The box the event is concentrated on is its site's shield.
            let site = v.site_peers(best, NOW).unwrap();
            let shield = site.iter().max_by_key(|p| rendezvous_score(&event, &p.id)).unwrap();
            assert_eq!(shield.id, best);
        }
        assert!(firsts.len() > 1, "events spread over the ISP's boxes");
        // A busy box goes behind the calm ones.
        let busy = view(&[("a", "s1", 0.9, true), ("b", "s1", 0.2, true)]);
        for e in 0..10 {
            let (_, boxes) = busy.live_candidates(player, &format!("e{e}"), NOW, 4);
            assert_eq!(boxes[0].id, "b");
        }
        let (isp, none) = v.live_candidates("192.0.2.1".parse().unwrap(), "e", NOW, 4);
        assert!(isp.is_none() && none.is_empty());
    }

    #[test]
    fn site_lists() {
        let v = view(&[("a", "s1", 0.1, true), ("b", "s1", 0.2, false), ("c", "s2", 0.3, true)]);
        let peers = v.site_peers("a", NOW).unwrap();
        assert_eq!(
            peers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["a"],
            "b is down, c elsewhere"
        );
        assert_eq!(
            v.site_peers("b", NOW).unwrap().len(),
            2,
            "a box is always on its own list"
        );
        assert!(v.site_peers("zz", NOW).is_none());
        assert_eq!(peers[0].url, "http://127.0.0.1:8080");
    }
}
