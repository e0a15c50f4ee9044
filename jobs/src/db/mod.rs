//! Connecting to the database (embedded SQLite or PostgreSQL, one code path) and migrating it.
pub(crate) mod array;
pub mod catalog;
pub mod copy;
pub mod leases;

use crate::config::{describe_database, Config};
use buildfund_migration::{Migrator, MigratorTrait};
use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    TransactionTrait,
};
use std::path::PathBuf;
use std::time::Duration;

/// Why the database could not be opened or prepared; each step names what it was doing, its
/// source is the database's (or the file system's) own error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database ({database})")]
    Connect {
        database: String,
        #[source]
        source: DbErr,
    },
    #[error("cannot create the directory {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step of opening or migrating the database failed (`step` says which).
    #[error("{step}")]
    Step {
        step: &'static str,
        #[source]
        source: DbErr,
    },
}

impl DbError {
    /// The database's own error, when there is one.
    pub fn db_err(&self) -> Option<&DbErr> {
        match self {
            DbError::Connect { source, .. } | DbError::Step { source, .. } => Some(source),
            DbError::CreateDir { .. } => None,
        }
    }
}

fn step(step: &'static str) -> impl FnOnce(DbErr) -> DbError {
    move |source| DbError::Step { step, source }
}

/// Opens a pool on the configured database. A SQLite file is created when missing; every
/// SQLite connection is opened in WAL mode with full synchronous commits (see
/// `sqlite_durability`).
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbError> {
    let url = &config.database.url;
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(config.database.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if config.is_sqlite() {
        ensure_sqlite_parent(url)?;
        options.map_sqlx_sqlite_opts(sqlite_durability);
    }
    let db = Database::connect(options)
        .await
        .map_err(|source| DbError::Connect {
            database: describe_database(url),
            source,
        })?;
    Ok(db)
}

/// What every SQLite connection is opened with (docs/src/operations/moving-backups-and-crashes.md, "Crashes and durability"):
/// - `journal_mode = WAL`: readers never wait for the writer, and a transaction is committed
///   when its frames are in the write-ahead log; a crash at any point leaves the database as of
///   its last commit (an unfinished transaction is rolled back when the file is next opened);
/// - `synchronous = FULL`: the log is flushed to disk at every commit, so a committed
///   transaction survives a power loss or an operating system crash too (`NORMAL` would
///   survive a process crash alone, and could lose the last commits to a power loss);
/// - `foreign_keys = ON`: rows that belong to a parent go with it.
fn sqlite_durability(
    options: sea_orm::sqlx::sqlite::SqliteConnectOptions,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
}

fn ensure_sqlite_parent(url: &str) -> Result<(), DbError> {
    let Some(path) = crate::config::sqlite_path(url) else {
        return Ok(());
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(())
}

/// The row of `app_secrets` that holds the first run (RFC 3339): the instant the first
/// [`prepare`] of this database ran. Without a configured `ledger_start` the books begin at the
/// start of its month (the book's "Decisions": the books start at the first run).
pub const FIRST_RUN_ROW: &str = "first_run";

/// The first run recorded in the database, and whether this [`prepare`] recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstRun {
    pub at: DateTime<Utc>,
    pub now: bool,
}

/// Applies pending migrations, records the first run (once: the first caller's `now` is kept)
/// and stores the configured catalog (funds, pools, machines) as of `now`, in one transaction. On PostgreSQL that transaction first takes an advisory lock, so
/// several instances starting at once do this one after the other instead of racing; the lock
/// ends with the transaction, whatever happens.
pub async fn prepare(
    db: &DatabaseConnection,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<FirstRun, DbError> {
    // SQLite cannot queue writers the way PostgreSQL's lock does: a transaction that read
    // first fails at once with "database is locked" when another process writes. Several
    // instances starting on one SQLite file therefore retry for a while.
    let mut attempt = 0u32;
    loop {
        match prepare_once(db, config, now).await {
            Err(e) if attempt < 20 && e.db_err().is_some_and(is_busy) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            other => return other,
        }
    }
}

async fn prepare_once(
    db: &DatabaseConnection,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<FirstRun, DbError> {
    const LOCK: i64 = 0x6275_696c_6466; // "buildf"
    let txn = begin_write(db)
        .await
        .map_err(step("cannot start the migration transaction"))?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({LOCK})"))
            .await
            .map_err(step("cannot take the migration lock"))?;
    }
    Migrator::up(&txn, None)
        .await
        .map_err(step("migrating the database failed"))?;
    crate::db::catalog::store(&txn, config, now)
        .await
        .map_err(step(
            "storing the configured funds, pools and machines failed",
        ))?;
    let first_run = record_first_run(&txn, now)
        .await
        .map_err(step("recording the first run failed"))?;
    txn.commit()
        .await
        .map_err(step("committing the migrations failed"))?;
    Ok(first_run)
}

/// Inserts the first-run row unless there is one, then reads it back.
async fn record_first_run(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<FirstRun, DbErr> {
    use buildfund_entity::app_secrets;
    use sea_orm::sea_query::{OnConflict, Query};
    use sea_orm::EntityTrait;
    let now = crate::calendar::from_unix(now.timestamp());
    let insert = Query::insert()
        .into_table(app_secrets::Entity)
        .columns([
            app_secrets::Column::Name,
            app_secrets::Column::Value,
            app_secrets::Column::CreatedAt,
        ])
        .values_panic([
            FIRST_RUN_ROW.into(),
            crate::calendar::rfc3339(now).into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::column(app_secrets::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    let inserted = txn.execute(&insert).await?.rows_affected() == 1;
    let row = app_secrets::Entity::find_by_id(FIRST_RUN_ROW.to_string())
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("app_secrets.{FIRST_RUN_ROW}")))?;
    let at = crate::calendar::parse_rfc3339(&row.value).map_err(|e| {
        DbErr::Type(format!(
            "app_secrets.{FIRST_RUN_ROW} is not an RFC 3339 time: {e}"
        ))
    })?;
    Ok(FirstRun { at, now: inserted })
}

/// Whether the database answers and has every migration applied.
pub async fn readiness(db: &DatabaseConnection) -> Result<(), String> {
    db.ping()
        .await
        .map_err(|e| format!("database unreachable: {e}"))?;
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|e| format!("cannot read the migration table: {e}"))?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!("{} migration(s) not applied", pending.len()))
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so a concurrent writer makes it wait (up to the busy timeout) instead of
/// failing with "database is locked" when a transaction that read first tries to write.
/// PostgreSQL ignores the mode; a nested transaction is a savepoint either way.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, sea_orm::DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Takes the lock row `name` of `book_locks` for the rest of the caller's transaction: one
/// holder at a time across instances (on SQLite the write lock does it already). The row's
/// `taken_at` is the database's own time: it only marks the row as touched, nothing reads it.
pub async fn take_lock(db: &impl ConnectionTrait, name: &str) -> Result<(), sea_orm::DbErr> {
    use buildfund_entity::book_locks::{Column as L, Entity};
    use sea_orm::sea_query::{Expr, OnConflict, Query};
    let q = Query::insert()
        .into_table(Entity)
        .columns([L::Name, L::TakenAt])
        .values_panic([Expr::val(name), Expr::current_timestamp()])
        .on_conflict(
            OnConflict::column(L::Name)
                .update_column(L::TakenAt)
                .to_owned(),
        )
        .to_owned();
    db.execute(&q).await?;
    Ok(())
}

/// Whether an error means the database cannot be reached (down, restarting, connections cut),
/// as opposed to a problem with a statement: the caller should answer 503 and try again later.
pub fn is_unavailable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::DbErr;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(_) | DbErr::Query(_) => {
            let text = e.to_string().to_ascii_lowercase();
            [
                "connection refused",
                "connection reset",
                "broken pipe",
                "unexpected eof",
                "pool timed out",
                "pool closed",
                "terminating connection",
                "connection closed",
                "error communicating with database",
                "io error",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        }
        _ => false,
    }
}

/// Whether an error means SQLite's one writer slot stayed taken beyond the busy timeout
/// ("database is locked"): a transient condition, answered 503 with `Retry-After`.
pub fn is_busy(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("database is locked")
        || text.contains("database table is locked")
        || text.contains("database is busy")
}

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => "postgresql",
        DatabaseBackend::Sqlite => "sqlite",
        _ => "other",
    }
}

/// The rows of a table keyed by `(source, external_id)` (donations, expenses) with these ids of
/// `source`: the ids go in as one JSON array joined to the key index, not as a list of
/// parameters. PostgreSQL plans `external_id IN ($2, …)` over a table that has no statistics
/// yet (a first sync fills it in minutes) as a scan of the whole source with the list as a
/// filter, compared one by one: the first sync got slower with every page (822 records/s over
/// 100,000). A join reads each id through the index, or at worst hashes the list once.
pub async fn rows_by_source_keys<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    source: &str,
    ids: &[&str],
) -> Result<Vec<E::Model>, sea_orm::DbErr> {
    use sea_orm::{DbBackend, Statement};
    let table = E::default().table_name().to_string();
    let backend = db.get_database_backend();
    let ids = serde_json::to_string(ids).map_err(|e| sea_orm::DbErr::Json(e.to_string()))?;
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT t.* FROM json_array_elements_text($1::json) AS k(external_id) \
             JOIN {table} t ON t.source = $2 AND t.external_id = k.external_id"
        ),
        _ => format!(
            "SELECT t.* FROM json_each(?) AS k \
             JOIN {table} t ON t.source = ? AND t.external_id = k.value"
        ),
    };
    let statement = Statement::from_sql_and_values(backend, sql, [ids.into(), source.into()]);
    E::find().from_raw_sql(statement).all(db).await
}

/// Writes that are committed, and outlive the process that made them, without waiting for the
/// disk: the outbox records each message as sent with one of these, and makes them durable
/// with the next ordinary commit (each batch's last record, or its claim of the next batch).
///
/// - SQLite: a connection of its own on the same database with `synchronous = NORMAL`: the
///   commit is in the write-ahead log when the statement returns (a killed process loses
///   nothing), and is flushed to disk by the next `synchronous = FULL` commit of any connection
///   or by a checkpoint; a power loss before that can lose it;
/// - PostgreSQL: a connection of its own started with `synchronous_commit = off`, each
///   statement its own transaction (one round trip): committed and visible at once, flushed by
///   the server's WAL writer within `3 × wal_writer_delay` or by the next synchronous commit; a
///   crash of the server (not of the client) before that can lose it.
///
/// Its one connection is its own, kept between statements, not taken from a pool: sqlx's pool
/// pings a connection each time it is given back (a round trip to the server, or to SQLite's
/// connection thread, for every record). A statement that fails drops the connection; the next
/// one connects again.
pub struct RelaxedWriter {
    options: RelaxedOptions,
    conn: tokio::sync::Mutex<Option<RelaxedConnection>>,
}

enum RelaxedOptions {
    Sqlite(sea_orm::sqlx::sqlite::SqliteConnectOptions),
    Postgres(sea_orm::sqlx::postgres::PgConnectOptions),
}

enum RelaxedConnection {
    Sqlite(sea_orm::sqlx::SqliteConnection),
    Postgres(sea_orm::sqlx::PgConnection),
}

impl RelaxedWriter {
    /// A writer beside `db`, with its settings (it connects on its first write).
    pub fn open(db: &DatabaseConnection) -> RelaxedWriter {
        let options = match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                use sea_orm::sqlx::sqlite::SqliteSynchronous;
                let pool = db.get_sqlite_connection_pool();
                RelaxedOptions::Sqlite(
                    (*pool.connect_options())
                        .clone()
                        .synchronous(SqliteSynchronous::Normal),
                )
            }
            _ => {
                let pool = db.get_postgres_connection_pool();
                RelaxedOptions::Postgres(
                    (*pool.connect_options())
                        .clone()
                        .options([("synchronous_commit", "off")]),
                )
            }
        };
        RelaxedWriter {
            options,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs `stmt` and commits it; the rows it changed.
    pub async fn execute<S: sea_orm::StatementBuilder>(&self, stmt: &S) -> Result<u64, DbErr> {
        use sea_orm::sqlx::{query_with, AssertSqlSafe, ConnectOptions, Executor};
        use sea_orm::RuntimeErr::SqlxError;
        use sea_query_sqlx::SqlxValues;
        let mut slot = self.conn.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => match &self.options {
                RelaxedOptions::Sqlite(o) => o.connect().await.map(RelaxedConnection::Sqlite),
                RelaxedOptions::Postgres(o) => o.connect().await.map(RelaxedConnection::Postgres),
            }
            .map_err(|e| DbErr::Conn(SqlxError(e.into())))?,
        };
        let backend = match &conn {
            RelaxedConnection::Sqlite(_) => DatabaseBackend::Sqlite,
            RelaxedConnection::Postgres(_) => DatabaseBackend::Postgres,
        };
        let statement = backend.build(stmt);
        let values = SqlxValues(statement.values.unwrap_or(sea_orm::Values(Vec::new())));
        // The SQL is sea-query's, built from `stmt` with every value bound.
        let sql = AssertSqlSafe(statement.sql);
        let done = match &mut conn {
            RelaxedConnection::Sqlite(c) => c
                .execute(query_with(sql, values))
                .await
                .map(|r| r.rows_affected()),
            RelaxedConnection::Postgres(c) => c
                .execute(query_with(sql, values))
                .await
                .map(|r| r.rows_affected()),
        };
        // After a failure the connection may be broken: it is dropped, and the next statement
        // opens a new one.
        if done.is_ok() {
            *slot = Some(conn);
        }
        done.map_err(|e| DbErr::Exec(SqlxError(e.into())))
    }

    /// Closes its connection.
    pub async fn close(self) {
        use sea_orm::sqlx::Connection;
        match self.conn.into_inner() {
            Some(RelaxedConnection::Sqlite(c)) => {
                let _ = c.close().await;
            }
            Some(RelaxedConnection::Postgres(c)) => {
                let _ = c.close().await;
            }
            None => {}
        }
    }
}
