//! The HTTP face of buildfund (actix-web) and its command line. The work itself lives in
//! `buildfund-jobs`; this crate parses requests, checks tokens and renders answers.
pub mod auth;
pub mod cli;
pub mod commands;
pub mod error;
pub mod gauges;
pub mod metrics;
pub mod openapi;
pub mod page_cache;
pub mod rate_limit;
pub mod routes;
pub mod security;
pub mod startup;
pub mod state;
pub mod telemetry;
