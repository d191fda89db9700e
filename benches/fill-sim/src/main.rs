//! Replays a synthetic trace (`trace.rs`) and compares, per ISP and at the
//! same capacity, three ways to fill one appliance:
//!
//! - **predictive**: Nearcast's nightly fill — each morning `predict` over
//!   the history so far plus announced releases, `plan_site` into the
//!   capacity; hits are plays of titles filled that night; origin egress is
//!   the night's new fills plus the day's misses.
//! - **LRU**: a reactive whole-title cache (`lru` crate): a miss fetches
//!   the title (egress = its size) and evicts least recently used titles.
//! - **Belady**: the same reactive cache with perfect foresight: evict the
//!   title whose next play is furthest away (the offline optimum for equal
//!   sizes, the standard bound with sizes).
//!
//! Usage: `fill-sim [CAPACITY_PERCENT ...]` (of the catalogue's bytes).

mod trace;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nearcast_common::names::{Name, TitlePath};
use nearcast_fill_server::plan::{plan_site, PlanParams, Slot};
use nearcast_fill_server::predict::{predict, DailyBytes, ModelParams, Release};
use nearcast_packager::index::FileEntry;
use nearcast_packager::TitleIndex;
use trace::{Params, Play, Rng, Title};

const WARMUP: i64 = 7;

#[derive(Default, Clone, Copy)]
struct Score {
    hit: u64,
    total: u64,
    egress: u64,
}

impl Score {
    fn add(&mut self, o: Score) {
        self.hit += o.hit;
        self.total += o.total;
        self.egress += o.egress;
    }
}

fn isp(i: usize) -> String {
    format!("isp-{i}")
}

fn predictive(cat: &[Title], plays: &[Play], p: &Params, cap: u64) -> Score {
    let titles: BTreeMap<Name, TitleIndex> = cat
        .iter()
        .map(|t| {
            let files = vec![FileEntry { path: TitlePath::new("all.m4s").expect("a plain path"), size: t.size, sha256: String::new() }];
            let idx = TitleIndex {
                title: t.name.clone(),
                version: 1,
                duration_secs: 0.0,
                target_duration_secs: 4.0,
                renditions: Vec::new(),
                files,
                protection: None,
            };
            (t.name.clone(), idx)
        })
        .collect();
    let by_name: HashMap<&str, usize> = cat.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    // Announced releases: the day before they open.
    let releases: Vec<Release> = cat
        .iter()
        .filter(|t| t.release >= 0)
        .map(|t| Release { title: t.name.clone(), isp: None, day: t.release, boost: 1.0 })
        .collect();
    let mut score = Score::default();
    let mut held: Vec<HashSet<usize>> = vec![HashSet::new(); p.isps];
    let mut history: Vec<DailyBytes> = Vec::new();
    let params = ModelParams::default();
    for day in 0..p.days {
        let forecast = predict(&history, &releases, day, &params);
        for (k, held) in held.iter_mut().enumerate() {
            let ranking = forecast.get(&isp(k)).cloned().unwrap_or_default();
            let slot = Slot { id: "box".into(), capacity_bytes: cap, peer_url: String::new(), holds: BTreeSet::new() };
            let plan = plan_site("site", day, &[slot], &ranking, &titles, "origin", &PlanParams::default());
            let next: HashSet<usize> = plan[0].titles.iter().map(|t| by_name[t.title.as_str()]).collect();
            let fill: u64 = next.difference(held).map(|&i| cat[i].size).sum();
            *held = next;
            let mut s = Score { egress: fill, ..Score::default() };
            let mut today: BTreeMap<usize, u64> = BTreeMap::new();
            for play in plays.iter().filter(|x| x.day == day && x.isp == k) {
                s.total += play.bytes;
                if held.contains(&play.title) {
                    s.hit += play.bytes;
                } else {
                    s.egress += play.bytes;
                }
                *today.entry(play.title).or_default() += play.bytes;
            }
            history.extend(today.into_iter().map(|(t, bytes)| DailyBytes { day, isp: isp(k), title: cat[t].name.clone(), bytes }));
            if day >= WARMUP {
                score.add(s);
            }
        }
    }
    score
}

fn lru(cat: &[Title], plays: &[Play], p: &Params, cap: u64) -> Score {
    let mut score = Score::default();
    for k in 0..p.isps {
        let mut cache: lru::LruCache<usize, ()> = lru::LruCache::unbounded();
        let mut used = 0u64;
        for play in plays.iter().filter(|x| x.isp == k) {
            let mut s = Score { total: play.bytes, ..Score::default() };
            if cache.get(&play.title).is_some() {
                s.hit = play.bytes;
            } else {
                s.egress = cat[play.title].size;
                if cat[play.title].size <= cap {
                    cache.put(play.title, ());
                    used += cat[play.title].size;
                    while used > cap {
                        match cache.pop_lru() {
                            Some((t, ())) => used -= cat[t].size,
                            None => break,
                        }
                    }
                }
            }
            if play.day >= WARMUP {
                score.add(s);
            }
        }
    }
    score
}

fn belady(cat: &[Title], plays: &[Play], p: &Params, cap: u64) -> Score {
    let mut score = Score::default();
    for k in 0..p.isps {
        let seq: Vec<&Play> = plays.iter().filter(|x| x.isp == k).collect();
        // next[i]: position of the next play of the same title.
        let mut next = vec![usize::MAX; seq.len()];
        let mut last: HashMap<usize, usize> = HashMap::new();
        for i in (0..seq.len()).rev() {
            next[i] = last.get(&seq[i].title).copied().unwrap_or(usize::MAX);
            last.insert(seq[i].title, i);
        }
        let mut by_next: BTreeSet<(usize, usize)> = BTreeSet::new(); // (next use, title)
        let mut next_of: HashMap<usize, usize> = HashMap::new();
        let mut used = 0u64;
        for (i, play) in seq.iter().enumerate() {
            let mut s = Score { total: play.bytes, ..Score::default() };
            if let Some(n) = next_of.remove(&play.title) {
                by_next.remove(&(n, play.title));
                s.hit = play.bytes;
            } else {
                s.egress = cat[play.title].size;
                used += cat[play.title].size;
            }
            next_of.insert(play.title, next[i]);
            by_next.insert((next[i], play.title));
            while used > cap {
                let Some(&(n, t)) = by_next.iter().next_back() else { break };
                by_next.remove(&(n, t));
                next_of.remove(&t);
                used -= cat[t].size;
            }
            if play.day >= WARMUP {
                score.add(s);
            }
        }
    }
    score
}

fn main() {
    let caps: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let caps = if caps.is_empty() { vec![5.0, 10.0, 20.0] } else { caps };
    let p = Params {
        titles: 3000,
        isps: 3,
        days: 30 + WARMUP,
        plays_per_isp_day: 20_000,
        releases_per_day: 3,
        zipf: 0.9,
        half_life: 5.0,
    };
    let mut rng = Rng::new(7);
    let cat = trace::catalogue(&p, &mut rng);
    let plays = trace::plays(&cat, &p, &mut rng);
    let catalogue: u64 = cat.iter().map(|t| t.size).sum();
    println!(
        "{} titles ({:.0} GB), {} ISPs, {} plays/ISP/day, {} releases/day, Zipf {}, half-life {} days; {} days measured after {} of warm-up",
        p.titles,
        catalogue as f64 / 1e9,
        p.isps,
        p.plays_per_isp_day,
        p.releases_per_day,
        p.zipf,
        p.half_life,
        p.days - WARMUP,
        WARMUP
    );
    println!("\n| capacity | policy | byte hit ratio | origin egress per ISP-day |\n| ---: | --- | ---: | ---: |");
    let days = ((p.days - WARMUP) as usize * p.isps) as f64;
    for pct in caps {
        let cap = (catalogue as f64 * pct / 100.0) as u64;
        let rows = [
            ("predictive (Nearcast)", predictive(&cat, &plays, &p, cap)),
            ("LRU", lru(&cat, &plays, &p, cap)),
            ("Belady", belady(&cat, &plays, &p, cap)),
        ];
        for (name, s) in rows {
            println!(
                "| {pct}% ({:.0} GB) | {name} | {:.1}% | {:.1} GB |",
                cap as f64 / 1e9,
                100.0 * s.hit as f64 / s.total as f64,
                s.egress as f64 / 1e9 / days
            );
        }
    }
}
