//! The scheduler's storage: the runs of `job_runs` (claimed by a unique `(job, scheduled_for)`,
//! then finished with their outcome), read back as [`Run`]s.
use buildfund_entity::job_runs::{self, RunOutcome};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

/// One recorded run of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The `job_runs` row.
    pub id: i64,
    pub job: String,
    /// The tick it ran for.
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    /// A failure's chain, a skip's reason, or a success's summary.
    pub error: Option<String>,
    /// The instance that ran it.
    pub instance: String,
}

impl From<job_runs::Model> for Run {
    fn from(m: job_runs::Model) -> Self {
        let job_runs::Model {
            id,
            job,
            scheduled_for,
            started_at,
            finished_at,
            outcome,
            error,
            instance,
        } = m;
        Run {
            id,
            job,
            scheduled_for,
            started_at,
            finished_at,
            outcome,
            error,
            instance,
        }
    }
}

/// The tick of `job`'s latest run, if it ever ran.
pub async fn latest_tick(
    db: &impl ConnectionTrait,
    job: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    use job_runs::Column as R;
    job_runs::Entity::find()
        .select_only()
        .column(R::ScheduledFor)
        .filter(R::Job.eq(job))
        .order_by_desc(R::ScheduledFor)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
}

/// What claiming a tick came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This instance inserted the run: its id.
    Won(i64),
    /// Another instance has this tick already.
    Taken,
    /// The insert landed but the row could not be read back.
    Missing,
}

/// Inserts the run of `job` for `tick`, started at `now` by `instance`.
pub async fn claim(
    db: &impl ConnectionTrait,
    job: &str,
    tick: DateTime<Utc>,
    instance: &str,
    now: DateTime<Utc>,
) -> Result<Claim, DbErr> {
    use job_runs::Column as R;
    let insert = Query::insert()
        .into_table(job_runs::Entity)
        .columns([
            R::Job,
            R::ScheduledFor,
            R::StartedAt,
            R::Outcome,
            R::Instance,
        ])
        .values_panic([
            Expr::val(job),
            Expr::val(tick),
            Expr::val(now),
            Expr::val(RunOutcome::Running.as_str()),
            Expr::val(instance),
        ])
        .on_conflict(
            OnConflict::columns([R::Job, R::ScheduledFor])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    if db.execute(&insert).await?.rows_affected() == 0 {
        return Ok(Claim::Taken);
    }
    let id: Option<i64> = job_runs::Entity::find()
        .select_only()
        .column(R::Id)
        .filter(R::Job.eq(job))
        .filter(R::ScheduledFor.eq(tick))
        .into_tuple()
        .one(db)
        .await?;
    Ok(id.map_or(Claim::Missing, Claim::Won))
}

/// Records the end of run `id` at `now`.
pub async fn finish(
    db: &impl ConnectionTrait,
    id: i64,
    outcome: RunOutcome,
    text: String,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use job_runs::Column as R;
    let update = Query::update()
        .table(job_runs::Entity)
        .value(R::FinishedAt, now)
        .value(R::Outcome, outcome.as_str())
        .value(R::Error, Some(text))
        .and_where(Expr::col(R::Id).eq(id))
        .to_owned();
    db.execute(&update).await.map(|_| ())
}

/// Run `id`.
pub async fn run(db: &impl ConnectionTrait, id: i64) -> Result<Option<Run>, DbErr> {
    Ok(job_runs::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Run::from))
}

/// When each of `jobs` last ended `ok` (jobs that never did are left out): one lookup per job
/// through the index on `(job, outcome, finished_at)`, whatever the number of runs kept.
pub async fn last_successes<'a>(
    db: &impl ConnectionTrait,
    jobs: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, DateTime<Utc>)>, DbErr> {
    use job_runs::Column as R;
    let mut out = Vec::new();
    for job in jobs {
        let last: Option<Option<DateTime<Utc>>> = job_runs::Entity::find()
            .select_only()
            .column(R::FinishedAt)
            .filter(R::Job.eq(job))
            .filter(R::Outcome.eq(RunOutcome::Ok))
            .filter(R::FinishedAt.is_not_null())
            .order_by_desc(R::FinishedAt)
            .limit(1)
            .into_tuple()
            .one(db)
            .await?;
        if let Some(Some(t)) = last {
            out.push((job.to_string(), t));
        }
    }
    Ok(out)
}

/// Recent runs, newest first, optionally of one job.
pub async fn recent_runs(
    db: &impl ConnectionTrait,
    job: Option<&str>,
    limit: u64,
) -> Result<Vec<Run>, DbErr> {
    let mut q = job_runs::Entity::find()
        .order_by_desc(job_runs::Column::ScheduledFor)
        .order_by_desc(job_runs::Column::Id);
    if let Some(job) = job {
        q = q.filter(job_runs::Column::Job.eq(job));
    }
    Ok(q.limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Run::from)
        .collect())
}
