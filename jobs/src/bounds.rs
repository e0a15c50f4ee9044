//! The bounds on what a caller asks for, checked once where the domain receives it: an
//! evaluation instant [`At`] (no later than now plus [`CLOCK_SKEW_SECONDS`], no earlier than
//! [`earliest`]), a [`Month`] ([`Month::parse_until`]) and a list [`Limit`] (1 to
//! [`MAX_LIMIT`]). Each is built only through its check, so a function that takes one needs no
//! check of its own, and the HTTP routes, the command line and any later caller share them. A
//! refusal is a [`Refused`] naming the field; `now` always comes from the caller's
//! [`Clock`](crate::clock::Clock).
use crate::calendar::{parse_rfc3339, quoted, rfc3339, Month, MonthError};
use chrono::{DateTime, Duration, Utc};

/// How far ahead of the server's clock an `at` may be (clock skew between callers).
pub const CLOCK_SKEW_SECONDS: i64 = 60;
/// The most items one answer lists (`limit`).
pub const MAX_LIMIT: usize = 10_000;
/// The items an answer lists when the caller names no limit.
pub const DEFAULT_LIMIT: usize = 100;

/// What [`Month::parse`](crate::calendar::Month::parse) reads as a month, as the OpenAPI
/// description states it (`month`'s `pattern`; the range is checked beyond it).
pub const MONTH_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])$";

/// The earliest instant a caller may ask the books about: the Unix epoch, where the calendar
/// (and every [`Month`]) begins.
pub fn earliest() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// An evaluation instant asked for by a caller: from [`earliest`] to now plus
/// [`CLOCK_SKEW_SECONDS`]. The books of the future are not known, and evaluating them would
/// walk months that are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At(DateTime<Utc>);

/// Why a caller's instant was refused; the caller puts the field's name before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    #[error("{0:?} is not an RFC 3339 time")]
    Malformed(String),
    #[error("{0} is later than now (the books of the future are not known)")]
    Future(String),
    #[error("{0} is before {epoch}, where the books' calendar begins", epoch = rfc3339(earliest()))]
    Past(String),
}

impl AtError {
    /// The text was not an instant at all (as opposed to an instant out of bounds).
    pub fn is_malformed(&self) -> bool {
        matches!(self, AtError::Malformed(_))
    }
}

impl At {
    /// A caller's RFC 3339 text, checked against `now`.
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<At, AtError> {
        let t = parse_rfc3339(text).map_err(|_| AtError::Malformed(quoted(text)))?;
        At::new(t, now)
    }

    /// An instant, checked against `now`.
    pub fn new(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<At, AtError> {
        if t > now + Duration::seconds(CLOCK_SKEW_SECONDS) {
            return Err(AtError::Future(rfc3339(t)));
        }
        if t < earliest() {
            return Err(AtError::Past(rfc3339(t)));
        }
        Ok(At(t))
    }

    /// The caller's text when there is one, else `now` itself (the default of every `at`).
    pub fn parse_or_now(text: Option<&str>, now: DateTime<Utc>) -> Result<At, AtError> {
        match text {
            Some(text) => At::parse(text, now),
            None => At::new(now, now),
        }
    }

    /// The instant.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }

    /// The month the instant is in.
    pub fn month(self) -> Month {
        Month::of(self.0)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl Month {
    /// A month whose books may be asked for at `now`: [`Month::parse`], and not after the month
    /// of `now` plus [`CLOCK_SKEW_SECONDS`].
    pub fn parse_until(text: &str, now: DateTime<Utc>) -> Result<Month, MonthError> {
        let month = Month::parse(text)?;
        let current = Month::of(now + Duration::seconds(CLOCK_SKEW_SECONDS));
        if month > current {
            return Err(MonthError::AfterCurrent { month, current });
        }
        Ok(month)
    }
}

/// How many items an answer may list: 1 to [`MAX_LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Limit(usize);

/// A refused `limit`; the caller puts the field's name before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a whole number from 1 to {MAX_LIMIT}")]
pub struct LimitError(String);

impl LimitError {
    /// The text was not a whole number at all.
    pub fn is_malformed(&self) -> bool {
        self.0.parse::<u128>().is_err()
    }
}

impl Limit {
    /// [`DEFAULT_LIMIT`].
    pub const DEFAULT: Limit = Limit(DEFAULT_LIMIT);

    pub fn new(n: usize) -> Result<Limit, LimitError> {
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(LimitError(n.to_string()))
        }
    }

    /// A caller's text.
    pub fn parse(text: &str) -> Result<Limit, LimitError> {
        match text.parse::<usize>() {
            Ok(n) => Limit::new(n),
            Err(_) => Err(LimitError(quoted(text))),
        }
    }

    /// The caller's text when there is one, else [`Limit::DEFAULT`].
    pub fn parse_or_default(text: Option<&str>) -> Result<Limit, LimitError> {
        text.map_or(Ok(Limit::DEFAULT), Limit::parse)
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// A caller's value refused at the domain's door, naming its field (`at: "x" is not …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("at: {0}")]
    At(#[from] AtError),
    #[error("month: {0}")]
    Month(#[from] MonthError),
    #[error("limit: {0}")]
    Limit(#[from] LimitError),
}

impl Refused {
    /// The refused field's name, as the HTTP API spells it (the command line adds `--`).
    pub fn field(&self) -> &'static str {
        match self {
            Refused::At(_) => "at",
            Refused::Month(_) => "month",
            Refused::Limit(_) => "limit",
        }
    }

    /// The problem, without the field's name.
    pub fn problem(&self) -> String {
        match self {
            Refused::At(e) => e.to_string(),
            Refused::Month(e) => e.to_string(),
            Refused::Limit(e) => e.to_string(),
        }
    }

    /// The text was not a value of the field's kind at all (as opposed to a value out of
    /// bounds).
    pub fn is_malformed(&self) -> bool {
        match self {
            Refused::At(e) => e.is_malformed(),
            Refused::Month(e) => e.is_malformed(),
            Refused::Limit(e) => e.is_malformed(),
        }
    }
}

/// The month and evaluation instant of a request for the books: `at` defaults to now, `month`
/// to the month of `at`; both bounded (see [`At`], [`Month::parse_until`]).
pub fn month_and_at(
    month: Option<&str>,
    at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Month, At), Refused> {
    let at = At::parse_or_now(at, now)?;
    let month = match month {
        None => at.month(),
        Some(text) => Month::parse_until(text, now)?,
    };
    Ok((month, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn an_instant_is_refused_beyond_a_minute_ahead_and_before_the_epoch() {
        let now = t("2026-10-31T12:00:00Z");
        assert_eq!(
            At::parse("2026-10-31T12:01:00Z", now).map(At::instant),
            Ok(t("2026-10-31T12:01:00Z"))
        );
        assert_eq!(
            At::parse("2026-10-31T12:01:01Z", now),
            Err(AtError::Future("2026-10-31T12:01:01Z".into()))
        );
        assert_eq!(
            At::parse("9999-12-31T23:59:59Z", now)
                .unwrap_err()
                .to_string(),
            "9999-12-31T23:59:59Z is later than now (the books of the future are not known)"
        );
        assert_eq!(
            At::parse("1970-01-01T00:00:00Z", now).map(At::instant),
            Ok(earliest())
        );
        assert_eq!(
            At::parse("1969-12-31T23:59:59Z", now),
            Err(AtError::Past("1969-12-31T23:59:59Z".into()))
        );
        assert!(At::parse("0001-01-01T00:00:00Z", now).is_err());
        let e = At::parse("yesterday", now).unwrap_err();
        assert!(e.is_malformed());
        assert_eq!(e.to_string(), "\"yesterday\" is not an RFC 3339 time");
        assert_eq!(At::parse_or_now(None, now).map(At::instant), Ok(now));
    }

    #[test]
    fn a_month_is_refused_out_of_the_calendar_and_after_the_current_one() {
        let now = t("2026-10-31T23:59:30Z");
        assert_eq!(Month::parse_until("2026-10", now), Month::parse("2026-10"));
        // Within the minute of clock skew, November has begun.
        assert!(Month::parse_until("2026-11", now).is_ok());
        assert!(matches!(
            Month::parse_until("2026-12", now),
            Err(MonthError::AfterCurrent { .. })
        ));
        assert!(matches!(
            Month::parse("1969-12"),
            Err(MonthError::OutOfRange(_))
        ));
        for bad in [
            "2026-13", "2026-00", "October", "2026-1", "+202-10", "", "2026-10x",
        ] {
            let e = Month::parse(bad).unwrap_err();
            assert!(e.is_malformed(), "{bad}: {e}");
        }
    }

    #[test]
    fn a_limit_is_from_one_to_the_maximum() {
        assert_eq!(Limit::parse("1").map(Limit::get), Ok(1));
        assert_eq!(Limit::parse("10000").map(Limit::get), Ok(MAX_LIMIT));
        for bad in ["0", "10001", "-1", "ten", "99999999999999999999999"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
        assert!(Limit::parse("0")
            .unwrap_err()
            .to_string()
            .contains("from 1 to 10000"));
        assert_eq!(Limit::parse_or_default(None), Ok(Limit::DEFAULT));
    }

    #[test]
    fn a_refusal_names_its_field() {
        let now = t("2026-10-31T12:00:00Z");
        let e = month_and_at(None, Some("9999-12-31T23:59:59Z"), now).unwrap_err();
        assert_eq!(e.field(), "at");
        assert!(e
            .to_string()
            .starts_with("at: 9999-12-31T23:59:59Z is later than now"));
        assert!(!e.is_malformed());
        let e = month_and_at(Some("2027-01"), None, now).unwrap_err();
        assert_eq!(
            (e.field(), e.to_string().as_str()),
            ("month", "month: 2027-01 is after the current month 2026-10")
        );
        let (month, at) = month_and_at(None, Some("2026-09-15T00:00:00Z"), now).unwrap();
        assert_eq!(
            (month.to_string(), at.to_string()),
            ("2026-09".into(), "2026-09-15T00:00:00Z".into())
        );
    }
}
