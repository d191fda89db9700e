//! Reading Prometheus text in tests: `metric(page, "name{k=\"v\"}")` is the
//! value of the sample named exactly `name` whose labels include every
//! `k="v"` given (the others, like a disk's `path`, may be anything).

/// One sample line of an exposition.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses `name{k="v",…}` (labels optional) as written in the text format;
/// `None` if it is not that.
fn parse_series(s: &str) -> Option<(String, Vec<(String, String)>)> {
    let Some((name, rest)) = s.split_once('{') else {
        return Some((s.to_string(), Vec::new()));
    };
    let mut rest = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((k.to_string(), value));
        rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
    }
    Some((name.to_string(), labels))
}

/// Every sample of a page (comments and blank lines skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = parse_series(series)?;
            Some(Sample {
                name,
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The value of the first sample `selector` picks (see the module doc).
/// Panics on a selector that is not `name{k="v",…}`: a typo in a test must
/// not read as a missing series.
pub fn metric(text: &str, selector: &str) -> Option<f64> {
    let (name, want) = parse_series(selector).unwrap_or_else(|| panic!("bad metric selector {selector}"));
    samples(text)
        .into_iter()
        .find(|s| s.name == name && want.iter().all(|w| s.labels.contains(w)))
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP a_total A.\n# TYPE a_total counter\n\
        a_total{disk=\"0\",path=\"/x \\\"y\\\"\"} 3\na_total{disk=\"1\",path=\"/z\"} 4\n\
        a_total_sum 9\nup 1\n";

    #[test]
    fn picks_by_exact_name_and_label_subset() {
        assert_eq!(metric(PAGE, "a_total{disk=\"1\"}"), Some(4.0));
        assert_eq!(metric(PAGE, "a_total{path=\"/x \\\"y\\\"\"}"), Some(3.0));
        assert_eq!(metric(PAGE, "a_total_sum"), Some(9.0));
        assert_eq!(metric(PAGE, "up"), Some(1.0));
        assert_eq!(metric(PAGE, "a"), None);
        assert_eq!(metric(PAGE, "a_total{disk=\"2\"}"), None);
    }

    #[test]
    #[should_panic(expected = "bad metric selector")]
    fn an_unclosed_selector_is_a_test_bug() {
        metric(PAGE, "a_total{disk=\"0\"");
    }
}
