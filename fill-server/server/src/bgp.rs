//! The fleet's BGP view for operators: each appliance's session and table
//! size, and per site whether its boxes hear the same routes (they should:
//! one ISP router announces one set to every box of a site; a box that
//! differs is misconfigured, or its session is down).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{BgpRoutes, Snapshot};

#[derive(Debug, Serialize)]
pub struct ApplianceBgp {
    pub id: String,
    pub site: Option<String>,
    pub session: String,
    pub prefixes: usize,
    pub updated: u64,
}

#[derive(Debug, Serialize)]
pub struct SiteBgp {
    pub site: String,
    /// Every box of the site that reported holds the same prefix set.
    pub consistent: bool,
    /// Boxes whose set differs from the one most of the site holds.
    pub differing: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FleetBgp {
    pub appliances: Vec<ApplianceBgp>,
    pub sites: Vec<SiteBgp>,
}

pub fn fleet(routes: &[BgpRoutes], snap: &Snapshot) -> FleetBgp {
    let site_of = |id: &str| {
        snap.appliances
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| a.registration.as_ref())
            .map(|r| r.site.clone())
    };
    let appliances: Vec<ApplianceBgp> = routes
        .iter()
        .map(|r| ApplianceBgp {
            id: r.appliance.clone(),
            site: site_of(&r.appliance),
            session: r.routes.session.clone(),
            prefixes: r.routes.len(),
            updated: r.updated,
        })
        .collect();
    // site → (sorted prefix set → boxes holding exactly it)
    let mut sets: BTreeMap<String, BTreeMap<Vec<&str>, Vec<String>>> = BTreeMap::new();
    for r in routes {
        let Some(site) = site_of(&r.appliance) else {
            continue;
        };
        let mut set: Vec<&str> = r.routes.prefixes().collect();
        set.sort_unstable();
        sets.entry(site)
            .or_default()
            .entry(set)
            .or_default()
            .push(r.appliance.clone());
    }
    let sites = sets
        .into_iter()
        .map(|(site, groups)| {
            let majority = groups.values().map(Vec::len).max().unwrap_or(0);
            let mut differing: Vec<String> = Vec::new();
            let mut kept_majority = false;
            for ids in groups.values() {
                if ids.len() == majority && !kept_majority {
                    kept_majority = true;
                } else {
                    differing.extend(ids.iter().cloned());
                }
            }
            differing.sort();
            SiteBgp {
                site,
                consistent: differing.is_empty(),
                differing,
            }
        })
        .collect();
    FleetBgp { appliances, sites }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ApplianceRecord, Inventory, Registration, Routes};
    use nearcast_common::control::RouteGroup;

    fn record(id: &str, site: &str) -> ApplianceRecord {
        ApplianceRecord {
            id: id.into(),
            public_key: String::new(),
            registration: Some(Registration {
                site: site.into(),
                url: String::new(),
                capacity_bytes: 0,
                disks: Vec::new(),
            }),
            last_heartbeat: None,
            heartbeat: None,
            inventory: Inventory {
                version: String::new(),
                titles: Vec::new(),
            },
        }
    }

    fn routes(id: &str, prefixes: &[&str]) -> BgpRoutes {
        BgpRoutes {
            appliance: id.into(),
            routes: Routes {
                session: "established".into(),
                groups: vec![RouteGroup {
                    as_path: vec![64500],
                    next_hop: None,
                    communities: Vec::new(),
                    prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
                }],
            },
            updated: 1,
        }
    }

    #[test]
    fn a_box_that_hears_other_routes_than_its_site_is_flagged() {
        let snap = Snapshot {
            sites: [
                ("s1".to_string(), "isp".to_string()),
                ("s2".to_string(), "isp".to_string()),
            ]
            .into(),
            appliances: vec![
                record("a", "s1"),
                record("b", "s1"),
                record("c", "s1"),
                record("d", "s2"),
            ],
            ..Default::default()
        };
        let f = fleet(
            &[
                routes("a", &["10.0.0.0/8", "192.0.2.0/24"]),
                routes("b", &["192.0.2.0/24", "10.0.0.0/8"]),
                routes("c", &["10.0.0.0/8"]),
                routes("d", &["10.0.0.0/8"]),
            ],
            &snap,
        );
        assert_eq!(f.appliances.len(), 4);
        assert_eq!(f.appliances[0].prefixes, 2);
        let s1 = f.sites.iter().find(|s| s.site == "s1").unwrap();
        assert!(!s1.consistent);
        assert_eq!(s1.differing, ["c"], "order does not matter, the missing prefix does");
        assert!(f.sites.iter().find(|s| s.site == "s2").unwrap().consistent);
    }
}
