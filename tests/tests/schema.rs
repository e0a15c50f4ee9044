//! The schema's foreign keys (migration `m20261222_000001_foreign_keys`): deleting a parent
//! deletes its children, a child without its parent is refused, and an upgrade from the schema
//! before them keeps every row but the orphans, with the tables' columns and indexes as they
//! were; and every table has an entity that reads it. Each test migrates a scratch database
//! itself, on SQLite and on PostgreSQL.
use buildfund_entity::gate_events::{EventKind, State};
use buildfund_entity::{
    book_day_busy, book_days, book_month_funds, book_month_jobs, book_month_lines, book_months,
    gate_deliveries, gate_events,
};
use buildfund_migration::{Migrator, MigratorTrait};
use buildfund_tests::database::ScratchDatabase;
use buildfund_tests::Backend;
use chrono::{TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryOrder, Set,
    Statement, TransactionTrait,
};

/// The child tables the migration gives a key.
const CHILDREN: [&str; 5] = [
    "book_month_lines",
    "book_month_funds",
    "book_month_jobs",
    "gate_deliveries",
    "book_day_busy",
];

/// A parent id no row has.
const MISSING: i64 = 9_999_999;

/// Defines `NAME::sqlite` and `NAME::postgres`, each running `body` on a scratch database.
macro_rules! scratch_test {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                on(Backend::Sqlite, $body).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                on(Backend::Postgres, $body).await;
            }
        }
    };
}

async fn on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(scratch) = ScratchDatabase::create(backend).await else {
        return;
    };
    body(scratch.db.clone()).await;
    scratch.drop().await;
}

/// The number of migrations before the foreign keys.
fn before_keys() -> u32 {
    let all = Migrator::migrations();
    let keys = all
        .iter()
        .position(|m| m.name() == "m20261222_000001_foreign_keys")
        .expect("the foreign keys are a migration");
    keys as u32
}

/// The parents of one family: a stored month, a gate state event and a stored day.
#[derive(Clone, Copy, Debug)]
struct Parents {
    month: i64,
    event: i64,
    day: i64,
}

async fn add_month(db: &impl ConnectionTrait, n: i64) -> i64 {
    book_months::ActiveModel {
        fingerprint: Set("fp".into()),
        month: Set(format!("2026-{n:02}")),
        generation: Set(n),
        computed_at: Set(Utc.timestamp_opt(1_790_000_000 + n, 0).unwrap()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn add_event(db: &impl ConnectionTrait, n: i64) -> i64 {
    gate_events::ActiveModel {
        at: Set(Utc.timestamp_opt(1_790_000_000 + n, 0).unwrap()),
        pool: Set("cuda".into()),
        kind: Set(EventKind::State),
        from_state: Set(Some(State::Open)),
        to_state: Set(Some(State::Closed)),
        actor: Set(None),
        reason: Set(format!("event {n}")),
        until: Set(None),
        details: Set(None),
        claim: Set(Some(format!("cuda#{n}"))),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn add_day(db: &impl ConnectionTrait, day: i64) {
    book_days::ActiveModel {
        day: Set(day),
        generation: Set(2),
        stored: Set(Some(2)),
        computed_at: Set(Some(Utc.timestamp_opt(day + 86_400, 0).unwrap())),
    }
    .insert(db)
    .await
    .unwrap();
}

async fn add_line(db: &impl ConnectionTrait, month: i64, machine: &str) -> Result<i64, DbErr> {
    Ok(book_month_lines::ActiveModel {
        book_month_id: Set(month),
        kind: Set("jobset".into()),
        machine: Set(machine.into()),
        jobset: Set(Some("nixpkgs:trunk".into())),
        pool: Set(Some("main".into())),
        fund: Set(Some("general".into())),
        busy_seconds: Set(3600),
        cost_cents: Set(42),
        ..Default::default()
    }
    .insert(db)
    .await?
    .id)
}

async fn add_fund(db: &impl ConnectionTrait, month: i64, fund: &str) -> Result<(), DbErr> {
    book_month_funds::ActiveModel {
        book_month_id: Set(month),
        fund: Set(fund.into()),
        gross_cents: Set(1000),
        fees_cents: Set(50),
        net_cents: Set(950),
        spent_cents: Set(42),
        net_to_date_cents: Set(950),
        spent_to_date_cents: Set(42),
        balance_cents: Set(908),
        cost_30_days_cents: Set(42),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

async fn add_job(db: &impl ConnectionTrait, month: i64, job: &str) -> Result<(), DbErr> {
    book_month_jobs::ActiveModel {
        book_month_id: Set(month),
        jobset: Set("nixpkgs:trunk".into()),
        job: Set(job.into()),
        pool: Set("main".into()),
        fund: Set("general".into()),
        busy_seconds: Set(600),
        steps: Set(2),
        cost_cents: Set(7),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

async fn add_delivery(db: &impl ConnectionTrait, event: i64, hook: i32) -> Result<(), DbErr> {
    gate_deliveries::ActiveModel {
        event_id: Set(event),
        hook: Set(hook),
        url: Set("https://hooks.example.org/gate".into()),
        body: Set("{}".into()),
        attempts: Set(0),
        created_at: Set(Utc.timestamp_opt(1_790_000_000, 0).unwrap()),
        lease_until: Set(None),
        holder: Set(None),
        delivered_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Without `RETURNING`, as the books write them. Outside a transaction SQLite checks the
/// deferred key when the statement ends; an `INSERT … RETURNING` there (sea-orm's `insert`)
/// answers its row and the refusal comes after it, so the row is not stored but no error is seen.
async fn add_busy(db: &impl ConnectionTrait, day: i64, machine: &str) -> Result<(), DbErr> {
    book_day_busy::Entity::insert(book_day_busy::ActiveModel {
        day: Set(day),
        machine: Set(machine.into()),
        project: Set("nixpkgs".into()),
        jobset: Set("trunk".into()),
        busy_seconds: Set(1800),
        steps: Set(3),
    })
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// Parent `n` of each kind with two children in each of its child tables.
async fn add_family(db: &impl ConnectionTrait, n: i64) -> Parents {
    let parents = Parents {
        month: add_month(db, n).await,
        event: add_event(db, n).await,
        day: 1_790_000_000 / 86_400 * 86_400 + n * 86_400,
    };
    add_day(db, parents.day).await;
    for k in ["a", "b"] {
        add_line(db, parents.month, k).await.unwrap();
        add_fund(db, parents.month, k).await.unwrap();
        add_job(db, parents.month, k).await.unwrap();
        add_busy(db, parents.day, k).await.unwrap();
    }
    for hook in [0, 1] {
        add_delivery(db, parents.event, hook).await.unwrap();
    }
    parents
}

/// One child without its parent in each child table.
async fn add_orphans(db: &impl ConnectionTrait) -> Vec<Result<(), DbErr>> {
    vec![
        add_line(db, MISSING, "orphan").await.map(|_| ()),
        add_fund(db, MISSING, "orphan").await,
        add_job(db, MISSING, "orphan").await,
        add_delivery(db, MISSING, 0).await,
        add_busy(db, MISSING * 86_400, "orphan").await,
    ]
}

async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .expect("a count")
        .try_get_by_index(0)
        .unwrap()
}

/// The children of `p` in each child table.
async fn children_of(db: &impl ConnectionTrait, p: Parents) -> [i64; 5] {
    let month = |t: &str| format!("SELECT COUNT(*) FROM {t} WHERE book_month_id = {}", p.month);
    [
        count(db, &month("book_month_lines")).await,
        count(db, &month("book_month_funds")).await,
        count(db, &month("book_month_jobs")).await,
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM gate_deliveries WHERE event_id = {}",
                p.event
            ),
        )
        .await,
        count(
            db,
            &format!("SELECT COUNT(*) FROM book_day_busy WHERE day = {}", p.day),
        )
        .await,
    ]
}

/// A table's columns (name, type, nullability, default, key) and indexes, one string each.
async fn shape(db: &impl ConnectionTrait, table: &str) -> Vec<String> {
    let queries = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => [
            format!(
                "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || \
                 COALESCE(dflt_value, '-') || ' ' || pk FROM pragma_table_info('{table}') ORDER BY cid"
            ),
            format!(
                "SELECT name || ' ' || COALESCE(sql, '-') FROM sqlite_master \
                 WHERE type = 'index' AND tbl_name = '{table}' ORDER BY name"
            ),
        ],
        _ => [
            format!(
                "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || \
                 COALESCE(column_default, '-') FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
            format!(
                "SELECT indexname || ' ' || indexdef FROM pg_indexes \
                 WHERE tablename = '{table}' ORDER BY indexname"
            ),
        ],
    };
    let mut out = Vec::new();
    for q in queries {
        for row in db
            .query_all_raw(Statement::from_string(db.get_database_backend(), q))
            .await
            .unwrap()
        {
            out.push(row.try_get_by_index::<String>(0).unwrap());
        }
    }
    assert!(!out.is_empty(), "no table {table}");
    out
}

async fn shapes(db: &impl ConnectionTrait) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for t in CHILDREN {
        out.push(shape(db, t).await);
    }
    out
}

/// Every row of every child table, as the entities read them.
#[derive(Debug, PartialEq)]
struct Rows {
    lines: Vec<book_month_lines::Model>,
    funds: Vec<book_month_funds::Model>,
    jobs: Vec<book_month_jobs::Model>,
    deliveries: Vec<gate_deliveries::Model>,
    busy: Vec<book_day_busy::Model>,
}

async fn rows(db: &impl ConnectionTrait) -> Rows {
    Rows {
        lines: book_month_lines::Entity::find()
            .order_by_asc(book_month_lines::Column::Id)
            .all(db)
            .await
            .unwrap(),
        funds: book_month_funds::Entity::find()
            .order_by_asc(book_month_funds::Column::Id)
            .all(db)
            .await
            .unwrap(),
        jobs: book_month_jobs::Entity::find()
            .order_by_asc(book_month_jobs::Column::Id)
            .all(db)
            .await
            .unwrap(),
        deliveries: gate_deliveries::Entity::find()
            .order_by_asc(gate_deliveries::Column::Id)
            .all(db)
            .await
            .unwrap(),
        busy: book_day_busy::Entity::find()
            .order_by_asc(book_day_busy::Column::Day)
            .order_by_asc(book_day_busy::Column::Machine)
            .all(db)
            .await
            .unwrap(),
    }
}

/// Deleting each parent deletes its children and only them.
async fn deleting_parents_deletes_their_children(db: &DatabaseConnection, a: Parents, b: Parents) {
    assert_eq!(children_of(db, a).await, [2; 5]);
    book_months::Entity::delete_by_id(a.month)
        .exec(db)
        .await
        .unwrap();
    gate_events::Entity::delete_by_id(a.event)
        .exec(db)
        .await
        .unwrap();
    book_days::Entity::delete_by_id(a.day)
        .exec(db)
        .await
        .unwrap();
    assert_eq!(children_of(db, a).await, [0; 5]);
    assert_eq!(children_of(db, b).await, [2; 5]);
}

/// A child whose parent does not exist is refused; a stored day's busy rows when the
/// transaction commits, so they may come before their day's row.
async fn orphans_are_refused(db: &DatabaseConnection) {
    for (table, result) in CHILDREN.iter().zip(add_orphans(db).await) {
        assert!(result.is_err(), "an orphan of {table} was taken");
    }
    let txn = db.begin().await.unwrap();
    add_busy(&txn, MISSING * 86_400, "orphan").await.unwrap();
    assert!(
        txn.commit().await.is_err(),
        "busy rows of a day that was never stored were committed"
    );
    let day = 1_800_000_000 / 86_400 * 86_400;
    let txn = db.begin().await.unwrap();
    add_busy(&txn, day, "m").await.unwrap();
    add_day(&txn, day).await;
    txn.commit().await.unwrap();
    assert_eq!(
        count(
            db,
            &format!("SELECT COUNT(*) FROM book_day_busy WHERE day = {day}")
        )
        .await,
        1
    );
}

async fn keys_cascade_and_refuse_orphans_body(db: DatabaseConnection) {
    Migrator::up(&db, None).await.unwrap();
    let a = add_family(&db, 1).await;
    let b = add_family(&db, 2).await;
    deleting_parents_deletes_their_children(&db, a, b).await;
    orphans_are_refused(&db).await;
}

scratch_test!(
    keys_cascade_and_refuse_orphans,
    keys_cascade_and_refuse_orphans_body
);

async fn an_upgrade_keeps_every_row_but_the_orphans_body(db: DatabaseConnection) {
    Migrator::up(&db, Some(before_keys())).await.unwrap();
    let before = shapes(&db).await;
    let a = add_family(&db, 1).await;
    let b = add_family(&db, 2).await;
    // The last line's id is used even once the line is gone.
    let gone = add_line(&db, b.month, "gone").await.unwrap();
    book_month_lines::Entity::delete_by_id(gone)
        .exec(&db)
        .await
        .unwrap();
    let kept = rows(&db).await;
    for (table, result) in CHILDREN.iter().zip(add_orphans(&db).await) {
        result.unwrap_or_else(|e| panic!("no key yet, yet an orphan of {table} was refused: {e}"));
    }

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        rows(&db).await,
        kept,
        "the upgrade kept the rows but the orphans"
    );
    assert_eq!(shapes(&db).await, before, "the tables are as they were");
    let new = add_line(&db, b.month, "new").await.unwrap();
    assert!(
        new > gone,
        "a new line took the id {new} of a line deleted before"
    );
    book_month_lines::Entity::delete_by_id(new)
        .exec(&db)
        .await
        .unwrap();
    // The funds' unique index is back.
    assert!(add_fund(&db, b.month, "a").await.is_err());
    deleting_parents_deletes_their_children(&db, a, b).await;
    orphans_are_refused(&db).await;

    // Down drops the keys (and the migrations after them) and leaves the tables as they were
    // before them; up adds them again.
    let from_keys = Migrator::migrations().len() as u32 - before_keys();
    Migrator::down(&db, Some(from_keys)).await.unwrap();
    assert_eq!(
        shapes(&db).await,
        before,
        "down leaves the tables as they were"
    );
    for (table, result) in CHILDREN.iter().zip(add_orphans(&db).await) {
        result.unwrap_or_else(|e| panic!("after down an orphan of {table} was refused: {e}"));
    }
    let kept = rows(&db).await;
    Migrator::up(&db, None).await.unwrap();
    let after = rows(&db).await;
    assert_eq!(after.lines.len() + 1, kept.lines.len());
    assert_eq!(after.busy.len() + 1, kept.busy.len());
    assert_eq!(children_of(&db, b).await, [2; 5]);
}

scratch_test!(
    an_upgrade_keeps_every_row_but_the_orphans,
    an_upgrade_keeps_every_row_but_the_orphans_body
);

/// Reads every row of `E` (none or some): the query names each of the entity's columns, so it
/// fails when one is missing from the table. Returns the table's name.
async fn read_all<E: EntityTrait>(db: &DatabaseConnection, entity: E) -> String {
    let table = entity.table_name().to_string();
    E::find()
        .all(db)
        .await
        .unwrap_or_else(|e| panic!("the entity of {table} does not read its table: {e}"));
    table
}

async fn every_table_has_an_entity_body(db: DatabaseConnection) {
    use buildfund_entity::*;
    Migrator::up(&db, None).await.unwrap();
    add_family(&db, 1).await;
    let mut entities = vec![
        read_all(&db, api_tokens::Entity).await,
        read_all(&db, app_secrets::Entity).await,
        read_all(&db, book_bounds::Entity).await,
        read_all(&db, book_day_busy::Entity).await,
        read_all(&db, book_day_jobs::Entity).await,
        read_all(&db, book_days::Entity).await,
        read_all(&db, book_locks::Entity).await,
        read_all(&db, book_month_funds::Entity).await,
        read_all(&db, book_month_jobs::Entity).await,
        read_all(&db, book_month_lines::Entity).await,
        read_all(&db, book_months::Entity).await,
        read_all(&db, book_stale::Entity).await,
        read_all(&db, build_steps::Entity).await,
        read_all(&db, donations::Entity).await,
        read_all(&db, email_outbox::Entity).await,
        read_all(&db, expenses::Entity).await,
        read_all(&db, funds::Entity).await,
        read_all(&db, gate_deliveries::Entity).await,
        read_all(&db, gate_events::Entity).await,
        read_all(&db, hydra_jobset_holds::Entity).await,
        read_all(&db, job_leases::Entity).await,
        read_all(&db, job_runs::Entity).await,
        read_all(&db, jobsets::Entity).await,
        read_all(&db, machines::Entity).await,
        read_all(&db, opencollective_checks::Entity).await,
        read_all(&db, pool_controls::Entity).await,
        read_all(&db, pools::Entity).await,
        read_all(&db, recurring_contributions::Entity).await,
        read_all(&db, subscribers::Entity).await,
        read_all(&db, sync_cursors::Entity).await,
    ];
    entities.sort();
    let q = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        }
        _ => {
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        }
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), q))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .filter(|t| t != "seaql_migrations")
        .collect();
    assert_eq!(entities, tables, "one entity per table");
}

scratch_test!(every_table_has_an_entity, every_table_has_an_entity_body);
