//! Tomorrow's demand per title per ISP, from play logs.
//!
//! The model (see `docs/prediction.md`): a **level** — the exponentially
//! decayed mean of the title's daily bytes since it first played in that
//! ISP (half-life `half_life_days`) — times a **trend** — the last
//! `recent_days` against the `base_days` before them, smoothed and clamped —
//! and, for announced releases, at least `boost` times the ISP's reference
//! demand (the mean forecast of its top `reference_top` titles).

use std::collections::BTreeMap;

use nearcast_common::Name;

/// One day's bytes of one title in one ISP (play logs and appliance
/// reports are summed into these).
#[derive(Clone, Debug, PartialEq)]
pub struct DailyBytes {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub isp: String,
    pub title: Name,
    pub bytes: u64,
}

/// An announced release: from `day` on, a title expected to be popular.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Release {
    pub title: Name,
    /// `None`: every ISP that appears in the history given to `predict`
    /// (a caller planning for one ISP names it instead).
    #[serde(default)]
    pub isp: Option<String>,
    pub day: i64,
    /// Expected demand as a multiple of the ISP's reference demand.
    pub boost: f64,
}

#[derive(Clone, Debug)]
pub struct ModelParams {
    pub half_life_days: f64,
    /// Days of history considered at most.
    pub window_days: i64,
    pub recent_days: i64,
    pub base_days: i64,
    pub trend_min: f64,
    pub trend_max: f64,
    /// How long after its release day a title keeps its boost.
    pub release_days: i64,
    pub reference_top: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            half_life_days: 3.0,
            window_days: 28,
            recent_days: 3,
            base_days: 7,
            trend_min: 0.5,
            trend_max: 2.0,
            release_days: 7,
            reference_top: 10,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    pub title: Name,
    pub bytes: f64,
}

/// Per ISP, its titles ranked by predicted bytes for `day` (descending;
/// ties by title name, so the ranking is deterministic).
pub fn predict(
    history: &[DailyBytes],
    releases: &[Release],
    day: i64,
    p: &ModelParams,
) -> BTreeMap<String, Vec<Forecast>> {
    // isp → title → day → bytes, within the window.
    let mut series: BTreeMap<&str, BTreeMap<&Name, BTreeMap<i64, u64>>> = BTreeMap::new();
    for r in history.iter().filter(|r| r.day < day && r.day >= day - p.window_days) {
        *series
            .entry(&r.isp)
            .or_default()
            .entry(&r.title)
            .or_default()
            .entry(r.day)
            .or_default() += r.bytes;
    }
    let mut out: BTreeMap<String, Vec<Forecast>> = BTreeMap::new();
    for (isp, titles) in &series {
        let mut ranked: Vec<Forecast> = titles
            .iter()
            .map(|(title, days)| Forecast {
                title: (*title).clone(),
                bytes: level(days, day, p) * trend(days, day, p),
            })
            .collect();
        sort(&mut ranked);
        out.insert(isp.to_string(), ranked);
    }
    // Releases: every ISP named, or all known ISPs for a global release.
    for rel in releases.iter().filter(|r| r.day <= day && day < r.day + p.release_days) {
        let isps: Vec<String> = match &rel.isp {
            Some(i) => vec![i.clone()],
            None => out.keys().cloned().collect(),
        };
        for isp in isps {
            let ranked = out.entry(isp).or_default();
            let top = ranked.len().min(p.reference_top);
            let reference = if top == 0 {
                0.0
            } else {
                ranked[..top].iter().map(|f| f.bytes).sum::<f64>() / top as f64
            };
            let floor = rel.boost * reference;
            match ranked.iter_mut().find(|f| f.title == rel.title) {
                Some(f) => f.bytes = f.bytes.max(floor),
                None => ranked.push(Forecast {
                    title: rel.title.clone(),
                    bytes: floor,
                }),
            }
            sort(ranked);
        }
    }
    out
}

fn sort(v: &mut [Forecast]) {
    v.sort_by(|a, b| b.bytes.total_cmp(&a.bytes).then_with(|| a.title.cmp(&b.title)));
}

/// Decayed mean of daily bytes from the title's first day to yesterday
/// (days without plays count as zero).
fn level(days: &BTreeMap<i64, u64>, day: i64, p: &ModelParams) -> f64 {
    let Some(&first) = days.keys().next() else {
        return 0.0;
    };
    let (mut num, mut den) = (0.0, 0.0);
    for d in first..day {
        let w = 0.5f64.powf((day - 1 - d) as f64 / p.half_life_days);
        num += w * days.get(&d).copied().unwrap_or(0) as f64;
        den += w;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Recent mean over the mean before it, smoothed so tiny titles do not
/// swing, clamped to [trend_min, trend_max]. 1 without a base period.
fn trend(days: &BTreeMap<i64, u64>, day: i64, p: &ModelParams) -> f64 {
    let first = days.keys().next().copied().unwrap_or(day);
    let mean = |from: i64, to: i64| {
        let from = from.max(first);
        if from >= to {
            return None;
        }
        let sum: u64 = (from..to).map(|d| days.get(&d).copied().unwrap_or(0)).sum();
        Some(sum as f64 / (to - from) as f64)
    };
    let recent_start = day - p.recent_days;
    let (Some(recent), Some(base)) = (mean(recent_start, day), mean(recent_start - p.base_days, recent_start)) else {
        return 1.0;
    };
    let smooth = 0.05 * (recent + base) / 2.0 + 1.0;
    ((recent + smooth) / (base + smooth)).clamp(p.trend_min, p.trend_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn rec(day: i64, isp: &str, title: &str, bytes: u64) -> DailyBytes {
        DailyBytes {
            day,
            isp: isp.into(),
            title: n(title),
            bytes,
        }
    }

    fn titles(v: &[Forecast]) -> Vec<&str> {
        v.iter().map(|f| f.title.as_str()).collect()
    }

    #[test]
    fn steady_demand_is_predicted_as_is() {
        let h: Vec<_> = (0..20).map(|d| rec(d, "isp", "a", 1000)).collect();
        let f = &predict(&h, &[], 20, &ModelParams::default())["isp"];
        assert!((f[0].bytes - 1000.0).abs() < 1e-6, "{}", f[0].bytes);
    }

    #[test]
    fn recent_days_weigh_more_and_trends_count() {
        // "old" was big two weeks ago and faded; "new" is rising now.
        let mut h = Vec::new();
        for d in 0..14 {
            h.push(rec(d, "isp", "old", if d < 7 { 10_000 } else { 1_000 }));
            h.push(rec(d, "isp", "new", 500 + 300 * d as u64));
        }
        let f = &predict(&h, &[], 14, &ModelParams::default())["isp"];
        assert_eq!(titles(f), ["new", "old"]);
        let new = f[0].bytes;
        assert!(
            new > 4_400.0,
            "rising title predicted above its last day's level: {new}"
        );
        assert!(f[1].bytes < 2_000.0, "faded title: {}", f[1].bytes);
    }

    #[test]
    fn isps_are_separate_and_missing_days_count_as_zero() {
        let h = vec![rec(0, "a", "t", 1000), rec(9, "b", "t", 1000)];
        let f = predict(&h, &[], 10, &ModelParams::default());
        assert!(f["a"][0].bytes < 200.0, "played once, 10 days ago: {}", f["a"][0].bytes);
        assert!(
            f["b"][0].bytes > 900.0,
            "played yesterday for the first time: {}",
            f["b"][0].bytes
        );
        // Outside the window, history is ignored.
        let f = predict(&[rec(0, "a", "t", 1000)], &[], 100, &ModelParams::default());
        assert!(f.is_empty());
    }

    #[test]
    fn announced_releases_are_boosted() {
        let mut h = Vec::new();
        for d in 0..10 {
            for (t, b) in [("x", 9000), ("y", 3000), ("z", 100)] {
                h.push(rec(d, "isp", t, b));
            }
        }
        let rel = |day| Release {
            title: n("premiere"),
            isp: None,
            day,
            boost: 1.5,
        };
        // Reference: mean of the top titles, (9000 + 3000 + 100) / 3.
        let f = &predict(&h, &[rel(10)], 10, &ModelParams::default())["isp"];
        assert_eq!(titles(f), ["x", "premiere", "y", "z"]);
        assert!((f[1].bytes - 1.5 * 4033.333).abs() < 1.0, "{}", f[1].bytes);
        // Not before its day, and not long after.
        let f = &predict(&h, &[rel(11)], 10, &ModelParams::default())["isp"];
        assert!(!titles(f).contains(&"premiere"));
        let f = &predict(&h, &[rel(1)], 10, &ModelParams::default())["isp"];
        assert!(!titles(f).contains(&"premiere"));
    }

    #[test]
    fn deterministic_ranking_on_ties() {
        let h = vec![rec(0, "i", "b", 5), rec(0, "i", "a", 5), rec(0, "i", "c", 5)];
        let f = &predict(&h, &[], 1, &ModelParams::default())["i"];
        assert_eq!(titles(f), ["a", "b", "c"]);
    }
}
