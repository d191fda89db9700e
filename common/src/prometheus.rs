//! Prometheus text exposition (format 0.0.4), written one way by every
//! part: the appliance, the agent, the hardware monitor and the fill
//! server. A family is its `# HELP` and `# TYPE` lines, then its samples;
//! label values are escaped (backslash, quote, newline), so a disk path or
//! an interface name with a quote in it cannot break the page.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, a sum and a count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page of metrics being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Escapes a label value.
fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(4096),
        }
    }

    /// Starts a family: its help text (backslashes and newlines escaped)
    /// and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample, `name{k="v",…} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family with one sample and no labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// A histogram's samples: cumulative `counts` (one per bound in
    /// `bounds`, then +Inf), and the sum.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative)
    }

    /// What a part's page adds (a page built elsewhere, as text).
    pub fn append(&mut self, text: &str) -> &mut Self {
        self.out.push_str(text);
        self
    }

    /// The page's text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Things.\nMore.").sample(
            "x_total",
            &[("path", "/a\"b\\c\nd"), ("disk", "0")],
            3,
        );
        e.single("up", Kind::Gauge, "Up.", 1);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total Things.\\nMore.\n# TYPE x_total counter\nx_total{path=\"/a\\\"b\\\\c\\nd\",disk=\"0\"} 3\n\
             # HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut e = Exposition::new();
        e.histogram("t_seconds", &[("disk", "0")], &[0.1, 1.0], &[2, 3, 1], 2.5);
        let text = e.finish();
        assert!(text.contains("t_seconds_bucket{disk=\"0\",le=\"0.1\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{disk=\"0\",le=\"1\"} 5\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{disk=\"0\",le=\"+Inf\"} 6\n"), "{text}");
        assert!(text.contains("t_seconds_count{disk=\"0\"} 6\n"), "{text}");
    }
}
