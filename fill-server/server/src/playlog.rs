//! Play logs in: one play per line, as JSON Lines or CSV
//! (`time,title,client,bytes`), where `time` is unix seconds and `client`
//! an IP address (matched to an ISP by prefix) or an ISP name. Lines are
//! summed into daily bytes per ISP and title. All or nothing: a bad line
//! names its number and nothing is stored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nearcast_common::Name;
use serde::Deserialize;

use crate::predict::DailyBytes;
use crate::steer::View;
use crate::store::day_of;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct PlayLogError {
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
struct Play {
    time: u64,
    title: Name,
    client: String,
    bytes: u64,
}

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub plays: usize,
    /// Plays whose client matched no ISP.
    pub unmatched: usize,
    pub rows: usize,
}

/// Parses `text` (JSON Lines when a line starts with `{`, CSV otherwise;
/// a CSV header line is skipped) into daily rows.
pub fn parse(text: &str, view: &View) -> Result<(Vec<DailyBytes>, Summary), PlayLogError> {
    let mut sums: BTreeMap<(i64, String, Name), u64> = BTreeMap::new();
    let mut summary = Summary::default();
    let isps: std::collections::BTreeSet<&str> = view.boxes.iter().map(|b| b.isp.as_str()).collect();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let bad = |reason: String| PlayLogError { line: i + 1, reason };
        if line.is_empty() || (i == 0 && line.starts_with("time,")) {
            continue;
        }
        let play: Play = if line.starts_with('{') {
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?
        } else {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let [time, title, client, bytes] = f.as_slice() else {
                return Err(bad(format!("expected 4 fields, got {}", f.len())));
            };
            Play {
                time: time
                    .parse()
                    .map_err(|_| bad(format!("time '{time}' is not unix seconds")))?,
                title: Name::new(*title).map_err(|e| bad(e.to_string()))?,
                client: client.to_string(),
                bytes: bytes
                    .parse()
                    .map_err(|_| bad(format!("bytes '{bytes}' is not a number")))?,
            }
        };
        summary.plays += 1;
        let isp = match play.client.parse::<IpAddr>() {
            Ok(ip) => view.prefixes.lookup(ip).map(|(_, isp)| isp.clone()),
            Err(_) if isps.contains(play.client.as_str()) => Some(play.client.clone()),
            Err(_) => None,
        };
        let Some(isp) = isp else {
            summary.unmatched += 1;
            continue;
        };
        *sums.entry((day_of(play.time), isp, play.title)).or_default() += play.bytes;
    }
    let rows: Vec<DailyBytes> = sums
        .into_iter()
        .map(|((day, isp, title), bytes)| DailyBytes { day, isp, title, bytes })
        .collect();
    summary.rows = rows.len();
    Ok((rows, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearcast_common::PrefixTable;

    fn view() -> View {
        let mut prefixes = PrefixTable::new();
        prefixes.insert("198.51.100.0/24".parse().unwrap(), "isp-a".to_string());
        View::new(std::sync::Arc::new(prefixes), Vec::new(), String::new(), 0, 4)
    }

    #[test]
    fn csv_and_jsonl_sum_per_day() {
        let text = "time,title,client,bytes\n86400,movie,198.51.100.7,100\n86500,movie,198.51.100.8,50\n\
                    {\"time\":172800,\"title\":\"movie\",\"client\":\"198.51.100.9\",\"bytes\":7}\n90000,movie,192.0.2.1,999\n";
        let (rows, s) = parse(text, &view()).unwrap();
        assert_eq!(
            s,
            Summary {
                plays: 4,
                unmatched: 1,
                rows: 2
            }
        );
        assert_eq!((rows[0].day, rows[0].bytes), (1, 150));
        assert_eq!((rows[1].day, rows[1].bytes), (2, 7));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line) in [
            ("1,a,1.2.3.4\n", 1),
            ("1,a,1.2.3.4,5\nx,a,1.2.3.4,5\n", 2),
            ("{\"time\":1}\n", 1),
            ("1,a/b,c,5\n", 1),
        ] {
            assert_eq!(parse(text, &view()).unwrap_err().line, line, "{text}");
        }
    }
}
