//! Scratch PostgreSQL databases, for the tests (on the `TEST_DATABASE_URL` server) and for the
//! benchmarks (on the `BENCH_DATABASE_URL` server): one piece of code creates and drops them.
//!
//! A scratch database is named `PREFIX_<unix time>_<random>`. The first creation in a process
//! drops that prefix's databases of earlier runs that are over an hour old (a run that was
//! killed never dropped its own).
use sea_orm::{ConnectionTrait, Database};
use std::collections::HashSet;
use std::sync::Mutex;

/// The prefix of the tests' databases.
pub const TEST_PREFIX: &str = "bft";
/// The prefix of the benchmarks' databases.
pub const BENCH_PREFIX: &str = "bfb";

/// Where PostgreSQL tests create their databases, or why they cannot run.
pub(crate) fn postgres_admin_url() -> Result<String, String> {
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

/// `admin` with its path (the database name) replaced by `name`, keeping its query.
pub(crate) fn database_name_url(admin: &str, name: &str) -> String {
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

/// The database name in a PostgreSQL URL.
pub(crate) fn database_name(url: &str) -> &str {
    url.rsplit('/')
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
}

/// Creates a fresh database named `PREFIX_<time>_<random>` on the server of `admin_url` and
/// returns its URL; drops the prefix's leftovers over an hour old on the first call.
pub async fn create_database(admin_url: &str, prefix: &str) -> anyhow::Result<String> {
    let admin = Database::connect(admin_url).await?;
    static CLEANED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = CLEANED
        .lock()
        .expect("cleaned prefixes")
        .get_or_insert_with(HashSet::new)
        .insert(prefix.to_string());
    let now = chrono::Utc::now().timestamp();
    if first {
        let rows = admin
            .query_all_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}\\_%'"),
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
    let name = format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    Ok(database_name_url(admin_url, &name))
}

/// Drops a database made by [`create_database`] on the server of `admin_url`.
pub async fn drop_database(admin_url: &str, url: &str) -> anyhow::Result<()> {
    let name = database_name(url);
    let admin = Database::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Refuses new connections to the test database of `url` and ends its open ones (the
/// database stays, and is dropped as usual).
pub async fn refuse_connections(url: &str) -> anyhow::Result<()> {
    let admin_url = postgres_admin_url().map_err(anyhow::Error::msg)?;
    let name = database_name(url);
    let admin = Database::connect(admin_url.as_str()).await?;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
        ))
        .await?;
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Creates a fresh test database on the `TEST_DATABASE_URL` server and returns its URL.
/// Tests use it for side databases too (a Hydra database), dropping them with
/// [`drop_postgres_database`].
pub async fn create_postgres_database() -> anyhow::Result<String> {
    let admin_url = postgres_admin_url().map_err(anyhow::Error::msg)?;
    create_database(&admin_url, TEST_PREFIX).await
}

/// Drops a database made by [`create_postgres_database`].
pub async fn drop_postgres_database(url: &str) {
    if let Ok(admin_url) = postgres_admin_url() {
        let _ = drop_database(&admin_url, url).await;
    }
}

/// An empty database for a storage test that migrates it itself (to a chosen migration, say):
/// an SQLite file in a temporary directory or a fresh PostgreSQL database, connected the way
/// the server connects (`buildfund_jobs::db::connect`), with no migration applied.
pub struct ScratchDatabase {
    pub db: sea_orm::DatabaseConnection,
    pub backend: crate::Backend,
    url: String,
    _dir: tempfile::TempDir,
}

impl ScratchDatabase {
    /// `None` when the PostgreSQL half is skipped knowingly (see [`postgres_enabled`]).
    pub async fn create(backend: crate::Backend) -> Option<ScratchDatabase> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            crate::Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("scratch.sqlite").display()
            ),
            crate::Backend::Postgres => {
                if !postgres_enabled() {
                    return None;
                }
                create_postgres_database()
                    .await
                    .expect("cannot create a PostgreSQL test database")
            }
        };
        let mut config = buildfund_jobs::Config::parse(crate::MINIMAL_CONFIG, "scratch")
            .expect("the minimal config is valid");
        config.database.url = url.clone();
        let db = buildfund_jobs::db::connect(&config)
            .await
            .expect("connect to the scratch database");
        Some(ScratchDatabase {
            db,
            backend,
            url,
            _dir: dir,
        })
    }

    /// Closes the connections and drops the PostgreSQL database (the SQLite file goes with
    /// its directory).
    pub async fn drop(self) {
        let _ = self.db.close().await;
        if self.backend == crate::Backend::Postgres {
            drop_postgres_database(&self.url).await;
        }
    }
}

/// A benchmark's database: a scratch database on the `BENCH_DATABASE_URL` server (dropped by
/// [`BenchDatabase::drop`]), or, without that variable, `None`.
pub struct BenchDatabase {
    pub url: String,
    admin_url: String,
}

impl BenchDatabase {
    /// A scratch database on the `BENCH_DATABASE_URL` server, or `None` when it is not set.
    pub async fn create() -> anyhow::Result<Option<BenchDatabase>> {
        let Ok(admin_url) = std::env::var("BENCH_DATABASE_URL") else {
            return Ok(None);
        };
        anyhow::ensure!(
            admin_url.starts_with("postgres"),
            "BENCH_DATABASE_URL must name a PostgreSQL server, not {admin_url}"
        );
        let url = create_database(&admin_url, BENCH_PREFIX).await?;
        Ok(Some(BenchDatabase { url, admin_url }))
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        drop_database(&self.admin_url, &self.url).await
    }
}

#[cfg(test)]
mod tests {
    use super::{database_name, database_name_url};

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
        assert_eq!(database_name("postgres://u:p@h/y?sslmode=disable"), "y");
    }
}
