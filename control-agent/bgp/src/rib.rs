//! The learned table: prefix → route, bounded by the session's
//! max-prefix limit (the speaker closes the session before it grows past).

use std::collections::HashMap;
use std::net::IpAddr;

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
    routes: HashMap<IpPrefix, Route>,
}

impl Rib {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, p: &IpPrefix) -> Option<&Route> {
        self.routes.get(p)
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

    pub fn apply(&mut self, u: &Update) {
        for p in &u.withdrawn {
            self.routes.remove(p);
        }
        for p in &u.announced {
            let next_hop = if p.addr().is_ipv6() {
                u.attrs.mp_next_hop
            } else {
                u.attrs.next_hop.map(IpAddr::V4).or(u.attrs.mp_next_hop)
            };
            self.routes.insert(
                *p,
                Route {
                    as_path: u.attrs.as_path.clone(),
                    next_hop,
                    communities: u.attrs.communities.clone(),
                },
            );
        }
    }

    /// The table grouped by shared attributes, each group's prefixes
    /// sorted, groups in a stable order (for reports that compare equal
    /// when nothing changed).
    pub fn groups(&self) -> Vec<(Route, Vec<IpPrefix>)> {
        let mut by_route: HashMap<&Route, Vec<IpPrefix>> = HashMap::new();
        for (p, r) in &self.routes {
            by_route.entry(r).or_default().push(*p);
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
    }
}
