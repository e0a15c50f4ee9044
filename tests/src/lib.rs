//! The end-to-end test harness: the real server on a random port, over real HTTP, against a
//! fresh database per test — an embedded SQLite file, or a new PostgreSQL database created on
//! the server named by `TEST_DATABASE_URL`.
//!
//! `db_test!(name, setup, |app| async move { … })` defines `name::sqlite` and `name::postgres`,
//! so the test output shows both runs; every storage test goes through it. `setup` is a
//! configuration text or a [`TestAppBuilder`] (`TestApp::builder(CONFIG).smtp()`, …) that also
//! starts stand-ins for the outside services. Without `TEST_DATABASE_URL` the PostgreSQL half
//! fails with a message saying how to run it; `BUILDFUND_SKIP_POSTGRES=1` skips it knowingly,
//! and under `CI` nothing skips.
use std::sync::Arc;

mod app;
pub mod crash;
pub mod database;
pub mod opencollective;
pub mod prometheus;
pub mod proxy;
pub mod recorder;
pub mod replicas;
pub mod smtp;

pub use app::{buildfund_bin, run_cli, TestApp, TestAppBuilder, HYDRA_PASSWORD_ENV};
pub use database::{create_postgres_database, drop_postgres_database, postgres_enabled};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A minimal valid configuration for tests that do not care about the books.
pub const MINIMAL_CONFIG: &str = "ledger_start = \"2026-01-01\"\n";

/// Runs `body` against a fresh app on `backend` set up by `setup` (a configuration text or a
/// [`TestAppBuilder`]), then stops it and its stand-ins and drops its database.
pub async fn run<F, Fut>(backend: Backend, setup: impl Into<TestAppBuilder>, body: F)
where
    F: FnOnce(Arc<TestApp>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if backend == Backend::Postgres && !postgres_enabled() {
        return;
    }
    let app = Arc::new(setup.into().start(backend).await);
    body(app.clone()).await;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

/// Defines a test that runs once on SQLite (`NAME::sqlite`) and once on PostgreSQL
/// (`NAME::postgres`). The body receives an `Arc<TestApp>`.
///
/// ```ignore
/// db_test!(healthz_answers, |app| async move { assert_eq!(app.get("/healthz").await.status(), 200) });
/// db_test!(with_config, CONFIG_TEXT, |app| async move { … });
/// db_test!(with_mail, TestApp::builder(CONFIG_TEXT).smtp(), |app| async move { app.smtp(); … });
/// ```
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        $crate::db_test!($name, $crate::MINIMAL_CONFIG, $body);
    };
    ($name:ident, $setup:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::run($crate::Backend::Sqlite, $setup, $body).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::run($crate::Backend::Postgres, $setup, $body).await;
            }
        }
    };
}
