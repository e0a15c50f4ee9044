//! The one end-to-end test binary: a module per area, each test the real server over HTTP
//! (see `buildfund_tests`). Storage tests run as `AREA::NAME::sqlite` and
//! `AREA::NAME::postgres`, e.g. `cargo test -p buildfund-tests --test main gate::`.
mod books;
mod books_history;
mod books_shared;
mod books_store;
mod bounds;
mod cost_jobs;
mod crashes;
mod db_copy;
mod donations;
mod email;
mod expenses;
mod first_run;
mod focus;
mod foundation;
mod gate;
mod gate_claims;
mod gauges;
mod hostile;
mod hostile_input;
mod hydra;
mod ingest;
mod machine_changes;
mod openapi;
mod opencollective_schema;
mod oracle;
mod outage;
mod pages;
mod plans;
mod reconciliation;
mod scheduler;
mod schema;
mod telemetry;
mod webhooks;
