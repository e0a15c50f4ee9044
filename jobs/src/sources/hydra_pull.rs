//! The Hydra pull: finished build steps read straight from Hydra's own PostgreSQL database
//! (Hydra's HTTP API has no step history), stored as build steps under the configured source.
//!
//! **What is read.** `buildsteps` joined to `builds` (for `job`) and `jobsets` (for `project` and
//! the jobset `name`), keeping only steps that occupied a builder and are over:
//!
//! * `type = 0`: builds; substitutions (`type = 1`) run on the queue runner's host, not a builder;
//! * `busy = 0`: finished; a step still running has no stop time yet and comes with a later pull;
//! * `machine <> ''`: ran on a machine;
//! * `starttime IS NOT NULL AND stoptime IS NOT NULL AND stoptime > starttime`. A step that was
//!   running when the queue runner stopped or restarted is marked aborted with a **NULL stop
//!   time**: Hydra lost its machine time, so it is skipped (not estimated). Steps with
//!   `start = stop` are skipped too: machine time counts `[start, stop)`, so they would add
//!   nothing, and in Hydra they are cached failures;
//! * `status` is not 8 (cached failure): such rows never ran anything. Failed (1), aborted (3)
//!   and timed-out (7) steps did use the machine and are kept.
//!
//! Each row becomes one [`StepRecord`]: `build`, `step` = `stepnr`, `project`, `jobset`, `job`,
//! `system`, `machine` exactly as Hydra stores it (the C++ queue runner's store URI such as
//! `ssh://nix@build04.nix-community.org`; list it in a machine's `aliases` to price it), `start`,
//! `stop` (`starttime`/`stoptime`; the copy `overhead` is not added) and `status`. Every record
//! goes through the same validation as an ingested one; a row it refuses (say, a step longer
//! than 31 days) is skipped, counted and named in the report rather than stopping every later
//! pull on it.
//!
//! **Incremental.** Rows are read in pages of [`PAGE_SIZE`], ordered and keyset-paged by
//! `(stoptime, build, stepnr)`, from `stoptime >= cursor - overlap_seconds` (never before
//! `ledger_start`; the first pull, with no cursor, starts at `ledger_start`). Each page is stored
//! with [`ingest::ingest_records`] in its own transaction (upsert by `(source, build, step)`), and
//! only after that commit is the cursor — the largest stop time stored so far — written to
//! `sync_cursors` under `hydra:<source>`. A pull that fails half-way therefore resumes from the
//! last stored page, and the cursor never passes a step that was not stored. The overlap re-reads
//! steps whose rows were committed late (a step's stop time is set when it finishes, but the
//! write can land after a later step's); re-read rows come back "unchanged", so reruns are
//! idempotent. To re-read everything, delete the `sync_cursors` row.
//!
//! **Access.** The URL comes from the environment variable named by `hydra.database_url_env`
//! (a read-only role is enough); it is never logged, and messages name the host and database
//! only. Each page is read in a `READ ONLY` transaction with a statement timeout, on a pool of
//! one connection that is closed at the end of the pull.
//!
//! Caveat from Hydra's data model: a step shared by several builds is stored once, under one of
//! them, so the attribution is first-come, not Hydra's scheduling fair share.
use crate::config::secrets::Missing;
use crate::config::{Config, HydraConfig, Secret, Secrets};
use crate::sources::error::{CursorFormat, SourceError};
use crate::sources::ingest::record::{validate, Field, RawRecord};
use crate::sources::ingest::{self, StepRecord};
use chrono::{DateTime, Utc};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    QueryResult, Statement, TransactionTrait, Value,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// Rows read from Hydra and stored per page (and per transaction).
pub const PAGE_SIZE: u64 = 5000;
/// The longest a page's query may run on the Hydra database.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many skipped rows are named in a report.
pub const MAX_LISTED_SKIPS: usize = 20;

/// One stored page, as reported to the progress callback.
#[derive(Clone, Debug, Serialize)]
pub struct PageReport {
    /// 1-based page number.
    pub page: u64,
    /// Rows read from Hydra in this page.
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows refused by the record validation (not stored).
    pub skipped: u64,
    /// The stop time of the page's last row (unix seconds).
    pub last_stop: i64,
    /// The cursor stored after this page (unix seconds).
    pub cursor: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PullReport {
    /// The build-step source the rows were stored under.
    pub source: String,
    /// The `sync_cursors` name of the cursor (`hydra:<source>`).
    pub cursor_name: String,
    /// Pages that held at least one row.
    pub pages: u64,
    /// Rows read from Hydra (stored or skipped).
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows refused by the record validation; the first [`MAX_LISTED_SKIPS`] are in `skips`.
    pub skipped: u64,
    pub skips: Vec<String>,
    /// The lowest stop time this pull read from (unix seconds).
    pub read_from: i64,
    /// The stored cursor before and after the pull (largest stored stop time, unix seconds).
    pub cursor_before: Option<i64>,
    pub cursor_after: Option<i64>,
    /// Machines of the pulled steps that are not configured (by name or alias), with how many
    /// steps ran on each; their steps are stored and shown as unpriced.
    pub unpriced_machines: BTreeMap<String, u64>,
}

/// The `sync_cursors` name of a source's cursor.
pub fn cursor_name(source: &str) -> String {
    format!("hydra:{source}")
}

/// Pulls the finished build steps that are new since the last pull, in pages of
/// [`PAGE_SIZE`], calling `progress` after each stored page.
pub async fn pull(
    db: &DatabaseConnection,
    config: &Config,
    secrets: &Secrets,
    now: DateTime<Utc>,
    progress: impl Fn(&PageReport),
) -> Result<PullReport, SourceError> {
    pull_with_page_size(db, config, secrets, PAGE_SIZE, now, progress).await
}

/// [`pull`] with another page size (tests use small pages to cross page boundaries). Its log
/// lines are in the span `sync` (`source = "hydra"`).
#[tracing::instrument(
    name = "sync",
    skip_all,
    fields(source = "hydra", hydra_source = tracing::field::Empty, page_size)
)]
pub async fn pull_with_page_size(
    db: &DatabaseConnection,
    config: &Config,
    secrets: &Secrets,
    page_size: u64,
    now: DateTime<Utc>,
    progress: impl Fn(&PageReport),
) -> Result<PullReport, SourceError> {
    let hydra = config.hydra.as_ref().ok_or_else(|| SourceError::NoHydra {
        config: config.source.clone(),
    })?;
    tracing::Span::current().record("hydra_source", hydra.source.as_str());
    let hydra_db = connect(hydra, secrets.hydra_database_url.as_ref()).await?;
    let result = pull_from(
        db,
        config,
        hydra,
        &hydra_db,
        page_size.max(1),
        now,
        progress,
    )
    .await;
    hydra_db.close().await.ok();
    result
}

/// The Hydra database URL from the environment, checked so that no message ever shows it.
fn database_url(secret: Option<&Secret>) -> Result<(SecretString, String), SourceError> {
    let secret = secret.ok_or(SourceError::NoHydraUrlEnv)?;
    let var = secret.var.clone();
    let url = match secret.value() {
        Ok(url) => url.expose_secret().trim().to_string(),
        Err(e) if e.why == Missing::Empty => return Err(SourceError::HydraUrlEmpty { var }),
        Err(e) if e.why == Missing::NotSet => return Err(SourceError::HydraUrlNotSet { var }),
        Err(_) => return Err(SourceError::HydraUrlNotUnicode { var }),
    };
    // sea-orm panics on a URL it cannot parse, and its errors may quote the URL: check first,
    // and never quote it.
    let options = match PgConnectOptions::from_str(&url) {
        Ok(o) if url.starts_with("postgres://") || url.starts_with("postgresql://") => o,
        _ => return Err(SourceError::HydraUrlNotPostgres { var }),
    };
    let described = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    );
    Ok((SecretString::from(url), described))
}

async fn connect(
    hydra: &HydraConfig,
    secret: Option<&Secret>,
) -> Result<DatabaseConnection, SourceError> {
    let (url, described) = database_url(secret)?;
    let mut options = ConnectOptions::new(url.expose_secret().to_string());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(Duration::from_secs(60))
        .set_application_name("buildfund hydra pull")
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|source| SourceError::HydraConnect {
            at: described,
            var: hydra.database_url_env.clone().unwrap_or_default(),
            source,
        })
}

/// The steps query: `after` is `None` for the first page (everything from `from`), else the
/// `(stoptime, build, stepnr)` key of the last row read.
fn page_statement(from: i64, after: Option<(i64, i64, i32)>, limit: u64) -> Statement {
    let mut sql = String::from(
        "SELECT s.build::bigint AS build, s.stepnr::integer AS stepnr, \
                j.project AS project, j.name AS jobset, b.job AS job, \
                s.system AS system, s.machine AS machine, \
                s.starttime::bigint AS starttime, s.stoptime::bigint AS stoptime, \
                s.status::integer AS status \
         FROM buildsteps s \
         JOIN builds b ON b.id = s.build \
         JOIN jobsets j ON j.id = b.jobset_id \
         WHERE s.type = 0 AND s.busy = 0 AND s.machine <> '' \
           AND s.starttime IS NOT NULL AND s.stoptime IS NOT NULL \
           AND s.stoptime > s.starttime \
           AND (s.status IS NULL OR s.status <> 8) \
           AND s.stoptime >= $1 ",
    );
    let mut values: Vec<Value> = Vec::new();
    match after {
        None => values.push(from.into()),
        Some((stop, build, step)) => {
            // The plain `stoptime >= $1` lets PostgreSQL use Hydra's index on stoptime.
            sql.push_str("AND (s.stoptime, s.build, s.stepnr) > ($1, $2, $3) ");
            values.extend([stop.into(), build.into(), step.into()]);
        }
    }
    sql.push_str(&format!(
        "ORDER BY s.stoptime, s.build, s.stepnr LIMIT {limit}"
    ));
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// One row of the steps query, before validation.
#[derive(Debug)]
struct Row {
    build: i64,
    step: i32,
    project: Option<String>,
    jobset: Option<String>,
    job: Option<String>,
    system: Option<String>,
    machine: Option<String>,
    start: i64,
    stop: i64,
    status: Option<i32>,
}

impl Row {
    fn read(r: &QueryResult) -> Result<Row, sea_orm::DbErr> {
        Ok(Row {
            build: r.try_get("", "build")?,
            step: r.try_get("", "stepnr")?,
            project: r.try_get("", "project")?,
            jobset: r.try_get("", "jobset")?,
            job: r.try_get("", "job")?,
            system: r.try_get("", "system")?,
            machine: r.try_get("", "machine")?,
            start: r.try_get("", "starttime")?,
            stop: r.try_get("", "stoptime")?,
            status: r.try_get("", "status")?,
        })
    }

    /// The record buildfund stores, validated like an ingested one.
    fn record(&self, source: &str) -> Result<StepRecord, String> {
        let text = |s: &Option<String>| s.clone().map(Field::Str);
        let raw = RawRecord {
            source: Some(Field::Str(source.to_string())),
            build: Some(Field::Int(self.build)),
            step: Some(Field::Int(self.step.into())),
            project: text(&self.project),
            jobset: text(&self.jobset),
            job: text(&self.job),
            system: text(&self.system),
            machine: text(&self.machine),
            start: Some(Field::Int(self.start)),
            stop: Some(Field::Int(self.stop)),
            status: self.status.map(|s| Field::Int(s.into())),
        };
        validate(raw, 0, 0).map_err(|errors| {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            format!(
                "build {} step {}: {}",
                self.build,
                self.step,
                reasons.join("; ")
            )
        })
    }
}

async fn read_page(
    hydra_db: &DatabaseConnection,
    statement: Statement,
) -> Result<Vec<Row>, sea_orm::DbErr> {
    let txn = hydra_db
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await?;
    txn.execute_unprepared(&format!(
        "SET LOCAL statement_timeout = {}",
        STATEMENT_TIMEOUT.as_millis()
    ))
    .await?;
    let rows = txn.query_all_raw(statement).await?;
    txn.commit().await?;
    rows.iter().map(Row::read).collect()
}

async fn read_cursor(db: &DatabaseConnection, name: &str) -> Result<Option<i64>, SourceError> {
    let Some(value) = crate::sources::cursors::read(db, name).await? else {
        return Ok(None);
    };
    match value.parse::<i64>() {
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(SourceError::CursorUnreadable {
            name: name.to_string(),
            value,
            expected: CursorFormat::UnixSeconds,
        }),
    }
}

async fn store_cursor(
    db: &DatabaseConnection,
    name: &str,
    value: i64,
    now: DateTime<Utc>,
) -> Result<(), SourceError> {
    crate::sources::cursors::store(db, name, value.to_string(), now).await
}

async fn pull_from(
    db: &DatabaseConnection,
    config: &Config,
    hydra: &HydraConfig,
    hydra_db: &DatabaseConnection,
    page_size: u64,
    now: DateTime<Utc>,
    progress: impl Fn(&PageReport),
) -> Result<PullReport, SourceError> {
    let name = cursor_name(&hydra.source);
    let cursor_before = read_cursor(db, &name).await?;
    let ledger_start = config.ledger_start.timestamp();
    let read_from = match cursor_before {
        Some(c) => c.saturating_sub(hydra.overlap_seconds).max(ledger_start),
        None => ledger_start,
    };
    let mut report = PullReport {
        source: hydra.source.clone(),
        cursor_name: name.clone(),
        read_from,
        cursor_before,
        cursor_after: cursor_before,
        ..PullReport::default()
    };
    let mut after: Option<(i64, i64, i32)> = None;
    loop {
        let statement = page_statement(read_from, after, page_size);
        let rows =
            read_page(hydra_db, statement)
                .await
                .map_err(|source| SourceError::HydraRead {
                    page: report.pages + 1,
                    source,
                })?;
        let Some(last) = rows.last() else { break };
        after = Some((last.stop, last.build, last.step));
        let last_stop = last.stop;
        let full = rows.len() as u64 >= page_size;

        let mut records = Vec::with_capacity(rows.len());
        let mut skipped = 0;
        for row in &rows {
            match row.record(&hydra.source) {
                Ok(r) => records.push(r),
                Err(why) => {
                    skipped += 1;
                    tracing::warn!(source = %hydra.source, "skipped a Hydra build step: {why}");
                    if report.skips.len() < MAX_LISTED_SKIPS {
                        report.skips.push(why);
                    }
                }
            }
        }
        let stored_max = records.iter().map(|r| r.stop).max();
        let stored = ingest::ingest_records(db, config, records, now)
            .await
            .map_err(|source| SourceError::HydraStore {
                page: report.pages + 1,
                source,
            })?;
        // Only now that the page is committed may the cursor move, and only forward.
        if let Some(stop) = stored_max {
            let cursor = report.cursor_after.map_or(stop, |c| c.max(stop));
            store_cursor(db, &name, cursor, now).await?;
            report.cursor_after = Some(cursor);
        }

        report.pages += 1;
        report.rows += rows.len() as u64;
        report.inserted += stored.inserted;
        report.updated += stored.updated;
        report.unchanged += stored.unchanged;
        report.skipped += skipped;
        for (machine, n) in stored.unpriced_machines {
            *report.unpriced_machines.entry(machine).or_insert(0) += n;
        }
        progress(&PageReport {
            page: report.pages,
            rows: rows.len() as u64,
            inserted: stored.inserted,
            updated: stored.updated,
            unchanged: stored.unchanged,
            skipped,
            last_stop,
            cursor: report.cursor_after,
        });
        if !full {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            build: 4718201,
            step: 1,
            project: Some("nixpkgs".into()),
            jobset: Some("cuda".into()),
            job: Some("python3Packages.torch.x86_64-linux".into()),
            system: Some("x86_64-linux".into()),
            machine: Some("ssh://nix@build04.nix-community.org".into()),
            start: 1787184301,
            stop: 1787190095,
            status: Some(0),
        }
    }

    #[test]
    fn a_row_maps_to_a_record_with_the_raw_machine() {
        let r = row().record("hydra").unwrap();
        assert_eq!(r.key(), ("hydra", 4718201, 1));
        assert_eq!(r.machine, "ssh://nix@build04.nix-community.org");
        assert_eq!((r.project.as_str(), r.jobset.as_str()), ("nixpkgs", "cuda"));
        assert_eq!(r.stop - r.start, 5794);
        assert_eq!(r.status, Some(0));
    }

    #[test]
    fn a_row_the_ingest_would_refuse_is_named() {
        let mut bad = row();
        bad.stop = bad.start + 40 * 86_400;
        bad.jobset = Some(String::new());
        let why = bad.record("hydra").unwrap_err();
        assert!(why.starts_with("build 4718201 step 1: jobset: must not be empty; stop: "));
        assert!(why.contains("more than 31 days"), "{why}");
    }

    #[test]
    fn later_pages_continue_after_the_last_key() {
        let first = page_statement(100, None, 5000);
        assert!(first.sql.contains("s.stoptime >= $1 ORDER BY"));
        assert!(first.sql.ends_with("LIMIT 5000"));
        assert_eq!(first.values.unwrap().0.len(), 1);
        let next = page_statement(100, Some((200, 7, 3)), 10);
        assert!(next
            .sql
            .contains("(s.stoptime, s.build, s.stepnr) > ($1, $2, $3)"));
        assert_eq!(
            next.values.unwrap().0,
            vec![Value::from(200i64), Value::from(7i64), Value::from(3i32)]
        );
    }

    /// The Hydra database URL as `[hydra] database_url_env = "<var>"` reads it.
    fn url_of(var: &str) -> Result<(SecretString, String), SourceError> {
        database_url(Some(&Secret::read("hydra.database_url_env", var)))
    }

    /// The scheduler spawns the pull on the runtime: its future must be `Send`.
    #[allow(dead_code)]
    fn the_pull_can_be_spawned(db: &DatabaseConnection, config: &Config, secrets: &Secrets) {
        fn send<T: Send>(_: T) {}
        send(pull(
            db,
            config,
            secrets,
            DateTime::<Utc>::UNIX_EPOCH,
            |_| {},
        ));
    }

    #[test]
    fn an_unset_variable_is_named() {
        let e = url_of("BUILDFUND_HYDRA_UNIT_TEST_UNSET")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the environment variable BUILDFUND_HYDRA_UNIT_TEST_UNSET (hydra.database_url_env) is not set; set it to the Hydra PostgreSQL URL"
        );
    }

    #[test]
    fn a_bad_url_is_never_shown() {
        // A unique variable per case: unit tests run as threads of one process.
        for (i, url) in [
            "mysql://hydra:hunter2@db/hydra",
            "postgres://hydra:hunter2@db:notaport/hydra",
            "hydra:hunter2",
        ]
        .into_iter()
        .enumerate()
        {
            let var = format!("BUILDFUND_HYDRA_UNIT_TEST_BAD_{i}");
            std::env::set_var(&var, url);
            let e = url_of(&var).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("the environment variable {var} (hydra.database_url_env) does not hold a postgres:// URL")
            );
        }
        std::env::set_var(
            "BUILDFUND_HYDRA_UNIT_TEST_GOOD",
            "postgresql://hydra:hunter2@db.example.org:5433/hydra",
        );
        let (_, described) = url_of("BUILDFUND_HYDRA_UNIT_TEST_GOOD").unwrap();
        assert_eq!(described, "db.example.org:5433/hydra");
    }
}
