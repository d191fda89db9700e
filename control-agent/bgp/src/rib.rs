//! The learned table: prefix → route, bounded by the session's
//! max-prefix limit (the speaker closes the session before it grows past).
//! Routes are interned: the prefixes of one UPDATE share one attribute
//! set, and a full table has far fewer attribute sets than prefixes, so
//! each prefix costs its key and a pointer.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use nearcast_common::IpPrefix;
use serde::Serialize;

use crate::update::Update;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Route {
    pub as_path: Vec<u32>,
    pub next_hop: Option<IpAddr>,
    pub communities: Vec<(u16, u16)>,
}

#[derive(Clone, Debug, Default)]
pub struct Rib {
    routes: HashMap<IpPrefix, Arc<Route>>,
    /// Every attribute set in use (and some no longer: pruned as it grows).
    interned: HashSet<Arc<Route>>,
    /// `interned`'s size after the last prune.
    pruned_at: usize,
}

impl Rib {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, p: &IpPrefix) -> Option<&Route> {
        self.routes.get(p).map(Arc::as_ref)
    }

    /// Every prefix, sorted (v4 before v6, then by address and length).
    pub fn prefixes(&self) -> Vec<IpPrefix> {
        let mut v: Vec<IpPrefix> = self.routes.keys().copied().collect();
        v.sort_by_key(|p| (p.addr().is_ipv6(), p.addr(), p.len()));
        v
    }

    /// How many prefixes the table would hold after `u`.
    pub fn size_after(&self, u: &Update) -> usize {
        let gone = u.withdrawn.iter().filter(|p| self.routes.contains_key(p)).count();
        let new = u
            .announced
            .iter()
            .filter(|p| !self.routes.contains_key(p) || u.withdrawn.contains(p))
            .count();
        self.routes.len() - gone + new
    }

    fn intern(&mut self, r: Route) -> Arc<Route> {
        if let Some(a) = self.interned.get(&r) {
            return a.clone();
        }
        let a = Arc::new(r);
        self.interned.insert(a.clone());
        a
    }

    pub fn apply(&mut self, u: &Update) {
        for p in &u.withdrawn {
            self.routes.remove(p);
        }
        let route = |next_hop| Route {
            as_path: u.attrs.as_path.clone(),
            next_hop,
            communities: u.attrs.communities.clone(),
        };
        let v4_hop = u.attrs.next_hop.map(IpAddr::V4).or(u.attrs.mp_next_hop);
        let (mut v4, mut v6) = (None, None);
        for p in &u.announced {
            let shared = if p.addr().is_ipv6() {
                v6.get_or_insert_with(|| self.intern(route(u.attrs.mp_next_hop)))
                    .clone()
            } else {
                v4.get_or_insert_with(|| self.intern(route(v4_hop))).clone()
            };
            self.routes.insert(*p, shared);
        }
        if self.interned.len() > 2 * self.pruned_at.max(512) {
            self.interned.retain(|a| Arc::strong_count(a) > 1);
            self.pruned_at = self.interned.len();
        }
    }

    /// The table grouped by shared attributes, each group's prefixes
    /// sorted, groups in a stable order (for reports that compare equal
    /// when nothing changed).
    pub fn groups(&self) -> Vec<(Route, Vec<IpPrefix>)> {
        let mut by_route: HashMap<&Route, Vec<IpPrefix>> = HashMap::new();
        for (p, r) in &self.routes {
            by_route.entry(r.as_ref()).or_default().push(*p);
        }
        let mut out: Vec<(Route, Vec<IpPrefix>)> = by_route
            .into_iter()
            .map(|(r, mut ps)| {
                ps.sort_by_key(|p| (p.addr().is_ipv6(), p.addr(), p.len()));
                (r.clone(), ps)
            })
            .collect();
        out.sort_by(|a, b| {
            (a.1.first().map(|p| (p.addr().is_ipv6(), p.addr(), p.len())))
                .cmp(&b.1.first().map(|p| (p.addr().is_ipv6(), p.addr(), p.len())))
        });
        out
    }

    pub fn clear(&mut self) {
        self.routes.clear();
        self.interned.clear();
        self.pruned_at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::{Attributes, Update};

    fn update(announce: &[&str], withdraw: &[&str], path: &[u32]) -> Update {
        Update {
            withdrawn: withdraw.iter().map(|p| p.parse().unwrap()).collect(),
            announced: announce.iter().map(|p| p.parse().unwrap()).collect(),
            attrs: Attributes {
                as_path: path.to_vec(),
                next_hop: Some("192.0.2.1".parse().unwrap()),
                mp_next_hop: Some("2001:db8::1".parse().unwrap()),
                ..Attributes::default()
            },
        }
    }

    #[test]
    fn routes_are_shared_and_sizes_are_predicted() {
        let mut rib = Rib::default();
        let u = update(&["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"], &[], &[64500]);
        assert_eq!(rib.size_after(&u), 3);
        rib.apply(&u);
        let a = rib.routes[&"10.0.0.0/8".parse().unwrap()].clone();
        let b = rib.routes[&"192.0.2.0/24".parse().unwrap()].clone();
        assert!(Arc::ptr_eq(&a, &b), "one attribute set, one allocation");
        assert_eq!(
            rib.get(&"2001:db8::/32".parse().unwrap()).unwrap().next_hop,
            Some("2001:db8::1".parse().unwrap())
        );
        // Same attributes in a later UPDATE: the same interned route.
        rib.apply(&update(&["198.51.100.0/24"], &[], &[64500]));
        assert!(Arc::ptr_eq(&a, &rib.routes[&"198.51.100.0/24".parse().unwrap()]));
        // Withdraw one, re-announce another with a new path.
        let u = update(&["10.0.0.0/8"], &["192.0.2.0/24"], &[64500, 64501]);
        assert_eq!(rib.size_after(&u), 3);
        rib.apply(&u);
        assert_eq!(rib.len(), 3);
        assert_eq!(rib.get(&"10.0.0.0/8".parse().unwrap()).unwrap().as_path, [64500, 64501]);
        let groups = rib.groups();
        assert_eq!(groups.iter().map(|(_, ps)| ps.len()).sum::<usize>(), 3);
        assert_eq!(groups.len(), 3, "v4 old path, v4 new path, v6");
        rib.clear();
        assert!(rib.is_empty() && rib.groups().is_empty());
    }
}
