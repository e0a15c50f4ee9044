//! Foreign keys with `ON DELETE CASCADE` where rows belong to a parent: deleting the parent
//! deletes its children, and a child whose parent does not exist is refused.
//!
//! - `book_month_lines`, `book_month_funds`, `book_month_jobs` → `book_months` (`book_month_id`):
//!   the lines, fund figures and jobs of one stored month.
//! - `gate_deliveries` → `gate_events` (`event_id`): a state change's webhook deliveries.
//! - `book_day_busy` → `book_days` (`day`): a stored day's busy rows. Checked when the
//!   transaction commits (`DEFERRABLE INITIALLY DEFERRED`), because a day is stored by writing
//!   its busy rows first and its `book_days` row last, in one transaction.
//!
//! Rows that already break a key (orphans: a child whose parent is gone) are deleted first and
//! counted in the migration's log line; nothing reads them, since every read goes through the
//! parent. On PostgreSQL the keys are added with `ALTER TABLE … ADD CONSTRAINT`. SQLite cannot
//! add a constraint to a table, so each child table is rebuilt: a new table from the stored
//! definition plus the key, the rows copied, the old table dropped, the new one renamed, its
//! indexes created again from their stored definitions and its `AUTOINCREMENT` counter kept.
//! The `down` drops the keys the same way (the orphans deleted stay deleted).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A child's column that names its parent's primary key.
struct Key {
    /// The constraint's name.
    name: &'static str,
    child: &'static str,
    column: &'static str,
    parent: &'static str,
    parent_column: &'static str,
    /// Checked when the transaction commits rather than after each statement.
    deferred: bool,
}

const KEYS: &[Key] = &[
    Key {
        name: "fk_book_month_lines_book_month",
        child: "book_month_lines",
        column: "book_month_id",
        parent: "book_months",
        parent_column: "id",
        deferred: false,
    },
    Key {
        name: "fk_book_month_funds_book_month",
        child: "book_month_funds",
        column: "book_month_id",
        parent: "book_months",
        parent_column: "id",
        deferred: false,
    },
    Key {
        name: "fk_book_month_jobs_book_month",
        child: "book_month_jobs",
        column: "book_month_id",
        parent: "book_months",
        parent_column: "id",
        deferred: false,
    },
    Key {
        name: "fk_gate_deliveries_event",
        child: "gate_deliveries",
        column: "event_id",
        parent: "gate_events",
        parent_column: "id",
        deferred: false,
    },
    Key {
        name: "fk_book_day_busy_day",
        child: "book_day_busy",
        column: "day",
        parent: "book_days",
        parent_column: "day",
        deferred: true,
    },
];

impl Key {
    /// `FOREIGN KEY … ON DELETE CASCADE`, the same text on both databases.
    fn foreign_key(&self) -> String {
        format!(
            "FOREIGN KEY (\"{}\") REFERENCES \"{}\" (\"{}\") ON DELETE CASCADE{}",
            self.column,
            self.parent,
            self.parent_column,
            if self.deferred {
                " DEFERRABLE INITIALLY DEFERRED"
            } else {
                ""
            }
        )
    }

    /// The table constraint as it appears in SQLite's stored `CREATE TABLE`.
    fn table_constraint(&self) -> String {
        format!(", CONSTRAINT \"{}\" {}", self.name, self.foreign_key())
    }

    /// Deletes the children whose parent does not exist; returns how many.
    async fn delete_orphans(&self, db: &impl ConnectionTrait) -> Result<u64, DbErr> {
        let (child, column, parent, key) =
            (self.child, self.column, self.parent, self.parent_column);
        let deleted = db
            .execute_unprepared(&format!(
                "DELETE FROM \"{child}\" WHERE NOT EXISTS \
                 (SELECT 1 FROM \"{parent}\" WHERE \"{parent}\".\"{key}\" = \"{child}\".\"{column}\")"
            ))
            .await?;
        Ok(deleted.rows_affected())
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let mut orphans = Vec::new();
        for key in KEYS {
            // The orphans go first: neither database would take the key over them.
            orphans.push(format!("{} {}", key.child, key.delete_orphans(db).await?));
            match backend {
                DatabaseBackend::Sqlite => {
                    rebuild_sqlite(db, key.child, |body| {
                        let end = body.rfind(')').ok_or_else(|| unexpected(key.child, body))?;
                        Ok(format!(
                            "{}{}{}",
                            &body[..end],
                            key.table_constraint(),
                            &body[end..]
                        ))
                    })
                    .await?
                }
                _ => {
                    db.execute_unprepared(&format!(
                        "ALTER TABLE \"{}\" ADD CONSTRAINT \"{}\" {}",
                        key.child,
                        key.name,
                        key.foreign_key()
                    ))
                    .await?;
                }
            }
        }
        tracing::info!(
            "foreign keys with ON DELETE CASCADE added; orphan rows deleted: {}",
            orphans.join(", ")
        );
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for key in KEYS.iter().rev() {
            match manager.get_database_backend() {
                DatabaseBackend::Sqlite => {
                    rebuild_sqlite(db, key.child, |body| {
                        let constraint = key.table_constraint();
                        if !body.contains(&constraint) {
                            return Err(unexpected(key.child, body));
                        }
                        Ok(body.replacen(&constraint, "", 1))
                    })
                    .await?
                }
                _ => {
                    db.execute_unprepared(&format!(
                        "ALTER TABLE \"{}\" DROP CONSTRAINT IF EXISTS \"{}\"",
                        key.child, key.name
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// The SQLite rebuilds drop and rename tables: all of it or nothing.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn unexpected(table: &str, body: &str) -> DbErr {
    DbErr::Migration(format!(
        "the stored definition of {table} is not the one this migration expects: {body}"
    ))
}

/// Rebuilds the SQLite table `table` with its stored definition (from its opening parenthesis
/// on) changed by `edit`, keeping its rows, its indexes and its `AUTOINCREMENT` counter.
async fn rebuild_sqlite(
    db: &impl ConnectionTrait,
    table: &str,
    edit: impl FnOnce(&str) -> Result<String, DbErr>,
) -> Result<(), DbErr> {
    let sql: String = scalar(
        db,
        &format!("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{table}'"),
    )
    .await?
    .ok_or_else(|| DbErr::Migration(format!("no table {table} to rebuild")))?;
    let body = sql
        .find('(')
        .map(|i| &sql[i..])
        .ok_or_else(|| unexpected(table, &sql))?;
    let body = edit(body)?;
    // The indexes SQLite made itself (for a primary key or UNIQUE column) have no SQL: the new
    // table makes them again.
    let indexes = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            format!(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}' \
                 AND sql IS NOT NULL ORDER BY name"
            ),
        ))
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "sql"))
        .collect::<Result<Vec<_>, _>>()?;
    let counter = sequence(db, table).await?;
    let new = format!("{table}__rebuilt");
    db.execute_unprepared(&format!("CREATE TABLE \"{new}\" {body}"))
        .await?;
    db.execute_unprepared(&format!("INSERT INTO \"{new}\" SELECT * FROM \"{table}\""))
        .await?;
    db.execute_unprepared(&format!("DROP TABLE \"{table}\""))
        .await?;
    db.execute_unprepared(&format!("ALTER TABLE \"{new}\" RENAME TO \"{table}\""))
        .await?;
    for index in indexes {
        db.execute_unprepared(&index).await?;
    }
    // The copy sets the counter to the largest id copied; ids of rows deleted before stay used.
    if let Some(old) = counter {
        let copied = sequence(db, table).await?.unwrap_or(0);
        db.execute_unprepared(&format!(
            "DELETE FROM sqlite_sequence WHERE name = '{table}'"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('{table}', {})",
            std::cmp::max(old, copied)
        ))
        .await?;
    }
    Ok(())
}

/// The first column of the first row of `sql`, if any.
async fn scalar<T: sea_orm_migration::sea_orm::TryGetable>(
    db: &impl ConnectionTrait,
    sql: &str,
) -> Result<Option<T>, DbErr> {
    match db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
    {
        Some(row) => Ok(Some(row.try_get_by_index(0)?)),
        None => Ok(None),
    }
}

/// The `AUTOINCREMENT` counter of an SQLite table, if it has one.
async fn sequence(db: &impl ConnectionTrait, table: &str) -> Result<Option<i64>, DbErr> {
    let has_sequences: i64 = scalar(
        db,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
    )
    .await?
    .unwrap_or(0);
    if has_sequences == 0 {
        return Ok(None);
    }
    scalar(
        db,
        &format!("SELECT seq FROM sqlite_sequence WHERE name = '{table}'"),
    )
    .await
}
