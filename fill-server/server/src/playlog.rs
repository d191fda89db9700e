//! Play logs in: one play per line, as JSON Lines or CSV
//! (`time,title,client,bytes[,source]`), where `time` is unix seconds,
//! `client` an IP address (matched to an ISP by prefix) or an ISP name,
//! and `source`, when the log says who served the play, `box` or
//! `origin`. Lines are summed into daily bytes per ISP and title (demand),
//! and plays with a source into the egress the costs report reads. All or
//! nothing: a bad line names its number and nothing is stored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nearcast_common::Name;
use serde::Deserialize;

use crate::predict::DailyBytes;
use crate::steer::View;
use crate::store::{day_of, EgressRow, Source};

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
    #[serde(default)]
    source: Option<Source>,
}

/// A play log's rows: demand, and the egress of plays that name a source.
pub type Parsed = (Vec<DailyBytes>, Vec<EgressRow>, Summary);

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub plays: usize,
    /// Plays whose client matched no ISP.
    pub unmatched: usize,
    pub rows: usize,
}

/// Parses `text` (JSON Lines when a line starts with `{`, CSV otherwise;
/// a CSV header line is skipped) into daily rows.
pub fn parse(text: &str, view: &View) -> Result<Parsed, PlayLogError> {
    let mut sums: BTreeMap<(i64, String, Name), u64> = BTreeMap::new();
    let mut egress = Vec::new();
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
            let ([time, title, client, bytes] | [time, title, client, bytes, _]) = f.as_slice() else {
                return Err(bad(format!("expected 4 or 5 fields, got {}", f.len())));
            };
            let source = match f.get(4).copied() {
                None | Some("") => None,
                Some("box") => Some(Source::Box),
                Some("origin") => Some(Source::Origin),
                Some(other) => return Err(bad(format!("source '{other}' is not box or origin"))),
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
                source,
            }
        };
        summary.plays += 1;
        let isp = match play.client.parse::<IpAddr>() {
            Ok(ip) => view.prefixes.lookup(ip).map(|(_, isp)| isp.clone()),
            Err(_) if isps.contains(play.client.as_str()) => Some(play.client.clone()),
            Err(_) => None,
        };
        if let Some(source) = play.source {
            egress.push(EgressRow {
                day: day_of(play.time),
                isp: isp.clone().unwrap_or_default(),
                title: play.title.to_string(),
                source,
                reason: if source == Source::Origin {
                    "playlog".into()
                } else {
                    String::new()
                },
                sessions: 1,
                bytes: play.bytes,
            });
        }
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
    Ok((rows, egress, summary))
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
        let (rows, egress, s) = parse(text, &view()).unwrap();
        assert!(egress.is_empty(), "no play said who served it");
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
    fn plays_that_name_their_source_are_egress() {
        let text = "86400,movie,198.51.100.7,100,box\n86400,movie,198.51.100.8,40,origin\n\
                    {\"time\":86400,\"title\":\"show\",\"client\":\"192.0.2.1\",\"bytes\":9,\"source\":\"origin\"}\n";
        let (rows, egress, _) = parse(text, &view()).unwrap();
        assert_eq!(rows[0].bytes, 140, "demand counts every play");
        let got: Vec<(&str, Source, &str, u64)> = egress
            .iter()
            .map(|e| (e.isp.as_str(), e.source, e.reason.as_str(), e.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("isp-a", Source::Box, "", 100),
                ("isp-a", Source::Origin, "playlog", 40),
                ("", Source::Origin, "playlog", 9)
            ]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line) in [
            ("1,a,1.2.3.4\n", 1),
            ("1,a,1.2.3.4,5\nx,a,1.2.3.4,5\n", 2),
            ("{\"time\":1}\n", 1),
            ("1,a/b,c,5\n", 1),
            ("1,a,1.2.3.4,5,cdn\n", 1),
        ] {
            assert_eq!(parse(text, &view()).unwrap_err().line, line, "{text}");
        }
    }
}
