//! The Prometheus text exposition format, parsed strictly, and the lookups the metrics
//! tests make.

use std::collections::HashMap;

/// One sample line: `name{k="v",...} value`.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

pub struct Metrics {
    pub samples: Vec<Sample>,
    /// family name → type, from `# TYPE` lines.
    pub types: HashMap<String, String>,
    /// family name → help text, from `# HELP` lines.
    pub helps: HashMap<String, String>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text format strictly: every line is a `# HELP`/`# TYPE` comment or a
/// sample whose family was declared before it.
pub fn parse_metrics(text: &str) -> Metrics {
    let mut m = Metrics {
        samples: Vec::new(),
        types: HashMap::new(),
        helps: HashMap::new(),
    };
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(is_name(name), "bad name in {line:?}");
            assert!(!help.is_empty(), "{line:?}");
            m.helps.insert(name.into(), help.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(is_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(m.helps.contains_key(name), "HELP before TYPE: {line:?}");
            assert!(
                m.types.insert(name.into(), kind.into()).is_none(),
                "dup {line:?}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels close with }");
                    let labels = inner
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label k=v");
                            assert!(is_name(k), "bad label name in {line:?}");
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .unwrap_or_else(|| panic!("unquoted label in {line:?}"));
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            assert!(is_name(name), "bad metric name in {line:?}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| m.types.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(m.types.contains_key(family), "no # TYPE before {line:?}");
            m.samples.push(Sample {
                name: name.into(),
                labels,
                value,
            });
        }
    }
    m
}

impl Metrics {
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        assert_eq!(found.len(), 1, "exactly one {name}{labels:?}");
        found[0].value
    }

    pub fn side(&self, name: &str, side: &str) -> f64 {
        self.get(name, &[("side", side)])
    }

    /// Checks one histogram series: cumulative buckets with increasing `le`, ending at
    /// `+Inf` equal to `_count`.
    pub fn check_histogram(&self, family: &str, side: &str) {
        let buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == format!("{family}_bucket")
                    && s.labels.iter().any(|(k, v)| k == "side" && v == side)
            })
            .map(|s| {
                let le = &s.labels.iter().find(|(k, _)| k == "le").expect("le").1;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("numeric le")
                };
                (le, s.value)
            })
            .collect();
        assert!(buckets.len() >= 2, "{family} {side}: {buckets:?}");
        for w in buckets.windows(2) {
            assert!(w[0].0 < w[1].0, "{family} {side}: le not increasing {w:?}");
            assert!(w[0].1 <= w[1].1, "{family} {side}: not cumulative {w:?}");
        }
        let (last_le, last) = *buckets.last().unwrap();
        assert!(
            last_le.is_infinite(),
            "{family} {side}: last bucket is le=\"+Inf\""
        );
        assert_eq!(last, self.side(&format!("{family}_count"), side));
        assert!(self.side(&format!("{family}_sum"), side) >= 0.0);
    }
}
