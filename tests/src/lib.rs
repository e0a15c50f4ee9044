//! The end-to-end test harness: the real server on a random port, over real HTTP, against a
//! fresh database per test — an embedded SQLite file, or a new PostgreSQL database created on
//! the server named by `TEST_DATABASE_URL`.
//!
//! `db_test!(name, |app| async move { … })` defines `name::sqlite` and `name::postgres`, so the
//! test output shows both runs. Without `TEST_DATABASE_URL` the PostgreSQL half fails with a
//! message saying how to run it; `BUILDFUND_SKIP_POSTGRES=1` skips it knowingly, and under
//! `CI` nothing skips.
use buildfund_api::startup::{Application, ServeOptions};
use buildfund_jobs::{db, Config};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub mod proxy;
pub mod smtp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A minimal valid configuration for tests that do not care about the books.
pub const MINIMAL_CONFIG: &str = "ledger_start = \"2026-01-01\"\n";

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub port: u16,
    pub db: DatabaseConnection,
    pub db_url: String,
    pub config: Arc<Config>,
    /// The configuration text, also written to `config_path` for CLI runs.
    pub config_path: PathBuf,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

/// Where PostgreSQL tests create their databases, or why they cannot run.
fn postgres_admin_url() -> Result<String, String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => Err(
            "TEST_DATABASE_URL is not set, so this PostgreSQL test cannot run. \
                  Run the tests with scripts/test (which starts PostgreSQL and sets it), or set \
                  TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres; \
                  BUILDFUND_SKIP_POSTGRES=1 skips PostgreSQL knowingly (never under CI)."
                .to_string(),
        ),
    }
}

/// Whether the PostgreSQL half of a test should run; panics when it must but cannot.
pub fn postgres_enabled() -> bool {
    match postgres_admin_url() {
        Ok(_) => true,
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            let skip = std::env::var("BUILDFUND_SKIP_POSTGRES").is_ok_and(|v| v == "1");
            if skip && !ci {
                eprintln!("\n!!! SKIPPED on PostgreSQL (BUILDFUND_SKIP_POSTGRES=1) !!!\n");
                false
            } else {
                panic!("{why}");
            }
        }
    }
}

fn database_name_url(admin: &str, name: &str) -> String {
    // Replace the path (database name) of the admin URL, keeping its query.
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut url = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Creates a fresh PostgreSQL database and returns its URL. Databases of earlier runs that
/// are over an hour old are dropped on the way (their names carry their creation time).
/// Tests use it for side databases too (a Hydra database), dropping them with
/// [`drop_postgres_database`].
pub async fn create_postgres_database() -> anyhow::Result<String> {
    let admin_url = postgres_admin_url().map_err(anyhow::Error::msg)?;
    let admin = Database::connect(admin_url.as_str()).await?;
    static CLEANED: OnceLock<()> = OnceLock::new();
    let now = chrono::Utc::now().timestamp();
    if CLEANED.set(()).is_ok() {
        let rows = admin
            .query_all_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                "SELECT datname FROM pg_database WHERE datname LIKE 'bft\\_%'".to_string(),
            ))
            .await?;
        for row in rows {
            let name: String = row.try_get("", "datname")?;
            let created: i64 = name
                .split('_')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(now);
            if now - created > 3600 {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        }
    }
    let name = format!("bft_{now}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    Ok(database_name_url(&admin_url, &name))
}

/// Drops a database made by [`create_postgres_database`].
pub async fn drop_postgres_database(url: &str) {
    let Ok(admin_url) = postgres_admin_url() else {
        return;
    };
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("");
    if let Ok(admin) = Database::connect(admin_url.as_str()).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}

impl TestApp {
    /// Starts the app on `backend` with the given configuration file text.
    pub async fn spawn(backend: Backend, config_text: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("test.sqlite").display()
            ),
            Backend::Postgres => create_postgres_database()
                .await
                .expect("cannot create a PostgreSQL test database"),
        };
        Self::spawn_with_database(backend, config_text, db_url, dir).await
    }

    /// Starts the app on an existing database URL (for tests that route it through a proxy).
    pub async fn spawn_with_database(
        backend: Backend,
        config_text: &str,
        db_url: String,
        dir: tempfile::TempDir,
    ) -> TestApp {
        let config_path = dir.path().join("buildfund.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        let mut config = Config::parse(config_text, "test config").expect("test config is valid");
        config.database.url = db_url.clone();
        config.server.listen = "127.0.0.1:0".into();
        config.server.workers = Some(2);
        let config = Arc::new(config);
        let conn = db::connect(&config).await.expect("connect");
        db::prepare(&conn, &config).await.expect("migrate");
        let options = ServeOptions {
            handle_signals: false,
            shutdown_timeout: Duration::from_secs(1),
        };
        let secrets = Arc::new(buildfund_jobs::config::Secrets::from_env(&config));
        let app =
            Application::build(config.clone(), secrets, conn.clone(), options).expect("build app");
        let port = app.port();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            backend,
            address: format!("http://127.0.0.1:{port}"),
            port,
            db: conn,
            db_url,
            config,
            config_path,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            dir,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `GET path` with one request header (conditional requests, client addresses, …).
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// A fresh token of the given scope, created as `buildfund token create` would.
    /// `POST /api/v1/jobs/{job}/run` with an admin token: the run's record as JSON.
    pub async fn run_job(&self, job: &str, admin: &str) -> serde_json::Value {
        let res = self
            .client
            .post(self.url(&format!("/api/v1/jobs/{job}/run")))
            .bearer_auth(admin)
            .send()
            .await
            .expect("POST run");
        assert_eq!(res.status(), 200, "running {job}");
        res.json().await.expect("a JSON run record")
    }

    pub async fn token(&self, scope: &str) -> String {
        let scope = scope.parse().expect("scope");
        let (secret, _) =
            buildfund_jobs::api_tokens::create(&self.db, scope, &format!("test {scope}"))
                .await
                .expect("create token");
        secret
    }

    /// Runs the `buildfund` binary against this app's database and config file.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(
            args,
            self.dir.path(),
            &[
                ("DATABASE_URL", self.db_url.as_str()),
                (
                    "BUILDFUND_CONFIG",
                    self.config_path.to_str().expect("utf-8 path"),
                ),
            ],
        )
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.db.close().await.ok();
        if self.backend == Backend::Postgres {
            drop_postgres_database(&self.db_url).await;
        }
    }
}

/// The `buildfund` binary of this workspace, built on first use.
pub fn buildfund_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "buildfund-api",
            "--bin",
            "buildfund",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the buildfund binary failed");
        profile_dir.join("buildfund")
    })
    .clone()
}

/// Runs `buildfund ARGS` in `cwd` with extra environment, without inheriting a
/// `DATABASE_URL` or `BUILDFUND_CONFIG` from the test's own environment.
pub fn run_cli(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(buildfund_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("BUILDFUND_CONFIG")
        .env("BUILDFUND_LOG_FORMAT", "text");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run buildfund")
}

/// Runs `body` against a fresh app on `backend`, then stops it and drops its database.
pub async fn run<F, Fut>(backend: Backend, config_text: &str, body: F)
where
    F: FnOnce(Arc<TestApp>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if backend == Backend::Postgres && !postgres_enabled() {
        return;
    }
    let app = Arc::new(TestApp::spawn(backend, config_text).await);
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
/// ```
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        $crate::db_test!($name, $crate::MINIMAL_CONFIG, $body);
    };
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::run($crate::Backend::Sqlite, $config, $body).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::run($crate::Backend::Postgres, $config, $body).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::database_name_url;

    #[test]
    fn database_urls_keep_host_and_query() {
        assert_eq!(
            database_name_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_name_url("postgres://u:p@h/db?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(database_name_url("postgres://h:1", "z"), "postgres://h:1/z");
    }
}
