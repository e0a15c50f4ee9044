//! buildfund's domain and background work, free of HTTP framework types. `buildfund-api`
//! serves these over HTTP and the command line.
//!
//! The floor plan, from the ground up (a module only uses those on its own floor or below):
//! - ground floor: [`clock`] (the one reader of the system time), [`calendar`] (months, spans,
//!   RFC 3339), [`bounds`] (a caller's `at`, `month` and `limit`, checked once), [`money`]
//!   (cents, prices, exact fractions, [`money::Overflow`]), [`http`] (outbound clients that keep
//!   to one origin), [`failure`] (an error's chain, a panic's message) and [`pause_points`]
//!   (where the crash tests stop the process);
//! - [`config`] (the TOML file, validated with key paths) and [`db`] (connections, migrations,
//!   the catalog of configured machines, pools and funds, `db copy`);
//! - [`api_tokens`]: the API's bearer tokens;
//! - [`books`]: attribution, costs, funds and donations: every figure;
//! - [`sources`]: what comes in: build-step ingest, the Hydra pull, the OpenCollective sync;
//! - [`gate`]: the budget gate, its admin controls, its snapshot and its outside actions;
//! - [`report`]: the one view model every presentation reads (pages, email, CSV, CLI table);
//! - [`email`]: subscriptions, signed links, the outbox and SMTP;
//! - [`scheduler`]: the cron jobs, claimed once across instances.
pub mod api_tokens;
pub mod backoff;
pub mod books;
pub mod bounds;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod db;
pub mod email;
pub mod failure;
pub mod gate;
pub mod http;
pub mod money;
pub mod pause_points;
pub mod report;
pub mod scheduler;
pub mod sources;

pub use config::Config;
