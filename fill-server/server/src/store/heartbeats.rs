//! A batch of heartbeats in one transaction (`beats.rs` gathers them), in
//! a few multi-row statements rather than four per beat: at 1,000 beats a
//! second the round trips, not the rows, were PostgreSQL's cost.

use std::collections::{BTreeMap, HashMap};

use nearcast_common::Name;

use super::db::{Conn, Value};
use super::egress::{EgressRow, Source};
use super::sql::json;
use super::{Heartbeat, StoreError};

/// Rows per statement (well under either database's parameter limit).
const CHUNK: usize = 200;

/// `(${from}, …), (…)`: `rows` groups of `width` numbered placeholders.
pub(super) fn placeholders(rows: usize, width: usize, from: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..width).map(|c| format!("${}", from + r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A batch of heartbeats: each appliance's row, then its bytes summed into
/// today's demand of its ISP and into its served total. Rows go in key
/// order (appliances by id, demand by ISP and title), so two replicas'
/// batches upserting the same demand rows wait for each other instead of
/// deadlocking. An appliance that is gone (removed since it authenticated)
/// is skipped, not the batch; a box that beat twice in one batch keeps its
/// last state and both beats' bytes.
pub fn write(c: &mut dyn Conn, beats: &[(String, Heartbeat)], now: u64) -> Result<(), StoreError> {
    let mut last: BTreeMap<&str, &Heartbeat> = BTreeMap::new();
    let mut served: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, hb) in beats {
        last.insert(id, hb);
        *served.entry(id).or_default() += hb.bytes_by_title.values().sum::<u64>();
    }
    let ids: Vec<&str> = last.keys().copied().collect();
    let isps = isps_of(c, &ids)?;
    let known: Vec<(&str, &Heartbeat)> = last.into_iter().filter(|(id, _)| isps.contains_key(*id)).collect();
    for chunk in known.chunks(CHUNK) {
        // A derived table both databases read: SELECTs joined by UNION ALL.
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "SELECT CAST(${} AS TEXT) AS id, CAST(${} AS TEXT) AS hb",
                    2 + 2 * i,
                    3 + 2 * i
                )
            })
            .collect();
        let sql = format!(
            "UPDATE appliances SET heartbeat = v.hb, last_heartbeat = $1 FROM ({}) AS v WHERE appliances.id = v.id",
            rows.join(" UNION ALL ")
        );
        let mut params = vec![Value::Int(now as i64)];
        for (id, hb) in chunk {
            params.push((*id).into());
            params.push(json(&stored(hb)));
        }
        c.execute(&sql, &params)?;
    }
    let served: Vec<(&str, u64)> = served.into_iter().filter(|(id, _)| isps.contains_key(*id)).collect();
    for chunk in served.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO served (appliance, bytes) VALUES {}
             ON CONFLICT (appliance) DO UPDATE SET bytes = served.bytes + excluded.bytes",
            placeholders(chunk.len(), 2, 1)
        );
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|(id, n)| [(*id).into(), Value::Int((*n).min(i64::MAX as u64) as i64)])
            .collect();
        c.execute(&sql, &params)?;
    }
    add_demand(c, beats, &isps, super::day_of(now))?;
    super::egress::add(c, &box_egress(beats, &isps, super::day_of(now)))?;
    super::playback::add(c, beats, &isps, now)
}

/// The beats' bytes as the boxes' egress of the day.
fn box_egress(beats: &[(String, Heartbeat)], isps: &HashMap<String, Option<String>>, day: i64) -> Vec<EgressRow> {
    let mut rows = Vec::new();
    for (id, hb) in beats {
        let Some(Some(isp)) = isps.get(id.as_str()) else {
            continue;
        };
        rows.extend(hb.bytes_by_title.iter().map(|(title, &bytes)| EgressRow {
            day,
            isp: isp.clone(),
            title: title.to_string(),
            source: Source::Box,
            reason: String::new(),
            sessions: 0,
            bytes,
        }));
    }
    rows
}

/// The beat as the appliance's row keeps it: its sessions are summed into
/// `playback`, not kept (a beat may carry thousands).
fn stored(hb: &Heartbeat) -> std::borrow::Cow<'_, Heartbeat> {
    match hb.playback.as_ref().filter(|p| !p.sessions.is_empty()) {
        None => std::borrow::Cow::Borrowed(hb),
        Some(p) => std::borrow::Cow::Owned(Heartbeat {
            playback: Some(nearcast_common::playback::Playback {
                sessions: Vec::new(),
                ..p.clone()
            }),
            ..hb.clone()
        }),
    }
}

/// Today's bytes per (ISP, title) of the beats, added in key order.
fn add_demand(
    c: &mut dyn Conn,
    beats: &[(String, Heartbeat)],
    isps: &HashMap<String, Option<String>>,
    day: i64,
) -> Result<(), StoreError> {
    let mut demand: BTreeMap<(&str, &Name), u64> = BTreeMap::new();
    for (id, hb) in beats {
        let Some(Some(isp)) = isps.get(id.as_str()) else {
            continue;
        };
        for (title, bytes) in &hb.bytes_by_title {
            *demand.entry((isp, title)).or_default() += bytes;
        }
    }
    let rows: Vec<((&str, &Name), u64)> = demand.into_iter().collect();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO daily_bytes (day, isp, title, bytes) VALUES {}
             ON CONFLICT (day, isp, title) DO UPDATE SET bytes = daily_bytes.bytes + excluded.bytes",
            placeholders(chunk.len(), 4, 1)
        );
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|((isp, title), n)| {
                [
                    Value::Int(day),
                    (*isp).into(),
                    (*title).into(),
                    Value::Int((*n).min(i64::MAX as u64) as i64),
                ]
            })
            .collect();
        c.execute(&sql, &params)?;
    }
    Ok(())
}

/// Each known appliance of `ids` and its ISP (`None` while it is in no
/// site); an unknown id is absent.
fn isps_of(c: &mut dyn Conn, ids: &[&str]) -> Result<HashMap<String, Option<String>>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT appliances.id, sites.isp FROM appliances LEFT JOIN sites ON sites.name = appliances.site
             WHERE appliances.id IN ({})",
            list.join(", ")
        );
        let params: Vec<Value> = chunk.iter().map(|id| (*id).into()).collect();
        for row in c.query(&sql, &params)? {
            out.insert(row[0].text()?, row[1].opt_text()?);
        }
    }
    Ok(out)
}
