//! The cron scheduler `buildfund serve` runs. Schedules come from `[schedule]` (six-field cron,
//! UTC). Several instances may run against one database; each tick of each job runs once:
//!
//! - **Claim.** An instance that reaches a tick inserts `(job, scheduled_for)` into `job_runs`;
//!   the unique index lets exactly one insert succeed, and only that instance runs the tick.
//! - **Lease.** While a job runs, its row in `job_leases` names the holder until `expires_at`
//!   (renewed while it runs, [`crate::db::leases`]). A tick that finds the job still running
//!   elsewhere is recorded as skipped instead of overlapping; a crashed holder's lease simply
//!   expires. Each acquisition takes a new fencing token; a renewal that finds the lease gone
//!   (expired and taken by another instance) stops the run, recorded as `failed`.
//! - **Catch-up.** At start, a job whose latest due tick has no run (every instance was down)
//!   runs once for that tick, not once per missed tick.
//!
//! Every run is recorded (job, tick, start, end, outcome, error, instance). A job that fails or
//! panics is recorded as such and does not stop the scheduler or the server.
//!
//! **Per instance.** The jobs of [`PER_INSTANCE`] (`gate_refresh`) are each instance's own work:
//! [`spawn_per_instance`] runs them once at start, then on their schedule and never more than
//! [`PER_INSTANCE_MAX_WAIT`] apart (also when their schedule is disabled), neither claimed nor
//! recorded.
use crate::config::Secrets;
use crate::db::leases;
use crate::gate::{panic_message, Gate};
use crate::Config;
use anyhow::Context;
use buildfund_entity::job_runs;
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use futures_util::FutureExt;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Scheduled work every instance does for itself rather than once for all: `gate_refresh`
/// rebuilds the instance's own in-memory gate snapshot.
pub const PER_INSTANCE: &[&str] = &["gate_refresh"];

/// The longest wait between two runs of a per-instance job, whatever its schedule says: monthly
/// machines accrue cost with time, so the gate's figures age by the minute.
pub const PER_INSTANCE_MAX_WAIT: Duration = Duration::from_secs(60);

/// How long a lease lasts without renewal.
pub const LEASE: ChronoDuration = ChronoDuration::seconds(120);

/// How the error of a run skipped because the job was running (here or elsewhere) begins.
pub const LEASE_HELD: &str = "the previous run is still going on";

/// Whether `run` was skipped because another run of its job held the lease.
pub fn lease_was_held(run: &job_runs::Model) -> bool {
    run.outcome == "skipped"
        && run
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(LEASE_HELD))
}

/// What a job reports when it returns normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work; a one-line summary.
    Done(String),
    /// There was nothing it could do (not configured); why.
    Skipped(String),
}

pub type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send>>;
/// A job: given the database and configuration, do one run.
pub type JobFn = Arc<dyn Fn(DatabaseConnection, Arc<Config>) -> JobFuture + Send + Sync>;

/// The jobs this build knows, by name: those claimed once across instances, and those every
/// instance runs for itself ([`PER_INSTANCE`]).
#[derive(Clone, Default)]
pub struct Registry {
    jobs: BTreeMap<String, JobFn>,
    per_instance: BTreeMap<String, JobFn>,
}

fn job_fn<F, Fut>(f: F) -> JobFn
where
    F: Fn(DatabaseConnection, Arc<Config>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>> + Send + 'static,
{
    Arc::new(move |db, config| Box::pin(f(db, config)))
}

impl Registry {
    pub fn register<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn(DatabaseConnection, Arc<Config>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Outcome>> + Send + 'static,
    {
        self.jobs.insert(name.to_string(), job_fn(f));
    }

    /// A job of [`PER_INSTANCE`]: run by [`spawn_per_instance`], not claimed, not recorded.
    pub fn register_per_instance<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn(DatabaseConnection, Arc<Config>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Outcome>> + Send + 'static,
    {
        self.per_instance.insert(name.to_string(), job_fn(f));
    }

    /// A job claimed once across instances (what `POST /api/v1/jobs/{name}/run` may start).
    pub fn get(&self, name: &str) -> Option<&JobFn> {
        self.jobs.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.jobs.keys().map(String::as_str)
    }
}

/// The jobs that exist so far, `gate_refresh` refreshing `gate`, the others with the secrets
/// they use (read once, at start). A job named in `[schedule]` without an implementation here
/// is reported at start and not run.
pub fn builtin_jobs(gate: Arc<Gate>, secrets: Arc<Secrets>) -> Registry {
    let mut r = Registry::default();
    r.register_per_instance("gate_refresh", move |db, _config| {
        let gate = gate.clone();
        async move {
            // A failure is logged by the gate, which then answers from its last snapshot.
            let changes = gate.refresh(&db).await?;
            Ok(Outcome::Done(format!("{} state change(s)", changes.len())))
        }
    });
    let s = secrets.clone();
    r.register("hydra_pull", move |db, config| {
        let secrets = s.clone();
        async move {
            match &config.hydra {
                None => {
                    return Ok(Outcome::Skipped(
                        "no [hydra] table in the configuration".into(),
                    ))
                }
                Some(h) if h.database_url_env.is_none() => {
                    return Ok(Outcome::Skipped(
                        "no hydra.database_url_env: buildfund only acts on Hydra's web API".into(),
                    ))
                }
                Some(_) => {}
            }
            let report = crate::sources::hydra_pull::pull(
                &db,
                &config,
                &secrets,
                chrono::Utc::now(),
                |_| {},
            )
            .await?;
            Ok(Outcome::Done(format!(
                "{} rows: {} inserted, {} updated, {} unchanged",
                report.rows, report.inserted, report.updated, report.unchanged
            )))
        }
    });
    let s = secrets.clone();
    r.register("opencollective_sync", move |db, config| {
        let secrets = s.clone();
        async move {
            if config.opencollective.is_none() {
                return Ok(Outcome::Skipped(
                    "no [opencollective] table in the configuration".into(),
                ));
            }
            let options = crate::sources::opencollective::SyncOptions::default();
            // The instant the sync reads up to: the job's clock is the wall clock.
            let now = chrono::Utc::now();
            let report =
                crate::sources::opencollective::sync(&db, &config, &secrets, options, now, |_| {})
                    .await?;
            let check = report.check.as_ref().map_or("no check".to_string(), |c| {
                match c.drift_cents {
                    Some(d) => format!("check {} (drift {d} cents)", c.status.as_str()),
                    None => format!("check {}", c.status.as_str()),
                }
            });
            Ok(Outcome::Done(format!(
                "{} pages, {} records ({} donations and {} expenses inserted, {} skipped), {} recurring, {} retries; {check}",
                report.pages,
                report.records,
                report.stored.inserted,
                report.expenses.inserted,
                report.skipped,
                report.recurring,
                report.retries
            )))
        }
    });
    let s = secrets.clone();
    r.register("outbox_drain", move |db, config| {
        let secrets = s.clone();
        async move {
            let Some(smtp) = &config.smtp else {
                return Ok(Outcome::Skipped(
                    "no [smtp] table in the configuration".into(),
                ));
            };
            let mailer = crate::email::Mailer::new(smtp, &secrets)?;
            let key = crate::email::EmailKey::load(&db, &secrets, chrono::Utc::now()).await?;
            // Retries due within the minute are waited for; later ones are the next run's.
            let options = crate::email::outbox::DrainOptions {
                wait_for_retries: std::time::Duration::from_secs(50),
                ..Default::default()
            };
            let report = crate::email::outbox::drain(&db, &config, &mailer, &key, options).await?;
            Ok(Outcome::Done(report.to_string()))
        }
    });
    r.register("monthly_report", move |db, config| {
        let secrets = secrets.clone();
        async move {
            if config.smtp.is_none() {
                return Ok(Outcome::Skipped(
                    "no [smtp] table in the configuration".into(),
                ));
            }
            let month = crate::calendar::Month::of(chrono::Utc::now()).prev();
            let options = crate::email::outbox::DrainOptions {
                wait_for_retries: std::time::Duration::from_secs(50),
                ..Default::default()
            };
            let (created, report) =
                crate::email::outbox::send_month(&db, &config, &secrets, month, options).await?;
            Ok(Outcome::Done(format!(
                "{month}: {created} messages queued; {report}"
            )))
        }
    });
    r
}

/// Starts the per-instance jobs of `registry` (see the module doc): each runs once now, then on
/// its `[schedule]` entry, at most [`PER_INSTANCE_MAX_WAIT`] apart, until the runtime stops.
pub fn spawn_per_instance(db: DatabaseConnection, config: Arc<Config>, registry: &Registry) {
    for (name, f) in &registry.per_instance {
        let (name, f, db, config) = (name.clone(), f.clone(), db.clone(), config.clone());
        let job_loop = async move {
            // Each run has its span: `job` and `run_id`, this instance's count of the job's
            // runs (per-instance runs are not recorded in `job_runs`).
            for run_id in 1u64.. {
                let span = tracing::info_span!("job", job = %name, run_id);
                // A panic is caught here too, so the loop goes on (the gate also catches its
                // own and marks its snapshot stale).
                match std::panic::AssertUnwindSafe(f(db.clone(), config.clone()))
                    .catch_unwind()
                    .instrument(span)
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(job = %name, error = %format!("{e:#}"), "per-instance job failed")
                    }
                    Err(panic) => {
                        tracing::error!(job = %name, panic = %panic_message(panic.as_ref()), "per-instance job panicked")
                    }
                }
                let now = Utc::now();
                let wait = config
                    .schedule
                    .get(&name)
                    .and_then(|s| s.schedule.upcoming(Utc).next())
                    .and_then(|next| (next - now).to_std().ok())
                    .unwrap_or(PER_INSTANCE_MAX_WAIT)
                    .min(PER_INSTANCE_MAX_WAIT);
                tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
            }
        };
        tokio::spawn(job_loop.in_current_span());
    }
}

pub struct Scheduler {
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: Registry,
    instance: String,
    lease: ChronoDuration,
}

impl Scheduler {
    pub fn new(db: DatabaseConnection, config: Arc<Config>, registry: Registry) -> Scheduler {
        Scheduler {
            db,
            config,
            registry,
            instance: leases::instance_id(),
            lease: LEASE,
        }
    }

    /// The same scheduler with leases of `lease` instead of [`LEASE`] (renewed every third).
    pub fn with_lease(mut self, lease: ChronoDuration) -> Scheduler {
        self.lease = lease;
        self
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The scheduled jobs that have an implementation.
    fn scheduled(&self) -> Vec<(String, cron::Schedule, JobFn)> {
        let mut out = Vec::new();
        for (name, schedule) in &self.config.schedule {
            if PER_INSTANCE.contains(&name.as_str()) {
                continue;
            }
            match self.registry.get(name) {
                Some(f) => out.push((name.clone(), schedule.schedule.clone(), f.clone())),
                None => {
                    tracing::info!(job = %name, "scheduled job not available in this build; not run")
                }
            }
        }
        out
    }

    /// Runs until `shutdown` turns true, then waits up to `grace` for running jobs.
    pub async fn run(self, shutdown: watch::Receiver<bool>, grace: Duration) {
        let span = tracing::info_span!("scheduler", instance = %self.instance);
        self.run_in_span(shutdown, grace).instrument(span).await
    }

    async fn run_in_span(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let jobs = self.scheduled();
        let this = Arc::new(self);
        let mut running = tokio::task::JoinSet::new();
        let now = Utc::now();
        let mut last: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for (name, schedule, f) in &jobs {
            last.insert(name.clone(), now);
            match this.missed_tick(name, schedule, now).await {
                Ok(Some(tick)) => {
                    tracing::info!(job = %name, tick = %tick, "catching up a missed run");
                    let (this, name, f) = (this.clone(), name.clone(), f.clone());
                    running.spawn(
                        async move { this.run_tick(&name, tick, f).await }.in_current_span(),
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %name, error = %format!("{e:#}"), "cannot check for missed runs")
                }
            }
        }
        loop {
            while running.try_join_next().is_some() {}
            let next = jobs
                .iter()
                .filter_map(|(name, schedule, _)| schedule.after(&last[name]).next())
                .min();
            let Some(next) = next else {
                let _ = shutdown.changed().await;
                break;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            let now = Utc::now();
            for (name, schedule, f) in &jobs {
                let Some(tick) = schedule.after(&last[name]).next() else {
                    continue;
                };
                if tick > now {
                    continue;
                }
                // Skip ticks this instance slept through; run the latest due one.
                let latest = schedule
                    .after(&last[name])
                    .take_while(|t| *t <= now)
                    .last()
                    .unwrap_or(tick);
                last.insert(name.clone(), latest);
                let (this, name, f) = (this.clone(), name.clone(), f.clone());
                running
                    .spawn(async move { this.run_tick(&name, latest, f).await }.in_current_span());
            }
        }
        if !running.is_empty() {
            tracing::info!(
                jobs = running.len(),
                grace_seconds = grace.as_secs(),
                "waiting for running jobs"
            );
            if tokio::time::timeout(grace, async {
                while running.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                tracing::warn!("jobs still running after the grace period; stopping them");
                running.abort_all();
            }
        }
    }

    /// The latest tick before `now` if it has no run although an earlier tick has one.
    async fn missed_tick(
        &self,
        job: &str,
        schedule: &cron::Schedule,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let Some(last_run) = job_runs::Entity::find()
            .filter(job_runs::Column::Job.eq(job))
            .order_by_desc(job_runs::Column::ScheduledFor)
            .limit(1)
            .one(&self.db)
            .await?
        else {
            return Ok(None); // never ran: nothing was missed
        };
        let due = schedule
            .after(&last_run.scheduled_for)
            .take_while(|t| *t <= now)
            .last();
        Ok(due)
    }

    /// Claims `tick` of `job` and, if this instance won it, runs the job and records the end.
    /// Its log lines are in the span `job` (`job`, `tick`, and `run_id`: the `job_runs` row).
    pub async fn run_tick(&self, job: &str, tick: DateTime<Utc>, f: JobFn) -> Option<i64> {
        let span = tracing::info_span!("job", job, tick = %tick, run_id = tracing::field::Empty);
        self.claim_and_execute(job, tick, f).instrument(span).await
    }

    async fn claim_and_execute(&self, job: &str, tick: DateTime<Utc>, f: JobFn) -> Option<i64> {
        match self.claim(job, tick).await {
            Ok(Some(id)) => {
                tracing::Span::current().record("run_id", id);
                self.execute(id, job, f).await;
                Some(id)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(job, tick = %tick, error = %format!("{e:#}"), "cannot claim the run");
                None
            }
        }
    }

    /// Inserts the run row; `None` when another instance already has this tick.
    async fn claim(&self, job: &str, tick: DateTime<Utc>) -> anyhow::Result<Option<i64>> {
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
                Expr::val(Utc::now()),
                Expr::val("running"),
                Expr::val(self.instance.as_str()),
            ])
            .on_conflict(
                OnConflict::columns([R::Job, R::ScheduledFor])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        let result = self
            .db
            .execute(&insert)
            .await
            .context("inserting the run")?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        let row = job_runs::Entity::find()
            .filter(R::Job.eq(job))
            .filter(R::ScheduledFor.eq(tick))
            .one(&self.db)
            .await?
            .context("the claimed run disappeared")?;
        Ok(Some(row.id))
    }

    async fn execute(&self, run_id: i64, job: &str, f: JobFn) {
        let outcome = match leases::acquire(&self.db, job, &self.instance, self.lease).await {
            Ok(Err(holder)) => Err(("skipped", format!("{LEASE_HELD} {holder}"))),
            Err(e) => Err(("failed", format!("cannot take the lease: {e:#}"))),
            Ok(Ok(lease)) => {
                let work = std::panic::AssertUnwindSafe(f(self.db.clone(), self.config.clone()))
                    .catch_unwind();
                // A lost lease (another instance took it over) stops the work where it is.
                let result = tokio::select! {
                    r = work => Some(r),
                    _ = lease.keep(&self.db) => None,
                };
                if let Err(e) = lease.release(&self.db).await {
                    tracing::warn!(job, error = %e, "cannot release the lease; it will expire");
                }
                match result {
                    None => Err((
                        "failed",
                        format!(
                            "the lease (token {}) was lost to another instance; the run was stopped",
                            lease.token
                        ),
                    )),
                    Some(Ok(Ok(Outcome::Done(summary)))) => Ok(summary),
                    Some(Ok(Ok(Outcome::Skipped(why)))) => Err(("skipped", why)),
                    Some(Ok(Err(e))) => Err(("failed", format!("{e:#}"))),
                    Some(Err(panic)) => Err(("panicked", panic_message(panic.as_ref()))),
                }
            }
        };
        let (label, text) = match &outcome {
            Ok(summary) => ("ok", summary.clone()),
            Err((label, text)) => (*label, text.clone()),
        };
        match label {
            "ok" | "skipped" => tracing::info!(job, run = run_id, outcome = label, "{text}"),
            _ => {
                tracing::error!(job, run = run_id, outcome = label, error = %text, "job run failed")
            }
        }
        let update = Query::update()
            .table(job_runs::Entity)
            .value(job_runs::Column::FinishedAt, Utc::now())
            .value(job_runs::Column::Outcome, label)
            .value(job_runs::Column::Error, Some(text))
            .and_where(Expr::col(job_runs::Column::Id).eq(run_id))
            .to_owned();
        if let Err(e) = self.db.execute(&update).await {
            tracing::warn!(job, run = run_id, error = %e, "cannot record the end of the run");
        }
    }
}

/// Runs `job` now (an admin's request), as a tick at the current second.
pub async fn run_now(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    job: &str,
) -> anyhow::Result<Option<job_runs::Model>> {
    let tick = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("valid");
    run_at(db, config, registry, job, tick).await
}

/// Runs `job` now for an outside hint (a webhook), as a tick at the current millisecond: never
/// a scheduled tick's (whole seconds), so it is claimed apart from them, and under the same
/// lease, so it never overlaps a run here or on another instance (it is then recorded as
/// skipped, see [`lease_was_held`]).
pub async fn run_triggered(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    job: &str,
) -> anyhow::Result<Option<job_runs::Model>> {
    let mut tick = Utc::now().trunc_subsecs(3);
    if tick.timestamp_subsec_millis() == 0 {
        tick += ChronoDuration::milliseconds(1);
    }
    run_at(db, config, registry, job, tick).await
}

async fn run_at(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    job: &str,
    tick: DateTime<Utc>,
) -> anyhow::Result<Option<job_runs::Model>> {
    let Some(f) = registry.get(job).cloned() else {
        return Ok(None);
    };
    let scheduler = Scheduler::new(db.clone(), config, registry.clone());
    let id = scheduler
        .run_tick(job, tick, f)
        .await
        .context("this instant's run of the job was already claimed; try again")?;
    Ok(job_runs::Entity::find_by_id(id).one(&db).await?)
}

/// When each of `jobs` last ended `ok` (jobs that never did are left out): one lookup per job
/// through the index on `(job, outcome, finished_at)`, whatever the number of runs kept.
pub async fn last_successes<'a>(
    db: &impl ConnectionTrait,
    jobs: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, DateTime<Utc>)>, sea_orm::DbErr> {
    use job_runs::Column as R;
    let mut out = Vec::new();
    for job in jobs {
        let last = job_runs::Entity::find()
            .filter(R::Job.eq(job))
            .filter(R::Outcome.eq("ok"))
            .filter(R::FinishedAt.is_not_null())
            .order_by_desc(R::FinishedAt)
            .limit(1)
            .one(db)
            .await?;
        if let Some(t) = last.and_then(|r| r.finished_at) {
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
) -> Result<Vec<job_runs::Model>, sea_orm::DbErr> {
    let mut q = job_runs::Entity::find()
        .order_by_desc(job_runs::Column::ScheduledFor)
        .order_by_desc(job_runs::Column::Id);
    if let Some(job) = job {
        q = q.filter(job_runs::Column::Job.eq(job));
    }
    q.limit(limit).all(db).await
}
