//! Exponential backoff, the one rule of every retry: OpenCollective requests, gate webhook
//! deliveries and the email outbox wait `first` after the first failed try, twice as long after
//! each next one, never longer than `max`.
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after failed try number `attempt` (counted from 1; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_up_to_the_cap() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        let waits: Vec<u64> = (0..=7).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(waits, [2, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let uncapped = Backoff::new(Duration::from_millis(500), Duration::MAX);
        assert_eq!(uncapped.delay(4), Duration::from_millis(4000));
        assert_eq!(uncapped.delay(200), Duration::from_millis(500) * (1 << 31));
    }
}
