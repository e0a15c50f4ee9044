//! `buildfund db copy --to URL`: everything the configured database holds, copied into an empty
//! database of either kind (SQLite → PostgreSQL, PostgreSQL → SQLite, or the same kind).
//!
//! - The source is read in one snapshot: a read-only `REPEATABLE READ` transaction on
//!   PostgreSQL, one read transaction on SQLite (in WAL mode a reader sees the database as it
//!   was at its first read, while writers go on). So the copy can run beside `serve`.
//! - The target is migrated first, then written in one transaction, and the copy compares every
//!   table inside that transaction before it commits: on any error, or any difference, the
//!   transaction is rolled back and the target holds no rows (only the migrated, empty schema).
//! - A target that already holds a row in any table is refused before anything is written.
//! - Every table the migrations create is copied (the migration table itself is the target's
//!   own). Tables are written parents first, following the foreign keys of the target's schema.
//! - The comparison: row counts, and a SHA-256 digest of every row of every table in primary key
//!   order, computed from the rows read from the source and from the rows read back from the
//!   target. Timestamps are compared (and copied) to the microsecond, PostgreSQL's precision.
//!
//! Nothing is recomputed: stored books, token hashes, claims and cursors travel as rows, so the
//! copy answers every read as the source did.
use buildfund_migration::{Migrator, MigratorTrait};
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::TryStreamExt;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, IsolationLevel, QueryResult, Statement, StreamTrait,
    TransactionTrait, Value,
};
// The SQL sent to PostgreSQL over sqlx is built from the names the databases' own catalogs list,
// each quoted as an identifier (`quote`); every value travels as a parameter or as COPY data.
use sea_orm::sqlx::AssertSqlSafe;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The migration table: each database keeps its own.
const MIGRATION_TABLE: &str = "seaql_migrations";
/// Tables the migrations themselves fill on an empty database (`book_bounds` starts with the
/// longest step stored, 0): a target with rows only there is empty, and the copy replaces them
/// with the source's. A test migrates an empty database and checks that no other table gets a
/// row, so a migration that starts seeding another table has to be named here.
pub const MIGRATION_SEEDS: &[&str] = &["book_bounds"];
/// Bound parameters per multi-row INSERT (PostgreSQL allows 65,535, SQLite 32,766).
const PARAMETERS_PER_INSERT: usize = 30_000;
/// Values per `COPY … FROM STDIN` statement (PostgreSQL targets).
const COPY_CELLS_PER_SEND: usize = 1_000_000;
/// Rows between two progress reports of one table.
const PROGRESS_EVERY: u64 = 100_000;

/// Why a copy did not happen; the target is left without rows in every case.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target URL must start with sqlite: or postgres:// (got {0})")]
    TargetUrl(String),
    #[error("the target is the configured database itself ({0})")]
    SameDatabase(String),
    #[error("cannot connect to the target ({target}): {source}")]
    Connect { target: String, source: DbErr },
    #[error(
        "the target ({target}) already holds data ({table}: {rows} rows); db copy only writes \
         into an empty database, and changed nothing"
    )]
    TargetNotEmpty {
        target: String,
        table: String,
        rows: u64,
    },
    #[error(
        "the source database is not at this buildfund's schema ({detail}); run `buildfund \
         migrate` against it first (or use the buildfund that wrote it)"
    )]
    SourceSchema { detail: String },
    #[error("the table {table} differs between source and target: {detail}")]
    Schema { table: String, detail: String },
    #[error("{table}.{column} has the type {declared}, which db copy does not know how to copy")]
    UnsupportedType {
        table: String,
        column: String,
        declared: String,
    },
    #[error("{table}: a value of {column} does not fit the target's column ({detail})")]
    Value {
        table: String,
        column: String,
        detail: String,
    },
    #[error(
        "{table} differs after the copy: {source_rows} rows with digest {source_digest} read \
         from the source, {target_rows} rows with digest {target_digest} read back from the \
         target; the target was rolled back"
    )]
    Mismatch {
        table: String,
        source_rows: u64,
        source_digest: String,
        target_rows: u64,
        target_digest: String,
    },
    #[error("writing the PostgreSQL target failed: {0}")]
    Postgres(#[from] sea_orm::sqlx::Error),
    #[error("migrating the target failed: {0}")]
    Migrate(DbErr),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a long copy reports as it goes (the CLI prints it on standard error).
#[derive(Debug, Clone)]
pub enum Progress {
    /// The source's snapshot is open and counted: `tables` tables, `rows` rows in all.
    Planned { tables: usize, rows: u64 },
    /// `done` of the `total` rows of `table` are written.
    Rows {
        table: String,
        done: u64,
        total: u64,
    },
    /// `table` is written: `rows` rows in `elapsed`.
    Table {
        table: String,
        rows: u64,
        elapsed: Duration,
    },
    /// Every table is being read back from the target and compared.
    Comparing,
}

/// One copied table, as compared on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    /// SHA-256 (hex) of the table's rows in primary-key order, equal on both sides.
    pub digest: String,
}

/// A finished copy.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Parents first, the order they were written in.
    pub tables: Vec<TableCopy>,
    pub rows: u64,
    pub elapsed: Duration,
    /// The target, described without its credentials.
    pub target: String,
}

/// A database URL the copy may write to: `sqlite:` (a missing file is created) or
/// `postgres://`/`postgresql://`.
pub fn check_target_url(url: &str) -> Result<String, CopyError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    if let Some(path) = crate::config::sqlite_path(url) {
        if path.is_empty() || path == ":memory:" {
            return Err(CopyError::TargetUrl(
                "an SQLite target needs a file path".to_string(),
            ));
        }
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(CopyError::TargetUrl(format!(
                    "the directory {} does not exist",
                    parent.display()
                )));
            }
        }
        return Ok(if url.contains("mode=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        });
    }
    Err(CopyError::TargetUrl(crate::config::describe_database(url)))
}

/// Copies everything `source` holds into the empty database at `target_url` (see the module's
/// documentation), reporting progress to `progress`.
pub async fn copy(
    source: &DatabaseConnection,
    source_url: &str,
    target_url: &str,
    mut progress: impl FnMut(Progress),
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    let target_url = check_target_url(target_url)?;
    let shown = crate::config::describe_database(&target_url);
    if same_database(source_url, &target_url) {
        return Err(CopyError::SameDatabase(shown));
    }
    let mut options = ConnectOptions::new(target_url.clone());
    options
        .max_connections(2)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let target = Database::connect(options)
        .await
        .map_err(|source| CopyError::Connect {
            target: shown.clone(),
            source,
        })?;

    // Refused before the target's schema is touched.
    let existing = Catalog::read(&target).await?;
    for table in existing.tables.keys() {
        if MIGRATION_SEEDS.contains(&table.as_str()) {
            continue;
        }
        let rows = count(&target, table).await?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty {
                target: shown,
                table: table.clone(),
                rows,
            });
        }
    }
    Migrator::up(&target, None)
        .await
        .map_err(CopyError::Migrate)?;

    let snapshot = match source.get_database_backend() {
        DatabaseBackend::Postgres => {
            source
                .begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await?
        }
        _ => source.begin().await?,
    };
    check_source_schema(&snapshot).await?;
    let from = Catalog::read(&snapshot).await?;
    let to = Catalog::read(&target).await?;
    let order = to.parents_first();
    let mut plan = Vec::with_capacity(order.len());
    let mut total = 0u64;
    for table in &order {
        let columns = from.columns_for(table, &to)?;
        let rows = count(&snapshot, table).await?;
        total += rows;
        plan.push((table.clone(), columns, rows));
    }
    progress(Progress::Planned {
        tables: plan.len(),
        rows: total,
    });

    let mut writer = Writer::begin(&target).await?;
    for table in MIGRATION_SEEDS {
        writer
            .execute(&format!("DELETE FROM {}", quote(table)))
            .await?;
    }
    let mut copied = Vec::with_capacity(plan.len());
    for (table, columns, rows) in &plan {
        let t0 = Instant::now();
        let (n, digest) =
            copy_table(&snapshot, &mut writer, table, columns, *rows, &mut progress).await?;
        progress(Progress::Table {
            table: table.clone(),
            rows: n,
            elapsed: t0.elapsed(),
        });
        copied.push(TableCopy {
            table: table.clone(),
            rows: n,
            digest,
        });
        if n > 0 {
            crate::pause_points::reached("db_copy.table_written").await;
        }
    }
    snapshot.commit().await?;
    writer.reset_sequences(&to).await?;

    progress(Progress::Comparing);
    for (copy, (table, columns, _)) in copied.iter().zip(&plan) {
        let (rows, digest) = writer.digest(table, columns).await?;
        if rows != copy.rows || digest != copy.digest {
            return Err(CopyError::Mismatch {
                table: table.clone(),
                source_rows: copy.rows,
                source_digest: copy.digest.clone(),
                target_rows: rows,
                target_digest: digest,
            });
        }
    }
    writer.commit().await?;
    target.close().await.ok();
    Ok(CopyReport {
        rows: copied.iter().map(|t| t.rows).sum(),
        tables: copied,
        elapsed: started.elapsed(),
        target: shown,
    })
}

/// Reads the digest and row count of every table of `db`, as the copy compares them: the
/// digests of a copy's source and target are equal.
pub async fn digests(db: &DatabaseConnection) -> Result<Vec<TableCopy>, CopyError> {
    let catalog = Catalog::read(db).await?;
    let mut out = Vec::new();
    for table in catalog.parents_first() {
        let columns = catalog.columns_for(&table, &catalog)?;
        let (rows, digest) = digest_table(db, &table, &columns).await?;
        out.push(TableCopy {
            table,
            rows,
            digest,
        });
    }
    Ok(out)
}

/// Whether two URLs name the same database (the same SQLite file, or the same PostgreSQL URL).
fn same_database(a: &str, b: &str) -> bool {
    fn key(url: &str) -> String {
        match crate::config::sqlite_path(url) {
            Some(path) => std::fs::canonicalize(path)
                .map(|p| format!("sqlite:{}", p.display()))
                .unwrap_or_else(|_| format!("sqlite:{path}")),
            None => url.split('?').next().unwrap_or(url).to_string(),
        }
    }
    key(a) == key(b)
}

/// The source must have exactly this binary's migrations applied: the target is migrated by
/// this binary, and the rows must fit its tables.
async fn check_source_schema(db: &DatabaseTransaction) -> Result<(), CopyError> {
    let expected: BTreeSet<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let rows = db
        .query_all_raw(Statement::from_string(
            ConnectionTrait::get_database_backend(db),
            format!("SELECT version FROM {MIGRATION_TABLE}"),
        ))
        .await
        .map_err(|e| CopyError::SourceSchema {
            detail: format!("its migration table cannot be read: {e}"),
        })?;
    let applied: BTreeSet<String> = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    if let Some(missing) = expected.difference(&applied).next() {
        return Err(CopyError::SourceSchema {
            detail: format!("the migration {missing} is not applied"),
        });
    }
    if let Some(unknown) = applied.difference(&expected).next() {
        return Err(CopyError::SourceSchema {
            detail: format!("it has the migration {unknown}, which this buildfund does not know"),
        });
    }
    Ok(())
}

async fn count(db: &impl ConnectionTrait, table: &str) -> Result<u64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {}", quote(table)),
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0)
        .max(0) as u64)
}

/// A double-quoted SQL identifier (both databases).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a column's values are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// PostgreSQL's `smallint`/`integer`, read and written at their width.
    Int32,
    Int64,
    Bool,
    Text,
    /// `timestamp with time zone` (SQLite: sea-orm's `timestamp_with_timezone_text`).
    Timestamp,
}

impl Kind {
    fn of(backend: DatabaseBackend, declared: &str) -> Option<Kind> {
        let t = declared.to_ascii_lowercase();
        if t.contains("bool") {
            Some(Kind::Bool)
        } else if t.contains("timestamp") {
            (t.contains("with time zone") || t.contains("timezone")).then_some(Kind::Timestamp)
        } else if t.contains("int") {
            Some(
                if backend == DatabaseBackend::Postgres && (t == "integer" || t == "smallint") {
                    Kind::Int32
                } else {
                    Kind::Int64
                },
            )
        } else if t.contains("char") || t.contains("text") || t.contains("clob") || t.is_empty() {
            Some(Kind::Text)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    declared: String,
    /// Position in the primary key (1-based), 0 when not part of it.
    pk: usize,
    /// PostgreSQL: the column draws from a sequence (an identity column, or a serial).
    serial: bool,
}

/// A table to copy: its columns with how each is read from the source and written to the
/// target, and the order its rows are read in.
#[derive(Debug, Clone)]
struct Columns {
    names: Vec<String>,
    read: Vec<Kind>,
    write: Vec<Kind>,
    order_by: Vec<String>,
}

/// The tables of a database (without the migration table), their columns and foreign keys.
struct Catalog {
    backend: DatabaseBackend,
    tables: BTreeMap<String, Vec<Column>>,
    /// child → parents
    parents: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    async fn read(db: &impl ConnectionTrait) -> Result<Catalog, DbErr> {
        let backend = db.get_database_backend();
        let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        match backend {
            DatabaseBackend::Postgres => {
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                         CASE WHEN c.is_identity = 'YES' THEN 'identity' \
                           ELSE COALESCE(c.column_default, '') END::text, \
                         COALESCE((SELECT k.ordinal_position::int FROM \
                           information_schema.table_constraints t JOIN \
                           information_schema.key_column_usage k ON k.constraint_name = \
                           t.constraint_name AND k.table_schema = t.table_schema AND \
                           k.table_name = t.table_name WHERE t.constraint_type = 'PRIMARY KEY' \
                           AND t.table_schema = c.table_schema AND t.table_name = c.table_name \
                           AND k.column_name = c.column_name), 0) \
                         FROM information_schema.columns c JOIN information_schema.tables tb \
                           ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name \
                         WHERE c.table_schema = current_schema() AND tb.table_type = 'BASE TABLE' \
                         ORDER BY c.table_name, c.ordinal_position",
                    ))
                    .await?;
                for r in rows {
                    let table: String = r.try_get_by_index(0)?;
                    let default: String = r.try_get_by_index(3)?;
                    let pk: i32 = r.try_get_by_index(4)?;
                    tables.entry(table).or_default().push(Column {
                        name: r.try_get_by_index(1)?,
                        declared: r.try_get_by_index(2)?,
                        pk: pk.max(0) as usize,
                        serial: default == "identity" || default.starts_with("nextval("),
                    });
                }
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SELECT DISTINCT tc.table_name::text, ccu.table_name::text \
                         FROM information_schema.table_constraints tc \
                         JOIN information_schema.constraint_column_usage ccu \
                           ON ccu.constraint_name = tc.constraint_name \
                          AND ccu.constraint_schema = tc.constraint_schema \
                         WHERE tc.constraint_type = 'FOREIGN KEY' \
                           AND tc.table_schema = current_schema()",
                    ))
                    .await?;
                for r in rows {
                    let child: String = r.try_get_by_index(0)?;
                    let parent: String = r.try_get_by_index(1)?;
                    parents.entry(child).or_default().insert(parent);
                }
            }
            _ => {
                let names = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SELECT name FROM sqlite_master WHERE type = 'table' \
                         AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    ))
                    .await?;
                for n in names {
                    let table: String = n.try_get_by_index(0)?;
                    let cols = db
                        .query_all_raw(Statement::from_sql_and_values(
                            backend,
                            "SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid",
                            [table.clone().into()],
                        ))
                        .await?;
                    let mut list = Vec::with_capacity(cols.len());
                    for c in cols {
                        let pk: i64 = c.try_get_by_index(2)?;
                        list.push(Column {
                            name: c.try_get_by_index(0)?,
                            declared: c.try_get_by_index(1)?,
                            pk: pk.max(0) as usize,
                            serial: false,
                        });
                    }
                    let fks = db
                        .query_all_raw(Statement::from_sql_and_values(
                            backend,
                            "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)",
                            [table.clone().into()],
                        ))
                        .await?;
                    for f in fks {
                        let parent: String = f.try_get_by_index(0)?;
                        parents.entry(table.clone()).or_default().insert(parent);
                    }
                    tables.insert(table, list);
                }
            }
        }
        tables.remove(MIGRATION_TABLE);
        Ok(Catalog {
            backend,
            tables,
            parents,
        })
    }

    /// Every table, each after the tables its foreign keys name (a cycle, which the schema does
    /// not have, is written in name order and checked at commit).
    fn parents_first(&self) -> Vec<String> {
        let mut order = Vec::with_capacity(self.tables.len());
        let mut placed = BTreeSet::new();
        while order.len() < self.tables.len() {
            let before = order.len();
            for table in self.tables.keys() {
                if placed.contains(table) {
                    continue;
                }
                let ready = self.parents.get(table).is_none_or(|ps| {
                    ps.iter()
                        .all(|p| p == table || placed.contains(p) || !self.tables.contains_key(p))
                });
                if ready {
                    placed.insert(table.clone());
                    order.push(table.clone());
                }
            }
            if order.len() == before {
                for table in self.tables.keys() {
                    if placed.insert(table.clone()) {
                        order.push(table.clone());
                    }
                }
            }
        }
        order
    }

    /// The columns of `table` in this (the source's) catalog, matched with `target`'s.
    fn columns_for(&self, table: &str, target: &Catalog) -> Result<Columns, CopyError> {
        let schema = |detail: String| CopyError::Schema {
            table: table.to_string(),
            detail,
        };
        let ours = self
            .tables
            .get(table)
            .ok_or_else(|| schema("the source has no such table".into()))?;
        let theirs = target
            .tables
            .get(table)
            .ok_or_else(|| schema("the target has no such table".into()))?;
        let mut names = Vec::with_capacity(ours.len());
        let mut read = Vec::with_capacity(ours.len());
        let mut write = Vec::with_capacity(ours.len());
        for c in ours {
            let t = theirs
                .iter()
                .find(|t| t.name == c.name)
                .ok_or_else(|| schema(format!("the target has no column {}", c.name)))?;
            let kind = |backend, col: &Column| {
                Kind::of(backend, &col.declared).ok_or_else(|| CopyError::UnsupportedType {
                    table: table.to_string(),
                    column: col.name.clone(),
                    declared: col.declared.clone(),
                })
            };
            names.push(c.name.clone());
            read.push(kind(self.backend, c)?);
            write.push(kind(target.backend, t)?);
        }
        if let Some(extra) = theirs.iter().find(|t| !names.contains(&t.name)) {
            return Err(schema(format!("the source has no column {}", extra.name)));
        }
        let mut keyed: Vec<&Column> = ours.iter().filter(|c| c.pk > 0).collect();
        keyed.sort_by_key(|c| c.pk);
        let order_by = if keyed.is_empty() {
            names.clone()
        } else {
            keyed.iter().map(|c| c.name.clone()).collect()
        };
        Ok(Columns {
            names,
            read,
            write,
            order_by,
        })
    }
}

/// One value on its way from the source to the target.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Timestamp(DateTime<Utc>),
}

impl Cell {
    fn read(row: &QueryResult, i: usize, kind: Kind) -> Result<Cell, DbErr> {
        Ok(match kind {
            Kind::Int32 => row
                .try_get_by_index::<Option<i32>>(i)?
                .map_or(Cell::Null, |v| Cell::Int(v.into())),
            Kind::Int64 => row
                .try_get_by_index::<Option<i64>>(i)?
                .map_or(Cell::Null, Cell::Int),
            Kind::Bool => row
                .try_get_by_index::<Option<bool>>(i)?
                .map_or(Cell::Null, Cell::Bool),
            Kind::Text => row
                .try_get_by_index::<Option<String>>(i)?
                .map_or(Cell::Null, Cell::Text),
            Kind::Timestamp => row
                .try_get_by_index::<Option<DateTime<Utc>>>(i)?
                .map_or(Cell::Null, |t| Cell::Timestamp(t.trunc_subsecs(6))),
        })
    }

    fn value(self, kind: Kind) -> Result<Value, String> {
        Ok(match (self, kind) {
            (Cell::Null, Kind::Int32) => Value::Int(None),
            (Cell::Null, Kind::Int64) => Value::BigInt(None),
            (Cell::Null, Kind::Bool) => Value::Bool(None),
            (Cell::Null, Kind::Text) => Value::String(None),
            (Cell::Null, Kind::Timestamp) => Value::ChronoDateTimeUtc(None),
            (Cell::Int(v), Kind::Int32) => Value::Int(Some(
                i32::try_from(v).map_err(|_| format!("{v} is out of a 32-bit integer's range"))?,
            )),
            (Cell::Int(v), Kind::Int64) => Value::BigInt(Some(v)),
            (Cell::Bool(v), Kind::Bool) => Value::Bool(Some(v)),
            (Cell::Text(v), Kind::Text) => Value::from(v),
            (Cell::Timestamp(v), Kind::Timestamp) => Value::from(v),
            (cell, kind) => return Err(format!("{cell:?} cannot be written as {kind:?}")),
        })
    }

    /// The value in PostgreSQL's `COPY` text format, appended to `out`.
    fn copy_text(&self, kind: Kind, out: &mut String) -> Result<(), String> {
        use std::fmt::Write;
        match (self, kind) {
            (Cell::Null, _) => out.push_str("\\N"),
            (Cell::Int(v), Kind::Int64) => {
                let _ = write!(out, "{v}");
            }
            (Cell::Int(v), Kind::Int32) => {
                let v = i32::try_from(*v)
                    .map_err(|_| format!("{v} is out of a 32-bit integer's range"))?;
                let _ = write!(out, "{v}");
            }
            (Cell::Bool(v), Kind::Bool) => out.push(if *v { 't' } else { 'f' }),
            (Cell::Text(v), Kind::Text) => {
                for c in v.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
            (Cell::Timestamp(t), Kind::Timestamp) => {
                let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
            }
            (cell, kind) => return Err(format!("{cell:?} cannot be written as {kind:?}")),
        }
        Ok(())
    }

    /// The value's bytes in the digest: a tag, then the value in one canonical form.
    fn digest(&self, hash: &mut Sha256) {
        match self {
            Cell::Null => hash.update(b"N"),
            Cell::Int(v) => {
                hash.update(b"I");
                hash.update(v.to_le_bytes());
            }
            Cell::Bool(v) => hash.update(if *v { b"B1" } else { b"B0" }),
            Cell::Text(v) => {
                hash.update(b"T");
                hash.update((v.len() as u64).to_le_bytes());
                hash.update(v.as_bytes());
            }
            Cell::Timestamp(t) => {
                hash.update(b"D");
                hash.update(t.timestamp().to_le_bytes());
                hash.update(t.timestamp_subsec_micros().to_le_bytes());
            }
        }
    }
}

fn select(backend: DatabaseBackend, table: &str, columns: &Columns) -> Statement {
    let list: Vec<String> = columns.names.iter().map(|c| quote(c)).collect();
    let order: Vec<String> = columns.order_by.iter().map(|c| quote(c)).collect();
    Statement::from_string(
        backend,
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            list.join(", "),
            quote(table),
            order.join(", ")
        ),
    )
}

async fn copy_table(
    source: &DatabaseTransaction,
    target: &mut Writer,
    table: &str,
    columns: &Columns,
    total: u64,
    progress: &mut impl FnMut(Progress),
) -> Result<(u64, String), CopyError> {
    let per_batch = target.rows_per_batch(columns.names.len());
    let mut digest = TableDigest::default();
    let mut batch: Vec<Cell> = Vec::with_capacity(per_batch * columns.names.len());
    let mut stream = std::pin::pin!(
        source
            .stream_raw(select(
                ConnectionTrait::get_database_backend(source),
                table,
                columns,
            ))
            .await?
    );
    while let Some(row) = stream.try_next().await? {
        for (i, &read) in columns.read.iter().enumerate() {
            let cell = Cell::read(&row, i, read)?;
            digest.cell(&cell);
            batch.push(cell);
        }
        digest.end_row();
        let rows = digest.rows;
        if batch.len() >= per_batch * columns.names.len() {
            target
                .write(table, columns, std::mem::take(&mut batch))
                .await?;
        }
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(Progress::Rows {
                table: table.to_string(),
                done: rows,
                total,
            });
        }
    }
    if !batch.is_empty() {
        target.write(table, columns, batch).await?;
    }
    Ok(digest.finish())
}

/// The target's one write transaction: PostgreSQL's `COPY … FROM STDIN` over sqlx (the fast
/// path, as `pg_restore` loads), SQLite's multi-row INSERTs through sea-orm.
enum Writer {
    Postgres(sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>),
    Sqlite(DatabaseTransaction),
}

impl Writer {
    async fn begin(target: &DatabaseConnection) -> Result<Writer, CopyError> {
        Ok(match target.get_database_backend() {
            DatabaseBackend::Postgres => {
                Writer::Postgres(target.get_postgres_connection_pool().begin().await?)
            }
            _ => Writer::Sqlite(crate::db::begin_write(target).await?),
        })
    }

    fn rows_per_batch(&self, width: usize) -> usize {
        match self {
            Writer::Postgres(_) => (COPY_CELLS_PER_SEND / width.max(1)).max(1),
            Writer::Sqlite(_) => (PARAMETERS_PER_INSERT / width.max(1)).max(1),
        }
    }

    async fn execute(&mut self, sql: &str) -> Result<(), CopyError> {
        match self {
            Writer::Postgres(tx) => {
                sea_orm::sqlx::query(AssertSqlSafe(sql.to_string()))
                    .execute(&mut **tx)
                    .await?;
            }
            Writer::Sqlite(tx) => {
                tx.execute_unprepared(sql).await?;
            }
        }
        Ok(())
    }

    /// Writes `cells` (whole rows of `columns`, one after the other) into `table`.
    async fn write(
        &mut self,
        table: &str,
        columns: &Columns,
        cells: Vec<Cell>,
    ) -> Result<(), CopyError> {
        let width = columns.names.len();
        let list: Vec<String> = columns.names.iter().map(|c| quote(c)).collect();
        let refused = |i: usize, detail: String| CopyError::Value {
            table: table.to_string(),
            column: columns.names[i % width].clone(),
            detail,
        };
        match self {
            Writer::Postgres(tx) => {
                let mut data = String::with_capacity(cells.len() * 12);
                for (i, cell) in cells.iter().enumerate() {
                    if i % width > 0 {
                        data.push('\t');
                    }
                    cell.copy_text(columns.write[i % width], &mut data)
                        .map_err(|d| refused(i, d))?;
                    if i % width == width - 1 {
                        data.push('\n');
                    }
                }
                let mut copy = tx
                    .copy_in_raw(&format!(
                        "COPY {} ({}) FROM STDIN",
                        quote(table),
                        list.join(", ")
                    ))
                    .await?;
                copy.send(data.as_bytes()).await?;
                copy.finish().await?;
            }
            Writer::Sqlite(tx) => {
                let mut values = Vec::with_capacity(cells.len());
                for (i, cell) in cells.into_iter().enumerate() {
                    values.push(
                        cell.value(columns.write[i % width])
                            .map_err(|d| refused(i, d))?,
                    );
                }
                let row = format!("({})", vec!["?"; width].join(","));
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    quote(table),
                    list.join(", "),
                    vec![row.as_str(); values.len() / width].join(",")
                );
                tx.execute_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    sql,
                    values,
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// Reads `table` back, inside the transaction, and digests it as the copy did.
    async fn digest(&mut self, table: &str, columns: &Columns) -> Result<(u64, String), CopyError> {
        match self {
            Writer::Postgres(tx) => {
                let sql = select(DatabaseBackend::Postgres, table, columns).sql;
                let mut stream = sea_orm::sqlx::query(AssertSqlSafe(sql)).fetch(&mut **tx);
                let mut digest = TableDigest::default();
                while let Some(row) = stream.try_next().await? {
                    digest.row(&QueryResult::from(row), &columns.write)?;
                }
                Ok(digest.finish())
            }
            Writer::Sqlite(tx) => digest_table(tx, table, columns).await,
        }
    }

    /// PostgreSQL: a serial or identity column's sequence continues after the largest copied
    /// value, so the next row the copy's `serve` inserts gets a fresh id. (SQLite's
    /// AUTOINCREMENT follows the largest rowid by itself.)
    async fn reset_sequences(&mut self, catalog: &Catalog) -> Result<(), CopyError> {
        let Writer::Postgres(tx) = self else {
            return Ok(());
        };
        for (table, columns) in &catalog.tables {
            for c in columns.iter().filter(|c| c.serial) {
                sea_orm::sqlx::query(AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), \
                     COALESCE((SELECT MAX({col}) FROM {tab}), 0) + 1, false)",
                    col = quote(&c.name),
                    tab = quote(table)
                )))
                .bind(quote(table))
                .bind(&c.name)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), CopyError> {
        match self {
            Writer::Postgres(tx) => tx.commit().await?,
            Writer::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Reads `table` in the copy's order and digests it as the copy does.
async fn digest_table(
    db: &(impl ConnectionTrait + StreamTrait),
    table: &str,
    columns: &Columns,
) -> Result<(u64, String), CopyError> {
    let backend = ConnectionTrait::get_database_backend(db);
    let mut digest = TableDigest::default();
    let mut stream = std::pin::pin!(db.stream_raw(select(backend, table, columns)).await?);
    while let Some(row) = stream.try_next().await? {
        digest.row(&row, &columns.write)?;
    }
    Ok(digest.finish())
}

/// A table's row count and the SHA-256 of its rows, as the copy compares them: every cell in
/// its canonical form ([`Cell::digest`]), a newline after each row.
#[derive(Default)]
struct TableDigest {
    hash: Sha256,
    rows: u64,
}

impl TableDigest {
    fn cell(&mut self, cell: &Cell) {
        cell.digest(&mut self.hash);
    }

    fn end_row(&mut self) {
        self.hash.update(b"\n");
        self.rows += 1;
    }

    /// A row read as `kinds`.
    fn row(&mut self, row: &QueryResult, kinds: &[Kind]) -> Result<(), DbErr> {
        for (i, &kind) in kinds.iter().enumerate() {
            self.cell(&Cell::read(row, i, kind)?);
        }
        self.end_row();
        Ok(())
    }

    fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.hash.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_kinds_of_both_databases() {
        let pg = DatabaseBackend::Postgres;
        let lite = DatabaseBackend::Sqlite;
        assert_eq!(Kind::of(pg, "bigint"), Some(Kind::Int64));
        assert_eq!(Kind::of(pg, "integer"), Some(Kind::Int32));
        assert_eq!(Kind::of(lite, "integer"), Some(Kind::Int64));
        assert_eq!(Kind::of(pg, "boolean"), Some(Kind::Bool));
        assert_eq!(Kind::of(pg, "character varying"), Some(Kind::Text));
        assert_eq!(
            Kind::of(pg, "timestamp with time zone"),
            Some(Kind::Timestamp)
        );
        assert_eq!(
            Kind::of(lite, "timestamp_with_timezone_text"),
            Some(Kind::Timestamp)
        );
        assert_eq!(Kind::of(pg, "timestamp without time zone"), None);
        assert_eq!(Kind::of(pg, "numeric"), None);
    }

    #[test]
    fn target_urls() {
        assert_eq!(
            check_target_url("sqlite://backup.sqlite").unwrap(),
            "sqlite://backup.sqlite?mode=rwc"
        );
        assert_eq!(
            check_target_url("postgres://u@h/db").unwrap(),
            "postgres://u@h/db"
        );
        assert!(check_target_url("mysql://h/db").is_err());
        assert!(check_target_url("sqlite::memory:").is_err());
        assert!(check_target_url("sqlite:///no/such/dir/x.sqlite").is_err());
    }

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let mut out = String::new();
        Cell::Text("a\tb\nc\\d\re é".into())
            .copy_text(Kind::Text, &mut out)
            .unwrap();
        assert_eq!(out, "a\\tb\\nc\\\\d\\re é");
        let mut out = String::new();
        Cell::Null.copy_text(Kind::Text, &mut out).unwrap();
        Cell::Bool(true).copy_text(Kind::Bool, &mut out).unwrap();
        let t = DateTime::from_timestamp(1_790_000_000, 123_456_000).unwrap();
        Cell::Timestamp(t)
            .copy_text(Kind::Timestamp, &mut out)
            .unwrap();
        assert_eq!(out, "\\Nt2026-09-21 14:13:20.123456+00");
        assert!(Cell::Int(1 << 40).copy_text(Kind::Int32, &mut out).is_err());
    }

    #[test]
    fn a_value_too_wide_for_the_target_is_refused() {
        assert!(Cell::Int(i64::MAX).value(Kind::Int32).is_err());
        assert!(Cell::Text("x".into()).value(Kind::Int64).is_err());
        assert_eq!(Cell::Int(7).value(Kind::Int32), Ok(Value::Int(Some(7))));
    }
}
