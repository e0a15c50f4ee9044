//! Reading the Prometheus text format `/metrics` answers: its samples, and the `buildfund_*`
//! metric names written in a dashboard's or an alert's expressions.
use std::collections::{BTreeMap, BTreeSet};

/// One sample line: `name{label="value",…} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Every sample of an exposition (comments and blank lines skipped). Panics, naming the line,
/// on one it cannot read: the format is the service's, a test must notice when it breaks.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("not a Prometheus sample line: {l:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' if key.is_empty() => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' if key.is_empty() => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &inner[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Every `buildfund_…` metric name written in `text` (a dashboard's JSON, an alert file).
pub fn buildfund_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("buildfund_") {
        let start = i + at;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_names_are_read() {
        let text = "# HELP x y\n# TYPE x gauge\nbuildfund_a{pool=\"c\\\"d\",state=\"open\"} 1\nbuildfund_b +Inf\nbuildfund_c{} 2.5\n";
        let s = parse(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("pool"), Some("c\"d"));
        assert_eq!(s[0].label("state"), Some("open"));
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, 2.5);
        let names =
            buildfund_names("sum(rate(buildfund_x_total[5m])) / xbuildfund_no + buildfund_y");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["buildfund_x_total", "buildfund_y"]
        );
    }
}
