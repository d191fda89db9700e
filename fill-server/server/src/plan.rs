//! Fill manifests for the appliances of one site.
//!
//! Titles are taken in the ISP's rank order. The head — the most popular
//! titles, until they use `head_fraction` of the smallest appliance — goes
//! on every appliance, so the hottest demand is spread across the site. The
//! long tail is partitioned by rendezvous (highest-random-weight) hashing:
//! each title goes to the appliance that scores highest for it and still
//! has room, so the site as a whole holds as many distinct titles as fit,
//! and adding or removing a box moves only the titles that box wins or
//! loses. A title too big for any remaining space is skipped and smaller
//! ones further down still get their chance.

use std::collections::{BTreeMap, BTreeSet};

use nearcast_common::digest::rendezvous_score;
use nearcast_common::manifest::{FillManifest, ManifestFile, ManifestTitle};
use nearcast_common::{sha256_hex, Name};
use nearcast_packager::TitleIndex;

use crate::predict::Forecast;

/// One appliance as the planner sees it.
#[derive(Clone, Debug)]
pub struct Slot {
    pub id: String,
    pub capacity_bytes: u64,
    /// Base URL other boxes fill from (`http://10.1.2.3:8080`).
    pub peer_url: String,
    /// Titles it holds and can hand to peers now (its last inventory
    /// report; empty while it is down).
    pub holds: BTreeSet<Name>,
}

#[derive(Clone, Debug)]
pub struct PlanParams {
    /// Share of the smallest appliance the replicated head may use.
    pub head_fraction: f64,
}

impl Default for PlanParams {
    fn default() -> Self {
        PlanParams { head_fraction: 0.3 }
    }
}

/// Plans every appliance of `site`. `ranking` is the site's ISP's forecast,
/// `titles` the packaged titles' indexes, `origin_url` the last source.
pub fn plan_site(
    site: &str,
    day: i64,
    slots: &[Slot],
    ranking: &[Forecast],
    titles: &BTreeMap<Name, TitleIndex>,
    origin_url: &str,
    p: &PlanParams,
) -> Vec<FillManifest> {
    let mut slots: Vec<&Slot> = slots.iter().collect();
    slots.sort_by(|a, b| a.id.cmp(&b.id));
    let (placed, free) = place(&slots, ranking, titles, p);
    slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let mut entries: Vec<ManifestTitle> = placed
                .iter()
                .filter(|pl| pl.slot == i)
                .map(|pl| manifest_title(&slots, slot, pl, titles, origin_url))
                .collect();
            entries.sort_by_key(|e| e.rank);
            let mut m = FillManifest {
                appliance: slot.id.clone(),
                site: site.to_string(),
                version: String::new(),
                day,
                capacity_bytes: slot.capacity_bytes,
                planned_bytes: slot.capacity_bytes - free[i],
                titles: entries,
            };
            m.version = version(&m);
            m
        })
        .collect()
}

/// A title placed on one appliance.
struct Placement<'a> {
    /// Index into the sorted slots.
    slot: usize,
    rank: u32,
    forecast: &'a Forecast,
    /// In the head, on every appliance of the site.
    replicated: bool,
}

/// Places the ranking: the head (while it fits in `head_fraction` of the
/// smallest appliance) on every appliance, then each title of the tail on
/// the first appliance by rendezvous score with room for it. Returns the
/// placements and each slot's room left.
fn place<'a>(
    slots: &[&Slot],
    ranking: &'a [Forecast],
    titles: &BTreeMap<Name, TitleIndex>,
    p: &PlanParams,
) -> (Vec<Placement<'a>>, Vec<u64>) {
    let mut free: Vec<u64> = slots.iter().map(|s| s.capacity_bytes).collect();
    let Some(&smallest) = free.iter().min() else {
        return (Vec::new(), free);
    };
    let head_limit = (smallest as f64 * p.head_fraction) as u64;
    let mut placed = Vec::new();
    let mut head_used = 0u64;
    let mut in_head = true;
    for (rank, forecast) in ranking.iter().enumerate() {
        let Some(index) = titles.get(&forecast.title) else {
            continue; // not packaged (yet): nothing to fill
        };
        let size: u64 = index.files.iter().map(|x| x.size).sum();
        let rank = rank as u32 + 1;
        if in_head && head_used + size <= head_limit && free.iter().all(|&room| room >= size) {
            head_used += size;
            for (slot, room) in free.iter_mut().enumerate() {
                *room -= size;
                placed.push(Placement {
                    slot,
                    rank,
                    forecast,
                    replicated: true,
                });
            }
            continue;
        }
        in_head = false;
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(rendezvous_score(&forecast.title, &slots[i].id)));
        if let Some(&slot) = order.iter().find(|&&i| free[i] >= size) {
            free[slot] -= size;
            placed.push(Placement {
                slot,
                rank,
                forecast,
                replicated: false,
            });
        }
    }
    (placed, free)
}

/// The manifest entry of one placement on `slot`: every file, from the
/// site's peers that hold the title, then the origin.
fn manifest_title(
    slots: &[&Slot],
    slot: &Slot,
    pl: &Placement,
    titles: &BTreeMap<Name, TitleIndex>,
    origin_url: &str,
) -> ManifestTitle {
    let title = &pl.forecast.title;
    let sources: Vec<String> = slots
        .iter()
        .filter(|o| o.id != slot.id && o.holds.contains(title))
        .map(|o| o.peer_url.clone())
        .chain([origin_url.to_string()])
        .collect();
    ManifestTitle {
        rank: pl.rank,
        title: title.clone(),
        predicted_bytes: pl.forecast.bytes.max(0.0).round() as u64,
        replicated: pl.replicated,
        files: titles[title]
            .files
            .iter()
            .map(|x| ManifestFile {
                path: x.path.clone(),
                size: x.size,
                sha256: x.sha256.clone(),
                sources: sources.clone(),
            })
            .collect(),
        token: String::new(),
    }
}

/// The first 16 hex digits of the SHA-256 of the manifest's content.
fn version(m: &FillManifest) -> String {
    let body = serde_json::to_vec(&(&m.appliance, &m.site, m.day, m.capacity_bytes, &m.titles)).unwrap_or_default();
    sha256_hex(&body)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }
    use nearcast_packager::index::FileEntry;

    fn index(title: &str, size: u64) -> TitleIndex {
        TitleIndex {
            title: n(title),
            version: 1,
            duration_secs: 10.0,
            target_duration_secs: 4.0,
            renditions: Vec::new(),
            files: vec![FileEntry {
                path: nearcast_common::TitlePath::new("720p/seg-00001.m4s").unwrap(),
                size,
                sha256: sha256_hex(title.as_bytes()),
            }],
            protection: None,
        }
    }

    fn setup(n_titles: usize, size: u64) -> (Vec<Forecast>, BTreeMap<Name, TitleIndex>) {
        let ranking: Vec<Forecast> = (0..n_titles)
            .map(|i| Forecast {
                title: n(&format!("t{i:03}")),
                bytes: 1e9 / (i as f64 + 1.0),
            })
            .collect();
        let titles = ranking
            .iter()
            .map(|f| (f.title.clone(), index(&f.title, size)))
            .collect();
        (ranking, titles)
    }

    fn slot(id: &str, cap: u64) -> Slot {
        Slot {
            id: id.into(),
            capacity_bytes: cap,
            peer_url: format!("http://{id}:8080"),
            holds: BTreeSet::new(),
        }
    }

    fn names(m: &FillManifest) -> Vec<&str> {
        m.titles.iter().map(|t| t.title.as_str()).collect()
    }

    #[test]
    fn head_everywhere_tail_partitioned_capacity_respected() {
        let (ranking, titles) = setup(100, 10);
        let slots = [slot("a", 200), slot("b", 200), slot("c", 200)];
        let plans = plan_site(
            "s1",
            5,
            &slots,
            &ranking,
            &titles,
            "http://origin",
            &PlanParams::default(),
        );
        assert_eq!(plans.len(), 3);
        // Head: 30% of 200 = 60 bytes = the top 6 titles on every box.
        for m in &plans {
            assert_eq!(&names(m)[..6], ["t000", "t001", "t002", "t003", "t004", "t005"]);
            assert!(m.titles[..6].iter().all(|t| t.replicated));
            assert!(m.planned_bytes <= m.capacity_bytes);
            assert_eq!(m.planned_bytes, 200, "boxes are filled");
        }
        // Tail: every other title on at most one box; the site holds 6 + 3×14 titles.
        let mut tail: Vec<&str> = plans
            .iter()
            .flat_map(|m| m.titles[6..].iter().map(|t| t.title.as_str()))
            .collect();
        let n = tail.len();
        tail.sort();
        tail.dedup();
        assert_eq!(tail.len(), n, "no tail title twice");
        assert_eq!(n, 42);
        // In rank order: the site holds the 48 most popular titles.
        let mut held: BTreeSet<&str> = tail.into_iter().collect();
        held.extend(names(&plans[0])[..6].iter().copied());
        assert_eq!(held, ranking[..48].iter().map(|f| f.title.as_str()).collect());
    }

    #[test]
    fn deterministic_and_versioned() {
        let (ranking, titles) = setup(50, 10);
        let slots = [slot("b", 150), slot("a", 120)];
        let p = PlanParams::default();
        let one = plan_site("s", 1, &slots, &ranking, &titles, "http://o", &p);
        let reversed = [slots[1].clone(), slots[0].clone()];
        let two = plan_site("s", 1, &reversed, &ranking, &titles, "http://o", &p);
        assert_eq!(one, two, "same inputs in any order, same manifests");
        assert_eq!(one[0].version.len(), 16);
        let other_day = plan_site("s", 2, &slots, &ranking, &titles, "http://o", &p);
        assert_ne!(one[0].version, other_day[0].version);
    }

    #[test]
    fn adding_a_box_moves_only_what_it_wins() {
        let (ranking, titles) = setup(60, 10);
        let p = PlanParams { head_fraction: 0.0 };
        let big = 10_000; // everything fits: placement is by hash alone
        let before = plan_site("s", 1, &[slot("a", big), slot("b", big)], &ranking, &titles, "o", &p);
        let after = plan_site(
            "s",
            1,
            &[slot("a", big), slot("b", big), slot("c", big)],
            &ranking,
            &titles,
            "o",
            &p,
        );
        for (old, new) in before.iter().zip(&after) {
            let kept: BTreeSet<&str> = names(new).into_iter().collect();
            for t in names(old) {
                // A title either stays or moves to the new box.
                assert!(
                    kept.contains(t) || names(&after[2]).contains(&t),
                    "{t} moved between old boxes"
                );
            }
        }
        assert!(!after[2].titles.is_empty());
    }

    #[test]
    fn peers_that_hold_a_title_come_before_the_origin() {
        let (ranking, titles) = setup(3, 10);
        let mut a = slot("a", 100);
        a.holds.insert(Name::new("t000").unwrap());
        let plans = plan_site(
            "s",
            1,
            &[a, slot("b", 100)],
            &ranking,
            &titles,
            "http://origin",
            &PlanParams::default(),
        );
        let b_t0 = plans[1].titles.iter().find(|t| t.title == "t000").unwrap();
        assert_eq!(b_t0.files[0].sources, ["http://a:8080", "http://origin"]);
        let a_t0 = plans[0].titles.iter().find(|t| t.title == "t000").unwrap();
        assert_eq!(a_t0.files[0].sources, ["http://origin"], "a box is never its own peer");
    }

    #[test]
    fn oversize_titles_are_skipped_and_smaller_ones_still_fit() {
        let mut titles = BTreeMap::new();
        titles.insert(n("huge"), index("huge", 500));
        titles.insert(n("small"), index("small", 50));
        let ranking = vec![
            Forecast {
                title: n("huge"),
                bytes: 10.0,
            },
            Forecast {
                title: n("unpackaged"),
                bytes: 9.0,
            },
            Forecast {
                title: n("small"),
                bytes: 1.0,
            },
        ];
        let plans = plan_site(
            "s",
            1,
            &[slot("a", 100)],
            &ranking,
            &titles,
            "o",
            &PlanParams::default(),
        );
        assert_eq!(names(&plans[0]), ["small"]);
        assert_eq!(plans[0].titles[0].rank, 3);
    }
}
