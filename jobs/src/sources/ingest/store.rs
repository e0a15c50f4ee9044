//! Writing validated build steps, inside the caller's transaction. Each chunk is one upsert
//! keyed on (source, build, step) that writes new and changed records and leaves identical ones
//! alone, and reports how many of each it saw:
//!
//! - On PostgreSQL the chunk goes as one array per column (`UNNEST`), so a statement has 12
//!   parameters whatever its size; `ON CONFLICT … DO UPDATE … WHERE (stored) IS DISTINCT FROM
//!   (sent)` skips identical rows, and `RETURNING (xmax = 0)` tells inserted rows (no xmax)
//!   from updated ones (an `ON CONFLICT` update keeps the row lock it took in the new row's
//!   xmax, also for a row this transaction inserted).
//! - Elsewhere (SQLite) the chunk is first compared with what a `SELECT` finds under its keys,
//!   then new and changed records go in with one multi-row `INSERT … ON CONFLICT DO UPDATE`.
//!
//! Either way every `project:jobset` of a chunk that wrote something is remembered, the
//! months and days the written steps overlap, before and after the change, are marked stale
//! for the stored books ([`crate::books::stale::mark_spans`]), and the longest step's bound
//! is raised when a written step is longer ([`crate::books::steps::raise_longest_step`]), all
//! in the same transaction.
//!
//! A [`Batch`] is a chunk made ready for its statement. The ingest builds it on the parsing
//! thread, so the writer only sends it and the database is not kept waiting between statements.
use super::record::StepRecord;
use super::IngestError;
use crate::db::array::ArrayLiteral;
use buildfund_entity::{build_steps, jobsets};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, InsertStatement, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExprTrait, Statement, Value};
use std::collections::{HashMap, HashSet};

/// Records per statement on SQLite: 13 bound values a record keep an upsert under its
/// parameter limit (32766).
pub const CHUNK: usize = 2000;

/// Records per statement on PostgreSQL, where the parameter count does not grow with the chunk:
/// large enough that per-statement costs vanish, small enough to keep memory low.
pub const CHUNK_POSTGRES: usize = 10_000;

/// The chunk size for a backend.
pub fn chunk_size(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => CHUNK_POSTGRES,
        _ => CHUNK,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// One chunk (at most [`chunk_size`] records, no key twice) ready to be written.
pub struct Batch {
    len: usize,
    now: DateTime<Utc>,
    upsert: Upsert,
    jobsets: Option<InsertStatement>,
}

enum Upsert {
    Postgres(Statement),
    Compared(Vec<StepRecord>, DateTime<Utc>),
}

impl Batch {
    /// Prepares `records` for `backend`; `now` is the time of the ingest.
    pub fn new(backend: DbBackend, records: Vec<StepRecord>, now: DateTime<Utc>) -> Batch {
        let len = records.len();
        let jobsets = (len > 0).then(|| jobsets_statement(&records, now));
        let upsert = match backend {
            DbBackend::Postgres if len > 0 => Upsert::Postgres(postgres_upsert(&records, now)),
            _ => Upsert::Compared(records, now),
        };
        Batch {
            len,
            now,
            upsert,
            jobsets,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes one chunk (at most [`chunk_size`] records, no key twice).
pub async fn write_chunk(
    db: &impl ConnectionTrait,
    records: Vec<StepRecord>,
    now: DateTime<Utc>,
) -> Result<Counts, IngestError> {
    write_batch(db, Batch::new(db.get_database_backend(), records, now)).await
}

/// Writes a prepared chunk.
pub async fn write_batch(db: &impl ConnectionTrait, batch: Batch) -> Result<Counts, IngestError> {
    if batch.is_empty() {
        return Ok(Counts::default());
    }
    let (counts, spans, longest) = match batch.upsert {
        Upsert::Postgres(statement) => {
            let row = db
                .query_one_raw(statement)
                .await?
                .ok_or(IngestError::NoCounts)?;
            let inserted = row.try_get::<i64>("", "inserted")? as u64;
            let updated = row.try_get::<i64>("", "updated")? as u64;
            let days: Option<String> = row.try_get("", "days")?;
            let longest: Option<i64> = row.try_get("", "longest")?;
            let counts = Counts {
                inserted,
                updated,
                unchanged: batch.len as u64 - inserted - updated,
            };
            (counts, day_ranges(days.as_deref().unwrap_or("")), longest)
        }
        Upsert::Compared(records, now) => upsert_compared(db, records, now).await?,
    };
    if let Some(seconds) = longest {
        crate::books::steps::raise_longest_step(db, seconds).await?;
    }
    crate::books::stale::mark_spans(db, spans, batch.now).await?;
    if let (Some(jobsets), true) = (batch.jobsets, counts.inserted + counts.updated > 0) {
        db.execute(&jobsets).await?;
    }
    Ok(counts)
}

/// The PostgreSQL upsert. Each of `$1`…`$11` is a column of the chunk as one array literal
/// (text, so that one value carries a whole column, `NULL`s included); `$12` is the time of
/// the ingest. The `unnest`s in the select list run in lockstep over the equally long arrays,
/// row by row, without first materialising the rows as `FROM UNNEST(…)` would.
///
/// `old` holds the stored span of each sent step whose span changes, `up` returns the span of
/// every row written; `days` lists, for each, its first and last day (days since 1970,
/// `first/last`, distinct, comma-separated; steps are after 2000) for the stale marks of the
/// stored books, and `longest` is the longest step written.
const POSTGRES_UPSERT: &str = r#"
WITH old AS (
    SELECT b.start_ts, b.stop_ts
    FROM build_steps b
    JOIN (SELECT unnest($1::text::text[]) AS source, unnest($2::text::int8[]) AS build,
                 unnest($3::text::int4[]) AS step, unnest($9::text::int8[]) AS start_ts,
                 unnest($10::text::int8[]) AS stop_ts) k
      ON b.source = k.source AND b.build = k.build AND b.step = k.step
    WHERE (b.start_ts, b.stop_ts) IS DISTINCT FROM (k.start_ts, k.stop_ts)
), up AS (
    INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                             start_ts, stop_ts, status, ingested_at, updated_at)
    SELECT unnest($1::text::text[]), unnest($2::text::int8[]), unnest($3::text::int4[]),
           unnest($4::text::text[]), unnest($5::text::text[]), unnest($6::text::text[]),
           unnest($7::text::text[]), unnest($8::text::text[]), unnest($9::text::int8[]),
           unnest($10::text::int8[]), unnest($11::text::int4[]),
           $12::timestamptz, $12::timestamptz
    ON CONFLICT (source, build, step) DO UPDATE SET
        project = excluded.project, jobset = excluded.jobset, job = excluded.job,
        system = excluded.system, machine = excluded.machine, start_ts = excluded.start_ts,
        stop_ts = excluded.stop_ts, status = excluded.status, updated_at = excluded.updated_at
    WHERE (build_steps.project, build_steps.jobset, build_steps.job, build_steps.system,
           build_steps.machine, build_steps.start_ts, build_steps.stop_ts, build_steps.status)
          IS DISTINCT FROM
          (excluded.project, excluded.jobset, excluded.job, excluded.system,
           excluded.machine, excluded.start_ts, excluded.stop_ts, excluded.status)
    RETURNING (xmax = 0) AS inserted, start_ts, stop_ts
), spans AS (
    SELECT start_ts, stop_ts FROM up UNION ALL SELECT start_ts, stop_ts FROM old
)
SELECT (SELECT count(*) FROM up WHERE inserted) AS inserted,
       (SELECT count(*) FROM up WHERE NOT inserted) AS updated,
       (SELECT string_agg(DISTINCT
            (start_ts / 86400)::text || '/' || (greatest(stop_ts - 1, start_ts) / 86400)::text,
            ',') FROM spans) AS days,
       (SELECT max(stop_ts - start_ts) FROM up) AS longest"#;

/// The spans of the `days` column of [`POSTGRES_UPSERT`]: from the first day's start to the
/// last day's end.
fn day_ranges(text: &str) -> Vec<crate::calendar::Span> {
    const DAY: i64 = crate::books::days::DAY;
    text.split(',')
        .filter_map(|pair| {
            let (a, b) = pair.split_once('/')?;
            let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
            Some(crate::calendar::Span::new(a * DAY, (b + 1) * DAY))
        })
        .collect()
}

fn postgres_upsert(records: &[StepRecord], now: DateTime<Utc>) -> Statement {
    let n = records.len();
    let text = |avg: usize| ArrayLiteral::with_capacity(n * (avg + 3) + 2);
    let (mut source, mut build, mut step) = (text(8), text(10), text(2));
    let (mut project, mut jobset, mut job) = (text(10), text(10), text(40));
    let (mut system, mut machine) = (text(14), text(10));
    let (mut start, mut stop, mut status) = (text(10), text(10), text(2));
    for r in records {
        source.text(Some(&r.source));
        build.int(Some(r.build));
        step.int(Some(r.step.into()));
        project.text(Some(&r.project));
        jobset.text(Some(&r.jobset));
        job.text(r.job.as_deref());
        system.text(r.system.as_deref());
        machine.text(Some(&r.machine));
        start.int(Some(r.start));
        stop.int(Some(r.stop));
        status.int(r.status.map(i64::from));
    }
    let values = vec![
        source.finish(),
        build.finish(),
        step.finish(),
        project.finish(),
        jobset.finish(),
        job.finish(),
        system.finish(),
        machine.finish(),
        start.finish(),
        stop.finish(),
        status.finish(),
        now.into(),
    ];
    Statement::from_sql_and_values(DbBackend::Postgres, POSTGRES_UPSERT, values)
}

type Stored = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<i32>,
);

fn stored_form(r: &StepRecord) -> Stored {
    (
        r.project.clone(),
        r.jobset.clone(),
        r.job.clone(),
        r.system.clone(),
        r.machine.clone(),
        r.start,
        r.stop,
        r.status,
    )
}

/// The portable upsert: compare with what is stored, then write what is new or changed.
async fn upsert_compared(
    db: &impl ConnectionTrait,
    records: Vec<StepRecord>,
    now: DateTime<Utc>,
) -> Result<(Counts, Vec<crate::calendar::Span>, Option<i64>), DbErr> {
    use crate::calendar::Span;
    use build_steps::Column as C;
    // What is stored under these keys now.
    let keys = records.iter().map(|r| {
        Expr::tuple([
            Expr::val(r.source.clone()),
            Expr::val(r.build),
            Expr::val(r.step),
        ])
    });
    let select = Query::select()
        .columns([
            C::Source,
            C::Build,
            C::Step,
            C::Project,
            C::Jobset,
            C::Job,
            C::System,
            C::Machine,
            C::StartTs,
            C::StopTs,
            C::Status,
        ])
        .from(build_steps::Entity)
        .and_where(
            Expr::tuple([
                Expr::col(C::Source),
                Expr::col(C::Build),
                Expr::col(C::Step),
            ])
            .is_in(keys),
        )
        .to_owned();
    let mut existing: HashMap<(String, i64, i32), Stored> = HashMap::new();
    for row in db.query_all(&select).await? {
        let key = (
            row.try_get::<String>("", "source")?,
            row.try_get::<i64>("", "build")?,
            row.try_get::<i32>("", "step")?,
        );
        let stored = (
            row.try_get("", "project")?,
            row.try_get("", "jobset")?,
            row.try_get("", "job")?,
            row.try_get("", "system")?,
            row.try_get("", "machine")?,
            row.try_get("", "start_ts")?,
            row.try_get("", "stop_ts")?,
            row.try_get("", "status")?,
        );
        existing.insert(key, stored);
    }

    let mut counts = Counts::default();
    let mut insert = Query::insert()
        .into_table(build_steps::Entity)
        .columns([
            C::Source,
            C::Build,
            C::Step,
            C::Project,
            C::Jobset,
            C::Job,
            C::System,
            C::Machine,
            C::StartTs,
            C::StopTs,
            C::Status,
            C::IngestedAt,
            C::UpdatedAt,
        ])
        .on_conflict(
            OnConflict::columns([C::Source, C::Build, C::Step])
                .update_columns([
                    C::Project,
                    C::Jobset,
                    C::Job,
                    C::System,
                    C::Machine,
                    C::StartTs,
                    C::StopTs,
                    C::Status,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .to_owned();
    let mut writes = 0;
    let mut spans = Vec::new();
    let mut longest: Option<i64> = None;
    for r in records {
        match existing.remove(&(r.source.clone(), r.build, r.step)) {
            Some(stored) if stored == stored_form(&r) => {
                counts.unchanged += 1;
                continue;
            }
            Some(stored) => {
                counts.updated += 1;
                spans.push(Span::new(stored.5, stored.6));
            }
            None => counts.inserted += 1,
        }
        spans.push(Span::new(r.start, r.stop));
        longest = std::cmp::max(longest, Some(r.stop - r.start));
        writes += 1;
        let values: [Value; 13] = [
            r.source.into(),
            r.build.into(),
            r.step.into(),
            r.project.into(),
            r.jobset.into(),
            r.job.into(),
            r.system.into(),
            r.machine.into(),
            r.start.into(),
            r.stop.into(),
            r.status.into(),
            now.into(),
            now.into(),
        ];
        insert.values_panic(values.map(Expr::val));
    }
    if writes > 0 {
        db.execute(&insert).await?;
    }
    Ok((counts, spans, longest))
}

/// Remembers every `project:jobset` of a chunk.
fn jobsets_statement(records: &[StepRecord], now: DateTime<Utc>) -> InsertStatement {
    use jobsets::Column as J;
    let seen: HashSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.project.as_str(), r.jobset.as_str()))
        .collect();
    let mut seen: Vec<(&str, &str)> = seen.into_iter().collect();
    seen.sort_unstable();
    let mut insert = Query::insert()
        .into_table(jobsets::Entity)
        .columns([J::Project, J::Name, J::FirstSeen])
        .on_conflict(
            OnConflict::columns([J::Project, J::Name])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    for (project, name) in seen {
        insert.values_panic([Expr::val(project), Expr::val(name), Expr::val(now)]);
    }
    insert
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(build: impl FnOnce(&mut ArrayLiteral)) -> String {
        let mut a = ArrayLiteral::with_capacity(0);
        build(&mut a);
        match a.finish() {
            Value::String(Some(s)) => s,
            other => unreachable!("an array literal is a text value, not {other:?}"),
        }
    }

    #[test]
    fn array_literals_quote_every_text_and_spell_nulls() {
        assert_eq!(literal(|_| {}), "{}");
        assert_eq!(
            literal(|a| {
                a.text(Some("plain"));
                a.text(None);
                a.text(Some("NULL"));
                a.text(Some(r#" a "quoted" \ {b,c} "#));
                a.text(Some(""));
            }),
            r#"{"plain",NULL,"NULL"," a \"quoted\" \\ {b,c} ",""}"#
        );
        assert_eq!(
            literal(|a| {
                a.int(Some(-3));
                a.int(None);
                a.int(Some(i64::MAX));
            }),
            "{-3,NULL,9223372036854775807}"
        );
    }
}
