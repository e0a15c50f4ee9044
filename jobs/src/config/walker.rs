//! The one walker over the raw TOML table: typed readers that collect every problem with its
//! key path instead of stopping at the first. The sections (one file each) are `impl Walker`
//! blocks built on these readers.
use crate::calendar::parse_instant;
use crate::money::parse_cents;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use toml::{Table, Value};

/// The walker that turns a raw TOML table into a [`super::Config`], collecting problems.
pub(super) struct Walker {
    pub(super) problems: Vec<String>,
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Walker {
    pub(super) fn problem(&mut self, path: impl AsRef<str>, msg: impl fmt::Display) {
        self.problems.push(format!("{}: {msg}", path.as_ref()));
    }

    /// Reports keys of `t` that are not in `known`.
    pub(super) fn unknown_keys(&mut self, t: &Table, path: &str, known: &[&str]) {
        for key in t.keys() {
            if !known.contains(&key.as_str()) {
                self.problem(
                    join(path, key),
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    pub(super) fn string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match t.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn required_string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        if !t.contains_key(key) {
            self.problem(join(path, key), "missing");
            return None;
        }
        let s = self.string(t, path, key)?;
        if s.trim().is_empty() {
            self.problem(join(path, key), "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(super) fn integer(
        &mut self,
        t: &Table,
        path: &str,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        match t.get(key)? {
            Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            Value::Integer(i) => {
                self.problem(
                    join(path, key),
                    format!("{i} is not between {min} and {max}"),
                );
                None
            }
            other => {
                self.problem(
                    join(path, key),
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, t: &Table, path: &str, key: &str) -> Option<bool> {
        match t.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be true or false, not {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, t: &Table, path: &str, key: &str) -> Vec<String> {
        let Some(value) = t.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(
                join(path, key),
                format!("must be an array of strings, not {}", type_name(value)),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                Value::String(_) => {
                    self.problem(format!("{}[{i}]", join(path, key)), "must not be empty")
                }
                other => self.problem(
                    format!("{}[{i}]", join(path, key)),
                    format!("must be a string, not {}", type_name(other)),
                ),
            }
        }
        out
    }

    /// A decimal amount given as a string ("120.00"); a bare TOML number is refused because
    /// floats cannot hold money exactly.
    pub(super) fn amount_text(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match t.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            other => {
                self.problem(
                    join(path, key),
                    format!(
                        "must be a decimal amount in quotes (\"12.50\"), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn cents(
        &mut self,
        t: &Table,
        path: &str,
        key: &str,
        allow_negative: bool,
    ) -> Option<i64> {
        let text = self.amount_text(t, path, key)?;
        match parse_cents(&text) {
            Ok(c) if c < 0 && !allow_negative => {
                self.problem(join(path, key), format!("{text:?} must not be negative"));
                None
            }
            Ok(c) => Some(c),
            Err(e) => {
                self.problem(join(path, key), e);
                None
            }
        }
    }

    /// A date (`2026-01-01`, quoted or as a TOML date) or an RFC 3339 instant; a date means
    /// 00:00:00 UTC of that day.
    pub(super) fn instant(&mut self, t: &Table, path: &str, key: &str) -> Option<DateTime<Utc>> {
        let text = match t.get(key)? {
            Value::String(s) => s.clone(),
            Value::Datetime(d) => d.to_string(),
            other => {
                self.problem(
                    join(path, key),
                    format!(
                        "must be a date such as 2026-01-01, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match parse_instant(&text) {
            Some(t) => Some(t),
            None => {
                self.problem(
                    join(path, key),
                    format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"),
                );
                None
            }
        }
    }

    pub(super) fn table<'a>(&mut self, t: &'a Table, key: &str) -> Option<&'a Table> {
        match t.get(key)? {
            Value::Table(inner) => Some(inner),
            other => {
                self.problem(
                    key,
                    format!("must be a table ([{key}]), not {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn array_of_tables<'a>(&mut self, t: &'a Table, key: &str) -> Vec<&'a Table> {
        self.nested_tables(t, "", key)
    }

    /// `[[key]]` inside the table at `path` (`[[machines.changes]]`), or at the top when
    /// `path` is empty.
    pub(super) fn nested_tables<'a>(
        &mut self,
        t: &'a Table,
        path: &str,
        key: &str,
    ) -> Vec<&'a Table> {
        let at = join(path, key);
        match t.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::Table(inner) => Some(inner),
                    other => {
                        self.problem(
                            format!("{at}[{i}]"),
                            format!("must be a table, not {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                // The TOML header names the tables without indexes: [[machines.changes]].
                let mut header = String::new();
                let mut depth = 0;
                for ch in at.chars() {
                    match ch {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ if depth == 0 => header.push(ch),
                        _ => {}
                    }
                }
                self.problem(
                    &at,
                    format!(
                        "must be an array of tables ([[{header}]]), not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }

    /// A date alone (`2026-10-15`, quoted or as a TOML date), as its 00:00:00 UTC.
    pub(super) fn date(&mut self, t: &Table, path: &str, key: &str) -> Option<DateTime<Utc>> {
        let text = match t.get(key)? {
            Value::String(s) => s.clone(),
            Value::Datetime(d) => d.to_string(),
            other => {
                self.problem(
                    join(path, key),
                    format!(
                        "must be a date such as 2026-10-15, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) if d.format("%Y-%m-%d").to_string() == text => {
                d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
            }
            _ => {
                self.problem(
                    join(path, key),
                    format!("{text:?} is not a date (YYYY-MM-DD)"),
                );
                None
            }
        }
    }

    pub(super) fn env_name(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        let name = self.string(t, path, key)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // A value that looks like a URL or credentials may be the secret itself: not echoed.
            let shown = if name.contains([':', '@', '/']) {
                "the value (not shown, it may be a secret)".to_string()
            } else {
                format!("{name:?}")
            };
            self.problem(
                join(path, key),
                format!("{shown} is not the name of an environment variable (the secret itself never goes in the file)"),
            );
            return None;
        }
        Some(name)
    }
}
