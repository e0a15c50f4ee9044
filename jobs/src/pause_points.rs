//! Named points where the crash tests stop the process: with `BUILDFUND_TEST_PAUSE_AT=NAME` in
//! its environment, a process that reaches the point `NAME` writes `paused at NAME` on standard
//! error and waits there for ever, holding whatever it holds (an open transaction, a claimed
//! send), until the test kills it with SIGKILL. Without the variable (always, outside the
//! tests) a point costs one comparison.
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
use std::sync::OnceLock;

/// The environment variable that names the point to stop at.
pub const ENV: &str = "BUILDFUND_TEST_PAUSE_AT";

fn chosen() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Stops here for ever when this is the chosen point (see the module's documentation).
pub async fn reached(name: &'static str) {
    if chosen() == Some(name) {
        eprintln!("paused at {name}");
        std::future::pending::<()>().await;
    }
}
