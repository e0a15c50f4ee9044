//! The one clock: what "now" is for the server, the scheduler and the command line. The real
//! clock ([`Clock::system`]) is the one place that reads the system time; tests build a
//! [`Clock::manual`] they set and advance, so an instant-dependent answer is tested at a chosen
//! instant without waiting for the calendar.
use chrono::{DateTime, Duration, SubsecRound, Utc};
use std::sync::{Arc, Mutex};

/// A cheap handle (clone it freely) on the system clock or on a manual one.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// The system's clock (UTC).
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that shows `t` until it is [set](Clock::set) or [advanced](Clock::advance); its
    /// clones share the instant.
    pub fn manual(t: DateTime<Utc>) -> Clock {
        Clock(Source::Manual(Arc::new(Mutex::new(t))))
    }

    /// Now, to the microsecond: PostgreSQL keeps microseconds, so an instant read here is
    /// stored the same on both databases (and survives `buildfund db copy` unchanged).
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now().trunc_subsecs(6),
            Source::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Whether this is a manual clock (only a manual clock can be set).
    pub fn is_manual(&self) -> bool {
        matches!(self.0, Source::Manual(_))
    }

    /// Sets a manual clock to `t`; the system clock cannot be set and is left alone (`false`).
    pub fn set(&self, t: DateTime<Utc>) -> bool {
        match &self.0 {
            Source::System => false,
            Source::Manual(now) => {
                *now.lock().unwrap_or_else(|e| e.into_inner()) = t;
                true
            }
        }
    }

    /// Moves a manual clock `by` forward (or back, when negative); `false` on the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.0 {
            Source::System => false,
            Source::Manual(now) => {
                let mut now = now.lock().unwrap_or_else(|e| e.into_inner());
                *now += by;
                true
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_rfc3339;

    #[test]
    fn a_manual_clock_is_set_and_advanced_and_its_clones_follow() {
        let t = parse_rfc3339("2026-10-31T23:59:59Z").unwrap();
        let clock = Clock::manual(t);
        let seen_by_the_server = clock.clone();
        assert_eq!(seen_by_the_server.now(), t);
        assert!(clock.advance(Duration::seconds(1)));
        assert_eq!(
            seen_by_the_server.now(),
            parse_rfc3339("2026-11-01T00:00:00Z").unwrap()
        );
        let u = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert!(clock.set(u));
        assert_eq!(seen_by_the_server.now(), u);
    }

    #[test]
    fn the_system_clock_moves_and_cannot_be_set() {
        let clock = Clock::system();
        // The clock reads to the microsecond (see `now`).
        let before = Utc::now().trunc_subsecs(6);
        let now = clock.now();
        assert!(now >= before && now <= Utc::now());
        assert_eq!(now, now.trunc_subsecs(6), "to the microsecond");
        assert!(!clock.set(before - Duration::days(1)));
        assert!(!clock.advance(Duration::days(1)));
        assert!(clock.now() >= now);
    }
}
