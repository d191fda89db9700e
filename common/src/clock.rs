//! Wall-clock times as live manifests write them: `EXT-X-PROGRAM-DATE-TIME`
//! and DASH `availabilityStartTime` / `UTCTiming` are ISO 8601 in UTC.

/// `2026-12-01T13:05:09.250Z` for `millis` since 1970-01-01 UTC
/// (proleptic Gregorian calendar; times before 1970 are written as 1970).
pub fn iso8601_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        millis % 1000
    )
}

/// The wall clock in seconds since 1970-01-01 UTC, with the fraction (0
/// if the clock is before it): live timing needs better than seconds.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Milliseconds since 1970 of `unix_secs` (fractional), 0 if negative.
pub fn millis_of(unix_secs: f64) -> u64 {
    (unix_secs * 1000.0).round().max(0.0) as u64
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796130309.25 +%FT%T.%3NZ`
        assert_eq!(iso8601_millis(1_796_130_309_250), "2026-12-01T13:05:09.250Z");
        assert_eq!(iso8601_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_millis(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(millis_of(1.2344), 1234);
        assert_eq!(millis_of(-5.0), 0);
    }
}
