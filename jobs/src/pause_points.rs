//! Named points where the crash tests stop the process: with `BUILDFUND_TEST_PAUSE_AT=NAME` in
//! its environment, a process that reaches the point `NAME` writes `paused at NAME` on standard
//! error and waits there for ever, holding whatever it holds (an open transaction, a claimed
//! send), until the test kills it with SIGKILL; `NAME#N` stops the N-th time it gets there
//! (`email.handed_off#3`: after the third message of a batch). Without the variable (always,
//! outside the tests) a point costs one comparison.
//!
//! The points, in the order of the work they stop:
//! - `ingest.batch_written`: an upload's first batch of steps is written, its transaction open;
//! - `ingest.before_commit`: every step of an upload is written, the commit not yet sent;
//! - `opencollective.page_stored`: a sync's first page of transactions is committed, the cursor
//!   not yet moved past it;
//! - `books.month_written`: the store's close of a month has written its rows, not committed;
//! - `db_copy.table_written`: `buildfund db copy` has written a table with rows into the target,
//!   its transaction open;
//! - `email.handed_off`: the SMTP server has accepted a report (250 after the data), the outbox
//!   does not yet record it as sent.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that names the point to stop at.
pub const ENV: &str = "BUILDFUND_TEST_PAUSE_AT";

/// The chosen point and the how-manieth time it stops there (1 unless `NAME#N`).
fn chosen() -> Option<(&'static str, u64)> {
    static AT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    AT.get_or_init(|| {
        let value = std::env::var(ENV).ok().filter(|s| !s.is_empty())?;
        Some(match value.split_once('#') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (value, 1),
        })
    })
    .as_ref()
    .map(|(name, n)| (name.as_str(), *n))
}

/// Stops here for ever when this is the chosen point, reached the chosen number of times (see
/// the module's documentation).
pub async fn reached(name: &'static str) {
    static TIMES: AtomicU64 = AtomicU64::new(0);
    if let Some((at, n)) = chosen() {
        if at == name && TIMES.fetch_add(1, Ordering::Relaxed) + 1 == n {
            eprintln!("paused at {name}");
            std::future::pending::<()>().await;
        }
    }
}
