//! buildfund's domain and background work, free of HTTP framework types: configuration,
//! storage, tokens, and (as they arrive) ingest, attribution, donation sync, budgets, reports
//! and the scheduler. `buildfund-api` serves these over HTTP and the command line.
pub mod attribution;
pub mod catalog;
pub mod config;
pub mod costs;
pub mod costs_table;
pub mod cursors;
pub mod db;
pub mod donations;
pub mod email;
pub mod funds;
pub mod gate;
pub mod gate_actions;
pub mod hydra;
pub mod ingest;
pub mod money;
pub mod opencollective;
pub mod report;
pub mod scheduler;
pub mod tokens;

pub use config::Config;
