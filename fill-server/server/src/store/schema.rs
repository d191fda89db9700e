//! The tables (portable SQL: `BIGINT`, `TEXT`; the change log's own table
//! is in `changes`), and the parser of the prefix lines operators import.

use super::StoreError;

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS isps (name TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS isp_asns (asn BIGINT PRIMARY KEY, isp TEXT NOT NULL REFERENCES isps(name))",
    "CREATE TABLE IF NOT EXISTS prefixes (prefix TEXT PRIMARY KEY, asn BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sites (name TEXT PRIMARY KEY, isp TEXT NOT NULL REFERENCES isps(name))",
    "CREATE TABLE IF NOT EXISTS appliances (
        id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        site TEXT REFERENCES sites(name),
        registration TEXT,
        registered_at BIGINT,
        last_heartbeat BIGINT,
        heartbeat TEXT,
        inventory TEXT
    )",
    "CREATE TABLE IF NOT EXISTS bgp_routes (
        appliance TEXT PRIMARY KEY REFERENCES appliances(id),
        session TEXT NOT NULL,
        routes TEXT NOT NULL,
        updated BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS qoe_events (
        received BIGINT NOT NULL, session TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL,
        at_ms BIGINT NOT NULL, value BIGINT NOT NULL, host TEXT NOT NULL, isp TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS releases (
        title TEXT NOT NULL, isp TEXT NOT NULL, day BIGINT NOT NULL, boost_milli BIGINT NOT NULL,
        PRIMARY KEY (title, isp)
    )",
    "CREATE TABLE IF NOT EXISTS os_targets (
        appliance TEXT PRIMARY KEY REFERENCES appliances(id), release TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS rollouts (
        id TEXT PRIMARY KEY, spec TEXT NOT NULL, progress TEXT NOT NULL, created BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS live_events (name TEXT PRIMARY KEY, spec TEXT NOT NULL, ended BIGINT)",
    "CREATE TABLE IF NOT EXISTS served (appliance TEXT PRIMARY KEY, bytes BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS daily_bytes (
        day BIGINT NOT NULL, isp TEXT NOT NULL, title TEXT NOT NULL, bytes BIGINT NOT NULL,
        PRIMARY KEY (day, isp, title)
    )",
    "CREATE TABLE IF NOT EXISTS playback (
        hour BIGINT NOT NULL, appliance TEXT NOT NULL, isp TEXT NOT NULL, title TEXT NOT NULL,
        sessions BIGINT NOT NULL, media BIGINT NOT NULL, starved BIGINT NOT NULL,
        bitrate_sum BIGINT NOT NULL, bitrate_samples BIGINT NOT NULL,
        startup_sum_ms BIGINT NOT NULL, startups BIGINT NOT NULL,
        answers BIGINT NOT NULL, failed BIGINT NOT NULL, bytes BIGINT NOT NULL,
        throughput_sum BIGINT NOT NULL, throughput_samples BIGINT NOT NULL,
        PRIMARY KEY (hour, appliance, title)
    )",
    "CREATE TABLE IF NOT EXISTS egress (
        day BIGINT NOT NULL, isp TEXT NOT NULL, title TEXT NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL,
        sessions BIGINT NOT NULL, bytes BIGINT NOT NULL,
        PRIMARY KEY (day, isp, title, source, reason)
    )",
];

/// Parses `PREFIX ASN` lines (`#` comments, an `AS` before the number
/// allowed); the first bad line is an error naming it.
pub(super) fn parse_prefixes(text: &str) -> Result<Vec<(String, u32)>, StoreError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| StoreError::Import {
            line: i + 1,
            reason: reason.to_string(),
        };
        let mut parts = line.split_whitespace();
        let (Some(prefix), Some(asn), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected 'PREFIX ASN'"));
        };
        let prefix: nearcast_common::IpPrefix = prefix
            .parse()
            .map_err(|e: nearcast_common::PrefixError| bad(&e.to_string()))?;
        let asn: u32 = asn
            .trim_start_matches("AS")
            .parse()
            .map_err(|_| bad("ASN is not a number"))?;
        rows.push((prefix.to_string(), asn));
    }
    Ok(rows)
}
