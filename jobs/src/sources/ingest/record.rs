//! One build-step record (interfaces.md, "Build steps") and its validation. A raw record keeps
//! every field as whatever the input gave, so that validation can name each bad field and report
//! all of them, not only the first.
use chrono::DateTime;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Earliest and latest accepted step times: 2000-01-01 and 2100-01-01 (UTC).
pub const MIN_TIME: i64 = 946_684_800;
pub const MAX_TIME: i64 = 4_102_444_800;
/// A step longer than this is not a plausible build step (31 days).
pub const MAX_DURATION: i64 = 31 * 86_400;
pub const DEFAULT_SOURCE: &str = "default";

/// A validated build step. Times are unix seconds, `stop >= start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub source: String,
    pub build: i64,
    pub step: i32,
    pub project: String,
    pub jobset: String,
    pub job: Option<String>,
    pub system: Option<String>,
    pub machine: String,
    pub start: i64,
    pub stop: i64,
    pub status: Option<i32>,
}

impl StepRecord {
    pub fn key(&self) -> (&str, i64, i32) {
        (&self.source, self.build, self.step)
    }
}

/// What is wrong with one field of one record; `line` is the 1-based line of the input
/// (for a JSON array, the line where the record ends), `record` the record's 1-based position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecordError {
    pub line: u64,
    pub record: u64,
    pub field: String,
    pub message: String,
}

/// A field as the input gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Int(i64),
    Float(f64),
    Str(String),
    /// Any other JSON value, described ("a boolean", "an object", …).
    Other(&'static str),
}

impl Field {
    fn describe(&self) -> String {
        match self {
            Field::Int(i) => i.to_string(),
            Field::Float(f) => f.to_string(),
            Field::Str(s) => shown(s),
            Field::Other(what) => what.to_string(),
        }
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Field, E> {
        Ok(i64::try_from(v)
            .map(Field::Int)
            .unwrap_or(Field::Other("a number out of range")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Field, E> {
        Ok(Field::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(Field::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Field, E> {
        Ok(Field::Str(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Other("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::Other("null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other("an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other("an array"))
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// A record before validation. Unknown keys are ignored; `null` counts as absent.
#[derive(Default, Debug, Deserialize)]
pub struct RawRecord {
    pub source: Option<Field>,
    pub build: Option<Field>,
    pub step: Option<Field>,
    pub project: Option<Field>,
    pub jobset: Option<Field>,
    pub job: Option<Field>,
    pub system: Option<Field>,
    pub machine: Option<Field>,
    pub start: Option<Field>,
    pub stop: Option<Field>,
    pub status: Option<Field>,
}

/// The field names, in the order CSV headers and messages use.
pub const FIELDS: &[&str] = &[
    "source", "build", "step", "project", "jobset", "job", "system", "machine", "start", "stop",
    "status",
];
pub const REQUIRED: &[&str] = &[
    "build", "step", "project", "jobset", "machine", "start", "stop",
];

impl RawRecord {
    pub fn set(&mut self, name: &str, value: Field) {
        let slot = match name {
            "source" => &mut self.source,
            "build" => &mut self.build,
            "step" => &mut self.step,
            "project" => &mut self.project,
            "jobset" => &mut self.jobset,
            "job" => &mut self.job,
            "system" => &mut self.system,
            "machine" => &mut self.machine,
            "start" => &mut self.start,
            "stop" => &mut self.stop,
            "status" => &mut self.status,
            _ => return,
        };
        *slot = Some(value);
    }
}

struct Check {
    line: u64,
    record: u64,
    errors: Vec<RecordError>,
}

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(RecordError {
            line: self.line,
            record: self.record,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn integer(&mut self, field: &str, value: Option<Field>, min: i64, max: i64) -> Option<i64> {
        let Some(value) = value else {
            if REQUIRED.contains(&field) {
                self.fail(field, "missing");
            }
            return None;
        };
        let parsed = match &value {
            Field::Int(i) => Some(*i),
            Field::Str(s) => s.trim().parse::<i64>().ok(),
            Field::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        };
        match parsed {
            Some(i) if (min..=max).contains(&i) => Some(i),
            Some(i) => {
                self.fail(field, format!("{i} is out of range ({min}..={max})"));
                None
            }
            None => {
                self.fail(field, format!("{} is not an integer", value.describe()));
                None
            }
        }
    }

    fn text(&mut self, field: &str, value: Option<Field>, max_len: usize) -> Option<String> {
        let Some(value) = value else {
            if REQUIRED.contains(&field) {
                self.fail(field, "missing");
            }
            return None;
        };
        match value {
            Field::Str(s) if s.trim().is_empty() => {
                if REQUIRED.contains(&field) || field == "source" {
                    self.fail(field, "must not be empty");
                }
                None
            }
            Field::Str(s) if s.len() > max_len => {
                self.fail(
                    field,
                    format!("is {} bytes long; at most {max_len}", s.len()),
                );
                None
            }
            Field::Str(s) if s.chars().any(char::is_control) => {
                self.fail(field, "contains control characters");
                None
            }
            Field::Str(s) => Some(s),
            other => {
                self.fail(field, format!("{} is not a string", other.describe()));
                None
            }
        }
    }

    /// Whether `value` passes `rule`; if not, says so with the rule in words.
    fn hydra_name(&mut self, field: &str, value: &str, rule: fn(&str) -> bool) -> bool {
        if rule(value) {
            return true;
        }
        let allowed = if field == "jobset" {
            "letters, digits, '_', '-' and '.', starting with a letter or '_' (or '.' and then one)"
        } else {
            "letters, digits, '_' and '-', starting with a letter or '_'"
        };
        self.fail(
            field,
            format!("{} is not a Hydra {field} name ({allowed})", shown(value)),
        );
        false
    }

    /// Unix seconds (integer, or a float floored) or an RFC 3339 time (floored to the second).
    fn time(&mut self, field: &str, value: Option<Field>) -> Option<i64> {
        let Some(value) = value else {
            self.fail(field, "missing");
            return None;
        };
        let seconds = match &value {
            Field::Int(i) => Some(*i),
            Field::Float(f) if f.is_finite() => Some(f.floor() as i64),
            Field::Str(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i64>() {
                    Some(i)
                } else {
                    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp())
                }
            }
            _ => None,
        };
        match seconds {
            Some(t) if (MIN_TIME..MAX_TIME).contains(&t) => Some(t),
            Some(t) => {
                self.fail(
                    field,
                    format!(
                        "{} is outside 2000-01-01..2100-01-01 ({t} unix seconds)",
                        value.describe()
                    ),
                );
                None
            }
            None => {
                self.fail(
                    field,
                    format!(
                        "{} is neither unix seconds nor an RFC 3339 time",
                        value.describe()
                    ),
                );
                None
            }
        }
    }
}

/// Hydra's project names (`$projectNameRE` of Hydra's `CatalystUtils.pm`):
/// `[A-Za-z_][A-Za-z0-9_-]*`.
pub fn is_project_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Hydra's jobset names as `parseJobsetName` accepts them: `\.?[A-Za-z_][A-Za-z0-9_.-]*` (the
/// leading dot is the `.jobsets` jobset of declarative projects).
pub fn is_jobset_name(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// At most this many characters of an input value are repeated in an error message.
pub const SHOWN_CHARS: usize = 100;

/// `value` quoted for an error message, cut after [`SHOWN_CHARS`] characters with "…".
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
    }
}

/// Validates a raw record found at `line` (the `record`-th of its input).
pub fn validate(raw: RawRecord, line: u64, record: u64) -> Result<StepRecord, Vec<RecordError>> {
    let mut c = Check {
        line,
        record,
        errors: Vec::new(),
    };
    let source = match raw.source {
        None => Some(DEFAULT_SOURCE.to_string()),
        Some(v) => c.text("source", Some(v), 64),
    };
    let build = c.integer("build", raw.build, 0, i64::MAX);
    let step = c.integer("step", raw.step, 0, i32::MAX as i64);
    let project = c.text("project", raw.project, 255);
    let project = project.filter(|p| c.hydra_name("project", p, is_project_name));
    let jobset = c.text("jobset", raw.jobset, 255);
    let jobset = jobset.filter(|j| c.hydra_name("jobset", j, is_jobset_name));
    let job = c.text("job", raw.job, 1024);
    let system = c.text("system", raw.system, 255);
    let machine = c.text("machine", raw.machine, 255);
    let start = c.time("start", raw.start);
    let stop = c.time("stop", raw.stop);
    let status = c.integer("status", raw.status, i32::MIN as i64, i32::MAX as i64);
    if let (Some(start), Some(stop)) = (start, stop) {
        if stop < start {
            c.fail("stop", format!("{stop} is before start {start}"));
        } else if stop - start > MAX_DURATION {
            c.fail(
                "stop",
                format!("the step lasts {} s, more than 31 days", stop - start),
            );
        }
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    match (source, build, step, project, jobset, machine, start, stop) {
        (
            Some(source),
            Some(build),
            Some(step),
            Some(project),
            Some(jobset),
            Some(machine),
            Some(start),
            Some(stop),
        ) => Ok(StepRecord {
            source,
            build,
            step: step as i32,
            project,
            jobset,
            job,
            system,
            machine,
            start,
            stop,
            status: status.map(|s| s as i32),
        }),
        _ => unreachable!("every missing required field was reported"),
    }
}

/// Lets a serde error say which record it is about.
pub fn syntax_error(line: u64, record: u64, message: impl fmt::Display) -> RecordError {
    RecordError {
        line,
        record,
        field: String::new(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawRecord {
        serde_json::from_str(json).unwrap()
    }

    const GOOD: &str = r#"{"build": 2210934, "step": 3, "project": "nixpkgs", "jobset": "cuda",
        "job": "python3Packages.torch.x86_64-linux", "system": "x86_64-linux",
        "machine": "build03", "start": 1761955200, "stop": 1761958800, "status": 0}"#;

    #[test]
    fn a_good_record_validates() {
        let r = validate(raw(GOOD), 7, 1).unwrap();
        assert_eq!(r.source, "default");
        assert_eq!(r.key(), ("default", 2210934, 3));
        assert_eq!(r.stop - r.start, 3600);
        assert_eq!(r.status, Some(0));
    }

    #[test]
    fn rfc3339_and_string_times_are_accepted() {
        let r = validate(
            raw(r#"{"build":1,"step":1,"project":"p","jobset":"j","machine":"m","start":"2025-11-01T00:00:00Z","stop":"1761958800"}"#),
            1,
            1,
        )
        .unwrap();
        assert_eq!((r.start, r.stop), (1761955200, 1761958800));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = validate(
            raw(r#"{"build":"x","step":-1,"project":"","jobset":5,"start":1761958800,"stop":1761955200}"#),
            12,
            4,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["build", "step", "project", "jobset", "machine", "stop"]
        );
        assert!(errors.iter().all(|e| e.line == 12 && e.record == 4));
        assert_eq!(errors[0].message, "\"x\" is not an integer");
        assert_eq!(errors[4].message, "missing");
        assert_eq!(errors[5].message, "1761955200 is before start 1761958800");
    }

    #[test]
    fn project_and_jobset_names_follow_hydra() {
        for good in ["nixpkgs", "_x", "nix-community", "a_b-9"] {
            assert!(is_project_name(good), "{good}");
        }
        for bad in ["", "9lives", "-x", "nix.pkgs", "a/b", "a:b", "a b", "ä"] {
            assert!(!is_project_name(bad), "{bad}");
        }
        for good in ["cuda", "cuda-stable.2511", ".jobsets", "_x.y-z"] {
            assert!(is_jobset_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "2511",
            "../x",
            "cuda/../x",
            "a:b",
            "a*",
            ".-x",
        ] {
            assert!(!is_jobset_name(bad), "{bad}");
        }
        let e = validate(
            raw(r#"{"build":1,"step":1,"project":"nix/pkgs","jobset":"cuda/*","machine":"m","start":1761955200,"stop":1761955200}"#),
            3,
            2,
        )
        .unwrap_err();
        assert_eq!(
            e.iter()
                .map(|e| (e.line, e.field.as_str()))
                .collect::<Vec<_>>(),
            [(3, "project"), (3, "jobset")]
        );
        assert!(e[0]
            .message
            .starts_with("\"nix/pkgs\" is not a Hydra project name"));
    }

    #[test]
    fn echoed_values_are_cut_short() {
        let long = "x".repeat(5000);
        let e = validate(
            raw(&format!(r#"{{"build":"{long}","step":1,"project":"p","jobset":"j","machine":"m","start":1761955200,"stop":1761955200}}"#)),
            1,
            1,
        )
        .unwrap_err();
        assert_eq!(
            e[0].message,
            format!("\"{}\"… is not an integer", "x".repeat(SHOWN_CHARS))
        );
        assert_eq!(shown("é".repeat(101).as_str()).chars().count(), 103);
    }

    #[test]
    fn insane_times_are_refused() {
        let e = validate(
            raw(r#"{"build":1,"step":1,"project":"p","jobset":"j","machine":"m","start":0,"stop":true}"#),
            1,
            1,
        )
        .unwrap_err();
        assert!(e[0].message.contains("outside 2000-01-01"), "{e:?}");
        assert_eq!(
            e[1].message,
            "a boolean is neither unix seconds nor an RFC 3339 time"
        );
    }
}
