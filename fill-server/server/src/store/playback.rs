//! What boxes' heartbeats say of playback (CMCD sessions, failed
//! answers), summed per hour, box and title in the heartbeat batch's own
//! transaction: one upsert per (box, title) of the batch, however many
//! sessions the beats carry. The row with an empty title holds the box's
//! answers and failures (the appliance counts those per box) and the
//! bytes it served (the dashboard's bytes per box per hour).

use std::collections::{BTreeMap, HashMap};

use super::db::{Conn, Value};
use super::heartbeats::placeholders;
use super::{Heartbeat, StoreError};

/// Rows per statement.
const CHUNK: usize = 100;

/// One (hour, box, title)'s sums.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaybackRow {
    /// Unix hour (seconds / 3600).
    pub hour: i64,
    pub appliance: String,
    pub isp: String,
    /// Empty for the box's own row (answers, failed).
    pub title: String,
    pub sessions: u64,
    pub media: u64,
    pub starved: u64,
    pub bitrate_sum: u64,
    pub bitrate_samples: u64,
    pub startup_sum_ms: u64,
    pub startups: u64,
    pub answers: u64,
    pub failed: u64,
    /// Body bytes the box served (its row only).
    pub bytes: u64,
    /// The sessions' measured throughput (CMCD `mtp`) summed over the
    /// beats that carried it, and how many did.
    pub throughput_sum: u64,
    pub throughput_samples: u64,
}

const COLUMNS: [&str; 16] = [
    "hour",
    "appliance",
    "isp",
    "title",
    "sessions",
    "media",
    "starved",
    "bitrate_sum",
    "bitrate_samples",
    "startup_sum_ms",
    "startups",
    "answers",
    "failed",
    "bytes",
    "throughput_sum",
    "throughput_samples",
];

fn int(n: u64) -> Value {
    Value::Int(n.min(i64::MAX as u64) as i64)
}

/// The beats' playback as rows (boxes in no ISP are skipped).
fn rows(beats: &[(String, Heartbeat)], isps: &HashMap<String, Option<String>>, hour: i64) -> Vec<PlaybackRow> {
    let mut rows: BTreeMap<(&str, String), PlaybackRow> = BTreeMap::new();
    for (id, hb) in beats {
        let Some(Some(isp)) = isps.get(id.as_str()) else {
            continue;
        };
        let new_row = |title: String| PlaybackRow {
            hour,
            appliance: id.clone(),
            isp: isp.clone(),
            title,
            ..PlaybackRow::default()
        };
        let own = rows
            .entry((id.as_str(), String::new()))
            .or_insert_with(|| new_row(String::new()));
        own.bytes += hb.bytes_by_title.values().sum::<u64>();
        let Some(p) = hb.playback.as_ref() else {
            continue;
        };
        own.answers += p.requests;
        own.failed += p.errors;
        for (title, n) in &p.failed_by_title {
            let r = rows
                .entry((id.as_str(), title.to_string()))
                .or_insert_with(|| new_row(title.to_string()));
            r.failed += n;
        }
        for s in &p.sessions {
            let title = s.title.as_ref().map(|t| t.to_string()).unwrap_or_default();
            let r = rows
                .entry((id.as_str(), title.clone()))
                .or_insert_with(|| new_row(title));
            r.sessions += u64::from(s.first);
            r.media += s.media_requests;
            r.starved += s.starved;
            r.bitrate_sum += s.bitrate_sum_kbps;
            r.bitrate_samples += s.bitrate_samples;
            if let Some(kbps) = s.measured_kbps {
                r.throughput_sum += u64::from(kbps);
                r.throughput_samples += 1;
            }
            if let Some(ms) = s.startup_ms {
                r.startup_sum_ms += u64::from(ms);
                r.startups += 1;
            }
        }
    }
    rows.into_values().collect()
}

/// Adds the beats' playback to this hour's rows, in key order (so two
/// replicas' batches wait for each other rather than deadlock).
pub fn add(
    c: &mut dyn Conn,
    beats: &[(String, Heartbeat)],
    isps: &HashMap<String, Option<String>>,
    now: u64,
) -> Result<(), StoreError> {
    let rows = rows(beats, isps, (now / 3600) as i64);
    let sums: Vec<String> = COLUMNS[4..]
        .iter()
        .map(|c| format!("{c} = playback.{c} + excluded.{c}"))
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO playback ({}) VALUES {} ON CONFLICT (hour, appliance, title) DO UPDATE SET {}",
            COLUMNS.join(", "),
            placeholders(chunk.len(), COLUMNS.len(), 1),
            sums.join(", ")
        );
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|r| {
                [
                    Value::Int(r.hour),
                    r.appliance.as_str().into(),
                    r.isp.as_str().into(),
                    r.title.as_str().into(),
                    int(r.sessions),
                    int(r.media),
                    int(r.starved),
                    int(r.bitrate_sum),
                    int(r.bitrate_samples),
                    int(r.startup_sum_ms),
                    int(r.startups),
                    int(r.answers),
                    int(r.failed),
                    int(r.bytes),
                    int(r.throughput_sum),
                    int(r.throughput_samples),
                ]
            })
            .collect();
        c.execute(&sql, &params)?;
    }
    Ok(())
}

/// Rows from `from_hour` on.
pub fn since(c: &mut dyn Conn, from_hour: i64) -> Result<Vec<PlaybackRow>, StoreError> {
    let sql = format!("SELECT {} FROM playback WHERE hour >= $1", COLUMNS.join(", "));
    let rows = c.query(&sql, &[Value::Int(from_hour)])?;
    let n = |v: &Value| v.int().map(|i| i.max(0) as u64);
    rows.iter()
        .map(|r| {
            Ok(PlaybackRow {
                hour: r[0].int()?,
                appliance: r[1].text()?,
                isp: r[2].text()?,
                title: r[3].text()?,
                sessions: n(&r[4])?,
                media: n(&r[5])?,
                starved: n(&r[6])?,
                bitrate_sum: n(&r[7])?,
                bitrate_samples: n(&r[8])?,
                startup_sum_ms: n(&r[9])?,
                startups: n(&r[10])?,
                answers: n(&r[11])?,
                failed: n(&r[12])?,
                bytes: n(&r[13])?,
                throughput_sum: n(&r[14])?,
                throughput_samples: n(&r[15])?,
            })
        })
        .collect()
}
