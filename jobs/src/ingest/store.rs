//! Writing validated build steps: each chunk is compared with what is stored under its keys,
//! then new and changed records go in with one upsert, all inside the caller's transaction.
use super::record::StepRecord;
use buildfund_entity::{build_steps, jobsets};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, ExprTrait, Value};
use std::collections::{BTreeSet, HashMap};

/// Records per statement: 13 bound values a record keeps an upsert under SQLite's and
/// PostgreSQL's parameter limits.
pub const CHUNK: usize = 2000;

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

/// Writes one chunk (at most [`CHUNK`] records, no key twice).
pub async fn write_chunk(
    db: &impl ConnectionTrait,
    records: &[StepRecord],
    now: DateTime<Utc>,
) -> Result<Counts, DbErr> {
    use build_steps::Column as C;
    if records.is_empty() {
        return Ok(Counts::default());
    }
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
    for r in records {
        match existing.get(&(r.source.clone(), r.build, r.step)) {
            Some(stored) if *stored == stored_form(r) => {
                counts.unchanged += 1;
                continue;
            }
            Some(_) => counts.updated += 1,
            None => counts.inserted += 1,
        }
        writes += 1;
        let values: [Value; 13] = [
            r.source.clone().into(),
            r.build.into(),
            r.step.into(),
            r.project.clone().into(),
            r.jobset.clone().into(),
            r.job.clone().into(),
            r.system.clone().into(),
            r.machine.clone().into(),
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
        record_jobsets(db, records, now).await?;
    }
    Ok(counts)
}

/// Remembers every `project:jobset` seen.
async fn record_jobsets(
    db: &impl ConnectionTrait,
    records: &[StepRecord],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use jobsets::Column as J;
    let seen: BTreeSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.project.as_str(), r.jobset.as_str()))
        .collect();
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
    db.execute(&insert).await?;
    Ok(())
}
