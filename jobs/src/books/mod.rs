//! The books: every figure buildfund publishes, per cost-model.md. [`attribution`] holds the
//! rules as plain functions over exact rationals; [`costs`] runs them over the stored build
//! steps; [`funds`] adds the donations ([`donations`]) and gives balance, burn and runway;
//! [`plans`] what more money would build and how much of it recent income covers; [`jobs`]
//! splits each jobset line among its jobs and [`job_costs`] gives the month's cost per job.
//! [`store`] keeps the books of closed months and [`days`] the busy seconds of whole days, so
//! a read computes only the edges of its windows from the steps ([`steps`]).
pub mod attribution;
pub mod costs;
pub mod days;
pub mod donations;
pub mod error;
pub mod expenses;
pub mod funds;
pub mod invoices;
pub mod job_costs;
pub mod jobs;
pub mod ledger;
pub mod opencollective_check;
pub mod plans;
pub mod reconciliation;
pub mod stale;
pub mod steps;
pub mod store;

pub use error::BooksError;
