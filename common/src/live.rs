//! Where a box takes a live object it does not have: the site's shield
//! for the event first, then the origins. The shield is the peer of the
//! site (the box included) with the highest rendezvous score for the
//! event, so every box of the site picks the same one and only it talks
//! to the origin; when it is this box, or the request came from a peer
//! (it carries our `Via`), the origins are asked directly, so a request
//! never goes round the site.
//!
//! The fill server sends these lists to each box (in its heartbeat
//! reply), the agent hands them to the appliance (`PUT /live`), and
//! steering uses the same shield: one type and one rule for all three.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::digest::rendezvous_score;

/// What the fill server tells a box about live events: whom to ask, and
/// how much memory its live cache may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSetting {
    /// The site and the origins.
    pub upstreams: Upstreams,
    /// The live cache's size; `None` keeps the box's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mib: Option<u64>,
}

/// What the fill server tells a box (in its heartbeat reply): the boxes
/// of its site and the live origins by base URL, as registered (names
/// allowed), and its live cache size. The agent resolves the names into a
/// [`LiveSetting`] for the appliance, which never waits on DNS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePlan {
    /// The box's own id among `peers`.
    pub self_id: String,
    /// The site's healthy boxes (the box itself always among them).
    pub peers: Vec<PeerUrl>,
    /// Base URLs of the live origins, in order.
    pub origins: Vec<String>,
    /// The live cache size the box should use.
    pub cache_mib: u64,
}

/// A box of the site by its base URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerUrl {
    /// The box's id.
    pub id: String,
    /// Its base URL (`http://box-1.isp.example:8080`).
    pub url: String,
}

/// One box of the site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The box's id.
    pub id: String,
    /// Its plain HTTP listener.
    pub addr: SocketAddr,
}

/// The upstream lists, as configured or pushed by the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upstreams {
    /// This box's id among `peers`.
    pub self_id: String,
    /// The boxes of the site, this one included.
    pub peers: Vec<Peer>,
    /// The live origins (the fill server's live door), in order.
    pub origins: Vec<SocketAddr>,
}

impl Upstreams {
    /// The site's shield for `event`.
    pub fn shield(&self, event: &str) -> Option<&Peer> {
        self.peers.iter().max_by_key(|p| rendezvous_score(event, &p.id))
    }

    /// Whom to ask for an object of `event`, in order.
    pub fn for_event(&self, event: &str, from_peer: bool) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(self.origins.len() + 1);
        if !from_peer {
            if let Some(p) = self.shield(event).filter(|p| p.id != self.self_id) {
                out.push(p.addr);
            }
        }
        out.extend(&self.origins);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(me: &str) -> Upstreams {
        Upstreams {
            self_id: me.into(),
            peers: (1..=3)
                .map(|i| Peer {
                    id: format!("box{i}"),
                    addr: ([127, 0, 0, i], 8080).into(),
                })
                .collect(),
            origins: vec![([127, 0, 1, 1], 7073).into()],
        }
    }

    #[test]
    fn one_shield_per_event_and_site() {
        let origin: SocketAddr = ([127, 0, 1, 1], 7073).into();
        let mut shields = std::collections::BTreeSet::new();
        for e in 0..30 {
            let event = format!("event{e}");
            let shield = site("box1").shield(&event).unwrap().clone();
            shields.insert(shield.id.clone());
            for me in ["box1", "box2", "box3"] {
                let s = site(me);
                assert_eq!(s.shield(&event), Some(&shield), "every box agrees");
                let route = s.for_event(&event, false);
                if me == shield.id {
                    assert_eq!(route, vec![origin]);
                } else {
                    assert_eq!(route, vec![shield.addr, origin]);
                }
                assert_eq!(
                    s.for_event(&event, true),
                    vec![origin],
                    "a peer's request goes to the origin"
                );
            }
        }
        assert_eq!(shields.len(), 3, "events spread over the site");
        let alone = Upstreams {
            origins: vec![origin],
            ..Upstreams::default()
        };
        assert_eq!(alone.for_event("e", false), vec![origin]);
    }
}
