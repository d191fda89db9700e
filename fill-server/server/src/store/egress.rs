//! Bytes that left for viewers, per day, ISP, title and source: from the
//! boxes (their heartbeats' bytes per title) or from the origin (sampled
//! from the origin engine and attributed to why steering sent viewers
//! there, `misses`), and from operators' play logs that say which served.
//! What the misses and costs reports are made of.

use std::collections::BTreeMap;

use super::db::{Conn, Value};
use super::heartbeats::placeholders;
use super::StoreError;

/// Where bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Box,
    Origin,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Box => "box",
            Source::Origin => "origin",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "box" => Some(Source::Box),
            "origin" => Some(Source::Origin),
            _ => None,
        }
    }
}

/// One (day, ISP, title, source, reason)'s sums.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EgressRow {
    pub day: i64,
    /// Empty when the viewers' ISP is not known.
    pub isp: String,
    pub title: String,
    pub source: Source,
    /// Why the origin served (`misses::Reason`); empty for boxes.
    pub reason: String,
    /// Steering answers (or plays) that sent viewers there.
    pub sessions: u64,
    pub bytes: u64,
}

const CHUNK: usize = 100;

fn int(n: u64) -> Value {
    Value::Int(n.min(i64::MAX as u64) as i64)
}

/// A row's key: day, ISP, title, source, reason.
type Key<'a> = (i64, &'a str, &'a str, Source, &'a str);

/// Adds `rows` (summed first, then upserted in key order).
pub fn add(c: &mut dyn Conn, rows: &[EgressRow]) -> Result<(), StoreError> {
    let mut sums: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let s = sums.entry((r.day, &r.isp, &r.title, r.source, &r.reason)).or_default();
        s.0 += r.sessions;
        s.1 += r.bytes;
    }
    let sums: Vec<_> = sums.into_iter().collect();
    for chunk in sums.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO egress (day, isp, title, source, reason, sessions, bytes) VALUES {}
             ON CONFLICT (day, isp, title, source, reason) DO UPDATE SET
             sessions = egress.sessions + excluded.sessions, bytes = egress.bytes + excluded.bytes",
            placeholders(chunk.len(), 7, 1)
        );
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|((day, isp, title, source, reason), (sessions, bytes))| {
                [
                    Value::Int(*day),
                    (*isp).into(),
                    (*title).into(),
                    source.name().into(),
                    (*reason).into(),
                    int(*sessions),
                    int(*bytes),
                ]
            })
            .collect();
        c.execute(&sql, &params)?;
    }
    Ok(())
}

/// Rows from `from_day` on.
pub fn since(c: &mut dyn Conn, from_day: i64) -> Result<Vec<EgressRow>, StoreError> {
    let rows = c.query(
        "SELECT day, isp, title, source, reason, sessions, bytes FROM egress WHERE day >= $1",
        &[Value::Int(from_day)],
    )?;
    rows.iter()
        .map(|r| {
            let source = r[3].text()?;
            Ok(EgressRow {
                day: r[0].int()?,
                isp: r[1].text()?,
                title: r[2].text()?,
                source: Source::parse(&source).ok_or_else(|| StoreError::Corrupt(format!("egress source {source}")))?,
                reason: r[4].text()?,
                sessions: r[5].int()?.max(0) as u64,
                bytes: r[6].int()?.max(0) as u64,
            })
        })
        .collect()
}
