//! The misses and costs reports, from the `egress` rows (`store::egress`):
//! bytes and sessions by reason, ISP and title (each reason has its own
//! fix, `misses`), and per day and ISP the bytes from boxes and from the
//! origin, what the origin's cost at the operator's prices and what the
//! boxes' would have cost had the origin served them (saved), with the
//! titles that cost most. Pure functions over rows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::CostsConfig;
use crate::store::{EgressRow, Source};

/// Rows of a report's tables, at most.
pub const TOP: usize = 50;

const GB: f64 = 1e9;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Count {
    pub sessions: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, r: &EgressRow) {
        self.sessions += r.sessions;
        self.bytes += r.bytes;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MissRow {
    pub reason: String,
    pub isp: String,
    pub title: String,
    #[serde(flatten)]
    pub count: Count,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MissesReport {
    pub by_reason: BTreeMap<String, Count>,
    /// Answers that put a box first but not the best one, by reason
    /// (`misses`: sessions only, the bytes came from a box).
    pub detours: BTreeMap<String, Count>,
    pub by_isp: BTreeMap<String, BTreeMap<String, Count>>,
    /// (reason, ISP, title), most bytes first, at most `TOP`.
    pub top: Vec<MissRow>,
}

/// Why the origin served, over `rows`.
pub fn misses(rows: &[EgressRow]) -> MissesReport {
    let mut r = MissesReport::default();
    let mut all: BTreeMap<(&str, &str, &str), Count> = BTreeMap::new();
    for row in rows.iter().filter(|x| x.source == Source::Box && !x.reason.is_empty()) {
        r.detours.entry(row.reason.clone()).or_default().add(row);
    }
    for row in rows.iter().filter(|x| x.source == Source::Origin) {
        r.by_reason.entry(row.reason.clone()).or_default().add(row);
        r.by_isp
            .entry(row.isp.clone())
            .or_default()
            .entry(row.reason.clone())
            .or_default()
            .add(row);
        all.entry((&row.reason, &row.isp, &row.title)).or_default().add(row);
    }
    let mut top: Vec<MissRow> = all
        .into_iter()
        .map(|((reason, isp, title), count)| MissRow {
            reason: reason.into(),
            isp: isp.into(),
            title: title.into(),
            count,
        })
        .collect();
    top.sort_by(|a, b| {
        b.count
            .bytes
            .cmp(&a.count.bytes)
            .then(b.count.sessions.cmp(&a.count.sessions))
    });
    top.truncate(TOP);
    r.top = top;
    r
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayCost {
    pub day: i64,
    /// Empty: viewers whose ISP is not known.
    pub isp: String,
    pub box_bytes: u64,
    pub origin_bytes: u64,
    /// The origin bytes at the ISP's price.
    pub origin_cost: f64,
    /// The box bytes at the same price: what the boxes saved.
    pub saved: f64,
    /// Share of the bytes the boxes served.
    pub offload: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TitleCost {
    pub title: String,
    pub origin_bytes: u64,
    pub origin_cost: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CostsReport {
    pub currency: String,
    /// Per day and ISP, oldest first.
    pub days: Vec<DayCost>,
    pub total_origin_cost: f64,
    pub total_saved: f64,
    /// Most origin egress first, at most `TOP`.
    pub top_titles: Vec<TitleCost>,
}

/// What origin egress cost over `rows`, at `prices`.
pub fn costs(rows: &[EgressRow], prices: &CostsConfig) -> CostsReport {
    let mut days: BTreeMap<(i64, &str), DayCost> = BTreeMap::new();
    let mut titles: BTreeMap<&str, TitleCost> = BTreeMap::new();
    for r in rows {
        let d = days.entry((r.day, &r.isp)).or_insert_with(|| DayCost {
            day: r.day,
            isp: r.isp.clone(),
            ..DayCost::default()
        });
        let price = prices.per_gb(&r.isp);
        match r.source {
            Source::Box => {
                d.box_bytes += r.bytes;
                d.saved += r.bytes as f64 / GB * price;
            }
            Source::Origin => {
                d.origin_bytes += r.bytes;
                d.origin_cost += r.bytes as f64 / GB * price;
                let t = titles.entry(&r.title).or_insert_with(|| TitleCost {
                    title: r.title.clone(),
                    origin_bytes: 0,
                    origin_cost: 0.0,
                });
                t.origin_bytes += r.bytes;
                t.origin_cost += r.bytes as f64 / GB * price;
            }
        }
    }
    let mut report = CostsReport {
        currency: prices.currency.clone(),
        days: days.into_values().collect(),
        ..CostsReport::default()
    };
    for d in report.days.iter_mut() {
        let all = d.box_bytes + d.origin_bytes;
        d.offload = if all == 0 { 0.0 } else { d.box_bytes as f64 / all as f64 };
        report.total_origin_cost += d.origin_cost;
        report.total_saved += d.saved;
    }
    let mut top: Vec<TitleCost> = titles.into_values().collect();
    top.sort_by(|a, b| b.origin_bytes.cmp(&a.origin_bytes).then_with(|| a.title.cmp(&b.title)));
    top.truncate(TOP);
    report.top_titles = top;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: i64, isp: &str, title: &str, source: Source, reason: &str, sessions: u64, bytes: u64) -> EgressRow {
        EgressRow {
            day,
            isp: isp.into(),
            title: title.into(),
            source,
            reason: reason.into(),
            sessions,
            bytes,
        }
    }

    #[test]
    fn costs_at_the_isps_prices_and_misses_by_reason() {
        let rows = [
            row(10, "isp-a", "movie", Source::Box, "", 0, 9_000_000_000),
            row(10, "isp-a", "movie", Source::Origin, "not_filled", 3, 1_000_000_000),
            row(10, "isp-b", "show", Source::Origin, "no_box", 1, 2_000_000_000),
            row(11, "", "show", Source::Origin, "no_prefix", 2, 500_000_000),
        ];
        let prices = CostsConfig {
            currency: "EUR".into(),
            origin_per_gb: 0.01,
            isps: [("isp-a".to_string(), 0.02)].into(),
        };
        let c = costs(&rows, &prices);
        assert_eq!(c.days.len(), 3);
        let a = &c.days[0];
        assert_eq!(
            (a.day, a.isp.as_str(), a.box_bytes, a.origin_bytes),
            (10, "isp-a", 9_000_000_000, 1_000_000_000)
        );
        assert!(
            (a.origin_cost - 0.02).abs() < 1e-12 && (a.saved - 0.18).abs() < 1e-12,
            "{a:?}"
        );
        assert!((a.offload - 0.9).abs() < 1e-12);
        assert!(
            (c.days[1].origin_cost - 0.02).abs() < 1e-12,
            "isp-b at the default price"
        );
        assert!((c.total_origin_cost - 0.045).abs() < 1e-12);
        assert_eq!(c.top_titles[0].title, "show");
        assert_eq!(c.top_titles[0].origin_bytes, 2_500_000_000);
        let m = misses(&rows);
        assert_eq!(
            m.by_reason["not_filled"],
            Count {
                sessions: 3,
                bytes: 1_000_000_000
            }
        );
        assert_eq!(m.by_isp["isp-b"]["no_box"].sessions, 1);
        assert!(!m.by_reason.contains_key(""), "box bytes are not misses");
        assert_eq!(m.top[0].reason, "no_box");
    }
}
