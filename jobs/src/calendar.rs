//! The calendar: instants are UTC, durations integer seconds. Half-open [`Span`]s of unix
//! seconds, calendar [`Month`]s and their arithmetic, and the one RFC 3339 parser and formatter
//! every input and output uses.
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

/// Half-open interval [start, end) of unix seconds (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

impl Span {
    pub fn new(start: i64, end: i64) -> Span {
        Span { start, end }
    }

    /// Length in seconds, `max(0, end - start)`.
    pub fn len(&self) -> i64 {
        if self.end > self.start {
            self.end
                .checked_sub(self.start)
                .unwrap_or_else(|| panic!("span {self:?} is longer than i64 seconds"))
        } else {
            0
        }
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The common part of two spans, `None` when it is empty.
    pub fn intersect(&self, other: Span) -> Option<Span> {
        let s = Span {
            start: self.start.max(other.start),
            end: self.end.min(other.end),
        };
        (!s.is_empty()).then_some(s)
    }
}

fn instant(year: i32, month: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_else(|| panic!("month {year:04}-{month:02} is out of the supported range"))
        .and_utc()
        .timestamp()
}

/// [start of month, start of next month) for year/month (UTC). Panics unless `month` is 1..=12.
pub fn month_span(year: i32, month: u32) -> Span {
    assert!(
        (1..=12).contains(&month),
        "month_span: month {month} is not between 1 and 12"
    );
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Span {
        start: instant(year, month),
        end: instant(next_year, next_month),
    }
}

/// The calendar month containing instant t, as a Span.
pub fn month_of(t: i64) -> Span {
    let dt = DateTime::from_timestamp(t, 0)
        .unwrap_or_else(|| panic!("month_of: {t} is out of the supported range"));
    month_span(dt.year(), dt.month())
}

/// `seconds_in_month(M)` of the month containing instant t.
pub fn seconds_in_month(t: i64) -> i64 {
    month_of(t).len()
}

/// Splits a span at calendar month boundaries (UTC); empty input gives an empty Vec.
pub fn split_months(span: Span) -> Vec<Span> {
    let mut parts = Vec::new();
    let mut start = span.start;
    while start < span.end {
        let end = month_of(start).end.min(span.end);
        parts.push(Span { start, end });
        start = end;
    }
    parts
}

/// The first year a [`Month`] can be in (the calendar begins at the Unix epoch).
pub const FIRST_YEAR: i32 = 1970;
/// The last year a [`Month`] can be in (four digits).
pub const LAST_YEAR: i32 = 9999;

/// A calendar month `YYYY-MM`, from 1970-01 to 9999-12 when it comes from outside: its fields
/// are private, so [`Month::parse`] (text from a caller) and [`Month::of`] (an instant) are the
/// ways in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

/// Why a caller's month was refused; the caller puts the field's name before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    /// Not `YYYY-MM`.
    #[error("{0:?} is not a month (YYYY-MM)")]
    Malformed(String),
    /// `YYYY-MM`, but outside 1970-01..=9999-12.
    #[error("{0:?} is out of the calendar's range ({FIRST_YEAR}-01 to {LAST_YEAR}-12)")]
    OutOfRange(String),
    /// After the month of now (plus the callers' clock skew): its books are not known.
    #[error("{month} is after the current month {current}")]
    AfterCurrent { month: Month, current: Month },
}

impl MonthError {
    /// The text was not a month at all (as opposed to a month out of bounds).
    pub fn is_malformed(&self) -> bool {
        matches!(self, MonthError::Malformed(_))
    }
}

/// At most this much of a caller's text is quoted back in an error.
pub(crate) fn quoted(text: &str) -> String {
    text.chars().take(40).collect()
}

impl Month {
    /// `YYYY-MM`, 1970-01 to 9999-12.
    pub fn parse(s: &str) -> Result<Month, MonthError> {
        let bad = || MonthError::Malformed(quoted(s));
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(bad());
        }
        if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
            return Err(MonthError::OutOfRange(quoted(s)));
        }
        Ok(Month { year, month })
    }

    pub fn of(t: DateTime<Utc>) -> Month {
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    /// The year (four digits).
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month of the year, 1 to 12.
    pub fn number(&self) -> u32 {
        self.month
    }

    pub fn span(&self) -> Span {
        month_span(self.year, self.month)
    }

    pub fn start(&self) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .expect("valid month")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    }

    pub fn prev(&self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(&self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

/// Serialized as `"YYYY-MM"`.
impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The instant `t` unix seconds (within the calendar's range, as every stored instant is).
pub fn from_unix(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("an instant within the calendar's range")
}

/// An instant as RFC 3339 in UTC with whole seconds (`2026-10-31T12:00:00Z`), the form of every
/// instant buildfund prints.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 instant from outside; the error quotes the text
/// (`"tomorrow" is not an RFC 3339 time`) and the caller puts the field's name before it.
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not an RFC 3339 time"))
}

/// A configured instant: a date (`2026-01-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
