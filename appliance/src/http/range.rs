//! Byte ranges (RFC 9110 §14) and conditional requests (RFC 9110 §13).
//!
//! One satisfiable range gets a 206; several ranges get the whole body with
//! 200, which RFC 9110 allows and which players never need to avoid.

use std::time::SystemTime;

use super::request::trim;

/// What to send for a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// The whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// Nothing of the file matches, 416.
    Unsatisfiable,
}

/// Validators of the file being served.
pub struct Validators<'a> {
    /// The strong entity tag, with its quotes.
    pub etag: &'a [u8],
    pub modified: SystemTime,
}

/// Decides the range to send from the `Range` and `If-Range` headers.
pub fn evaluate_range(range: Option<&[u8]>, if_range: Option<&[u8]>, len: u64, v: &Validators) -> RangeOutcome {
    let Some(range) = range else {
        return RangeOutcome::Full;
    };
    if let Some(cond) = if_range {
        if !if_range_holds(trim(cond), v) {
            return RangeOutcome::Full;
        }
    }
    let Some(spec) = strip_unit(trim(range)) else {
        return RangeOutcome::Full; // unknown unit: ignore the header
    };
    let mut satisfiable: Option<(u64, u64)> = None;
    let mut count = 0usize;
    for part in spec.split(|&b| b == b',').map(trim) {
        if part.is_empty() {
            continue; // "bytes=0-1,,2-3" is tolerated as in RFC 9110's list rules
        }
        count += 1;
        match parse_one(part, len) {
            Err(()) => return RangeOutcome::Full, // invalid syntax: ignore the header
            Ok(Some(r)) => satisfiable = satisfiable.or(Some(r)),
            Ok(None) => {}
        }
    }
    match (count, satisfiable) {
        (0, _) => RangeOutcome::Full,
        (_, None) => RangeOutcome::Unsatisfiable,
        (1, Some((start, end))) => RangeOutcome::Partial { start, end },
        (_, Some(_)) => RangeOutcome::Full,
    }
}

fn strip_unit(v: &[u8]) -> Option<&[u8]> {
    let (unit, rest) = v.split_at(v.iter().position(|&b| b == b'=')?);
    trim(unit).eq_ignore_ascii_case(b"bytes").then(|| &rest[1..])
}

/// `Ok(Some((first, last)))` for a satisfiable range, `Ok(None)` for a
/// valid but unsatisfiable one, `Err` for bad syntax.
fn parse_one(part: &[u8], len: u64) -> Result<Option<(u64, u64)>, ()> {
    let dash = part.iter().position(|&b| b == b'-').ok_or(())?;
    let (first, last) = (trim(&part[..dash]), trim(&part[dash + 1..]));
    if first.is_empty() {
        let n = number(last)?;
        if n == 0 || len == 0 {
            return Ok(None);
        }
        return Ok(Some((len - n.min(len), len - 1)));
    }
    let first = number(first)?;
    let last = if last.is_empty() { None } else { Some(number(last)?) };
    if let Some(l) = last {
        if l < first {
            return Err(());
        }
    }
    if first >= len {
        return Ok(None);
    }
    Ok(Some((first, last.map_or(len - 1, |l| l.min(len - 1)))))
}

fn number(v: &[u8]) -> Result<u64, ()> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// If-Range: a strong ETag that matches, or an HTTP-date equal to
/// Last-Modified.
fn if_range_holds(cond: &[u8], v: &Validators) -> bool {
    if cond.starts_with(b"\"") || cond.starts_with(b"W/") {
        return cond == v.etag;
    }
    parse_date(cond).is_some_and(|d| d == whole_seconds(v.modified))
}

/// Whether a GET/HEAD with these headers gets 304 Not Modified.
/// If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
pub fn not_modified(if_none_match: Option<&[u8]>, if_modified_since: Option<&[u8]>, v: &Validators) -> bool {
    if let Some(inm) = if_none_match {
        let inm = trim(inm);
        if inm == b"*" {
            return true;
        }
        let ours = weak_opaque(v.etag);
        return inm.split(|&b| b == b',').map(trim).any(|tag| weak_opaque(tag) == ours);
    }
    match if_modified_since.and_then(|d| parse_date(trim(d))) {
        Some(since) => whole_seconds(v.modified) <= since,
        None => false,
    }
}

fn weak_opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

fn parse_date(v: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(v).ok()?).ok()
}

/// HTTP dates have one-second resolution.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v() -> Validators<'static> {
        Validators {
            etag: b"\"abc\"",
            modified: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
        }
    }

    fn r(h: &str, len: u64) -> RangeOutcome {
        evaluate_range(Some(h.as_bytes()), None, len, &v())
    }

    use RangeOutcome::*;

    #[test]
    fn single_ranges() {
        assert_eq!(r("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=90-1000", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(r("bytes=99-99", 100), Partial { start: 99, end: 99 });
        assert_eq!(r("Bytes = 5-5", 100), Partial { start: 5, end: 5 });
    }

    #[test]
    fn unsatisfiable_and_invalid() {
        assert_eq!(r("bytes=100-", 100), Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Unsatisfiable);
        assert_eq!(r("bytes=100-200,300-", 100), Unsatisfiable);
        // Invalid syntax is ignored: the whole file.
        for bad in [
            "bytes=9-1",
            "bytes=a-b",
            "bytes=",
            "items=0-1",
            "bytes=1",
            "bytes=--1",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(r(bad, 100), Full, "{bad}");
        }
    }

    #[test]
    fn several_ranges_get_the_whole_file() {
        assert_eq!(r("bytes=0-1,5-6", 100), Full);
        assert_eq!(r("bytes=0-1, 500-600", 100), Full);
    }

    #[test]
    fn if_range() {
        let lm = httpdate::fmt_http_date(v().modified);
        let rng = Some(&b"bytes=0-0"[..]);
        let eval = |c: &str| evaluate_range(rng, Some(c.as_bytes()), 10, &v());
        assert_eq!(eval("\"abc\""), Partial { start: 0, end: 0 });
        assert_eq!(eval("\"old\""), Full);
        assert_eq!(eval("W/\"abc\""), Full, "weak tags never match If-Range");
        assert_eq!(eval(&lm), Partial { start: 0, end: 0 });
        assert_eq!(eval("Sun, 06 Nov 1994 08:49:37 GMT"), Full);
        assert_eq!(eval("garbage"), Full);
    }

    #[test]
    fn conditionals() {
        let lm = httpdate::fmt_http_date(v().modified);
        assert!(not_modified(Some(b"\"abc\""), None, &v()));
        assert!(not_modified(Some(b"\"x\", W/\"abc\""), None, &v()));
        assert!(not_modified(Some(b"*"), None, &v()));
        assert!(
            !not_modified(Some(b"\"x\""), Some(lm.as_bytes()), &v()),
            "INM wins over IMS"
        );
        assert!(not_modified(None, Some(lm.as_bytes()), &v()));
        assert!(!not_modified(None, Some(b"Sun, 06 Nov 1994 08:49:37 GMT"), &v()));
        assert!(!not_modified(None, Some(b"not a date"), &v()));
    }
}
