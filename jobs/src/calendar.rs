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
            // A span longer than i64 seconds (only the open ends of an interval) saturates.
            self.end.saturating_sub(self.start)
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

/// Days from 1970-01-01 to the first of `month` (1..=12) of `year`, proleptic Gregorian, for
/// any year (Howard Hinnant's `days_from_civil`): total, no calendar library range to leave.
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month) of the day `days` after 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The first instant of `month` of `year`, saturating at the ends of i64 seconds.
fn instant(year: i64, month: i64) -> i64 {
    days_from_civil(year, month).saturating_mul(86_400)
}

fn month_span_i64(year: i64, month: i64) -> Span {
    // A month out of 1..=12 carries into the neighbouring years (0 is December before).
    let (year, month) = (
        year + (month - 1).div_euclid(12),
        (month - 1).rem_euclid(12) + 1,
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

/// [start of month, start of next month) for year/month (UTC). A month out of 1..=12 carries
/// into the neighbouring years (month 13 is January of the next year).
pub fn month_span(year: i32, month: u32) -> Span {
    month_span_i64(i64::from(year), i64::from(month))
}

/// The calendar month containing instant t, as a Span (for every i64 instant: the far ends
/// saturate).
pub fn month_of(t: i64) -> Span {
    let (year, month) = civil_from_days(t.div_euclid(86_400));
    month_span_i64(year, month)
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
        from_unix(self.span().start)
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

/// A month as the books read it at an instant, worked out once and passed down: its bounds, the
/// instant its figures are for, and the windows the books cover (from `ledger_start` on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub month: Month,
    /// The month before.
    pub prev: Month,
    /// The instant the figures are read at.
    pub at: DateTime<Utc>,
    /// The month's first instant.
    pub start: DateTime<Utc>,
    /// The next month's first instant.
    pub end: DateTime<Utc>,
    /// The first instant of the month after next (arrears invoices paying for the month were
    /// incurred before it).
    pub after_next: DateTime<Utc>,
    /// `min(at, end)`: the instant the figures are for.
    pub as_of: DateTime<Utc>,
    /// The whole month.
    pub span: Span,
    /// The month from `ledger_start` on: the window its stored books cover. `None` before it.
    pub book: Option<Span>,
    /// `book` up to `at`: the window the figures cover. `None` when empty.
    pub window: Option<Span>,
}

impl Period {
    pub fn new(month: Month, at: DateTime<Utc>, ledger_start: DateTime<Utc>) -> Period {
        let span = month.span();
        let next = month.next();
        let end = next.start();
        Period {
            month,
            prev: month.prev(),
            at,
            start: month.start(),
            end,
            after_next: next.next().start(),
            as_of: at.min(end),
            span,
            book: span.intersect(Span::new(ledger_start.timestamp(), i64::MAX)),
            window: span.intersect(Span::new(ledger_start.timestamp(), at.timestamp())),
        }
    }

    /// The month of `at`, read at `at`.
    pub fn of(at: DateTime<Utc>, ledger_start: DateTime<Utc>) -> Period {
        Period::new(Month::of(at), at, ledger_start)
    }

    /// The month has ended at `at`.
    pub fn complete(&self) -> bool {
        self.at >= self.end
    }

    /// The month before, read at the same instant.
    pub fn prev(&self, ledger_start: DateTime<Utc>) -> Period {
        Period::new(self.prev, self.at, ledger_start)
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

/// The instant `t` unix seconds; beyond the calendar's range (no stored instant is) it is held
/// at the range's first or last instant.
pub fn from_unix(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or(if t < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
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
