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
//! **Time.** The scheduler reads "now" from its [`Clock`] only: [`Scheduler::run`] sleeps until
//! the next tick, then calls [`Scheduler::tick`]'s parts at the clock's now, so a test drives
//! the same code at chosen instants with a manual clock ([`Scheduler::start`], then
//! [`Scheduler::tick`] after each advance).
//!
//! **Per instance.** The jobs of [`PER_INSTANCE`] (`gate_refresh`) are each instance's own work:
//! [`spawn_per_instance`] runs them once at start, then on their schedule and never more than
//! [`PER_INSTANCE_MAX_WAIT`] apart (also when their schedule is disabled), neither claimed nor
//! recorded.
use crate::clock::Clock;
use crate::config::Secrets;
use crate::db::leases;
pub use crate::failure::error_chain;
use crate::failure::panic_message;
use crate::gate::Gate;
use crate::Config;
pub use buildfund_entity::job_runs::RunOutcome;
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

pub mod store;

pub use store::{last_successes, recent_runs, Run};

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
pub fn lease_was_held(run: &Run) -> bool {
    run.outcome == RunOutcome::Skipped
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

/// Why a job's run failed: whatever error the job's own wing returned (its chain is recorded,
/// see [`error_chain`]).
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// The scheduler's own failures (a job's are [`JobError`]s, recorded in its run).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Another run already claimed this instant of the job.
    #[error("this instant's run of {job} was already claimed; try again")]
    AlreadyClaimed { job: String },
    /// The run row this instance inserted could not be read back.
    #[error("the claimed run of {job} at {tick} disappeared")]
    ClaimedRunMissing { job: String, tick: DateTime<Utc> },
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<Outcome, JobError>> + Send>>;
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
    Fut: Future<Output = Result<Outcome, JobError>> + Send + 'static,
{
    Arc::new(move |db, config| Box::pin(f(db, config)))
}

impl Registry {
    pub fn register<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn(DatabaseConnection, Arc<Config>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, JobError>> + Send + 'static,
    {
        self.jobs.insert(name.to_string(), job_fn(f));
    }

    /// A job of [`PER_INSTANCE`]: run by [`spawn_per_instance`], not claimed, not recorded.
    pub fn register_per_instance<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn(DatabaseConnection, Arc<Config>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, JobError>> + Send + 'static,
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
/// they use (read once, at start) and reading "now" from `clock`. A job named in `[schedule]`
/// without an implementation here is reported at start and not run.
pub fn builtin_jobs(gate: Arc<Gate>, secrets: Arc<Secrets>, clock: Clock) -> Registry {
    let mut r = Registry::default();
    r.register_per_instance("gate_refresh", move |db, _config| {
        let gate = gate.clone();
        async move {
            // A failure is logged by the gate, which then answers from its last snapshot.
            let changes = gate.refresh(&db).await?;
            Ok(Outcome::Done(format!("{} state change(s)", changes.len())))
        }
    });
    let (s, c) = (secrets.clone(), clock.clone());
    r.register("hydra_pull", move |db, config| {
        let (secrets, clock) = (s.clone(), c.clone());
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
            let report =
                crate::sources::hydra_pull::pull(&db, &config, &secrets, clock.now(), |_| {})
                    .await?;
            Ok(Outcome::Done(format!(
                "{} rows: {} inserted, {} updated, {} unchanged",
                report.rows, report.inserted, report.updated, report.unchanged
            )))
        }
    });
    let (s, c) = (secrets.clone(), clock.clone());
    r.register("opencollective_sync", move |db, config| {
        let (secrets, clock) = (s.clone(), c.clone());
        async move {
            if config.opencollective.is_none() {
                return Ok(Outcome::Skipped(
                    "no [opencollective] table in the configuration".into(),
                ));
            }
            let options = crate::sources::opencollective::SyncOptions {
                clock: clock.clone(),
                ..Default::default()
            };
            // The instant the sync reads up to.
            let now = clock.now();
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
    let (s, c) = (secrets.clone(), clock.clone());
    r.register("outbox_drain", move |db, config| {
        let (secrets, clock) = (s.clone(), c.clone());
        async move {
            let Some(smtp) = &config.smtp else {
                return Ok(Outcome::Skipped(
                    "no [smtp] table in the configuration".into(),
                ));
            };
            let mailer = crate::email::Mailer::new(smtp, &secrets)?;
            let key = crate::email::EmailKey::load(&db, &secrets, clock.now()).await?;
            // Retries due within the minute are waited for; later ones are the next run's.
            let options = crate::email::outbox::DrainOptions {
                wait_for_retries: std::time::Duration::from_secs(50),
                clock: clock.clone(),
                ..Default::default()
            };
            let report = crate::email::outbox::drain(&db, &config, &mailer, &key, options).await?;
            Ok(Outcome::Done(report.to_string()))
        }
    });
    r.register("monthly_report", move |db, config| {
        let (secrets, clock) = (secrets.clone(), clock.clone());
        async move {
            if config.smtp.is_none() {
                return Ok(Outcome::Skipped(
                    "no [smtp] table in the configuration".into(),
                ));
            }
            let month = crate::calendar::Month::of(clock.now()).prev();
            let options = crate::email::outbox::DrainOptions {
                wait_for_retries: std::time::Duration::from_secs(50),
                clock: clock.clone(),
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
/// its `[schedule]` entry (read on `clock`), at most [`PER_INSTANCE_MAX_WAIT`] apart, until the
/// runtime stops.
pub fn spawn_per_instance(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    clock: Clock,
) {
    for (name, f) in &registry.per_instance {
        let (name, f, db, config, clock) = (
            name.clone(),
            f.clone(),
            db.clone(),
            config.clone(),
            clock.clone(),
        );
        let job_loop = async move {
            // Each run has its span: `job` and `run_id`, this instance's count of the job's
            // runs (per-instance runs are not recorded in `job_runs`).
            for run_id in 1u64.. {
                let span = tracing::info_span!("job", job = %name, run_id);
                // A failed run is the job's own to log (the gate logs its refresh's failure
                // once and answers from its last snapshot); the loop goes on.
                if let Err(e) = f(db.clone(), config.clone()).instrument(span).await {
                    tracing::debug!(job = %name, error = %error_chain(e.as_ref()), "per-instance job failed");
                }
                let now = clock.now();
                let wait = config
                    .schedule
                    .get(&name)
                    .and_then(|s| s.schedule.after(&now).next())
                    .and_then(|next| (next - now).to_std().ok())
                    .unwrap_or(PER_INSTANCE_MAX_WAIT)
                    .min(PER_INSTANCE_MAX_WAIT);
                tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
            }
        };
        tokio::spawn(job_loop.in_current_span());
    }
}

/// A job's tick that is due: run it with [`Scheduler::run_tick`].
#[derive(Clone)]
pub struct Due {
    pub job: String,
    pub tick: DateTime<Utc>,
    pub f: JobFn,
}

/// A scheduled job and the latest of its ticks this scheduler has handled.
struct Scheduled {
    name: String,
    schedule: cron::Schedule,
    f: JobFn,
    last: DateTime<Utc>,
}

pub struct Scheduler {
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: Registry,
    instance: String,
    lease: ChronoDuration,
    clock: Clock,
    /// The scheduled jobs, from [`Scheduler::start`] on.
    jobs: Mutex<Vec<Scheduled>>,
}

impl Scheduler {
    /// A scheduler of `registry`'s jobs on `config`'s `[schedule]`, reading "now" from `clock`.
    pub fn new(
        db: DatabaseConnection,
        config: Arc<Config>,
        registry: Registry,
        clock: Clock,
    ) -> Scheduler {
        Scheduler {
            db,
            config,
            registry,
            instance: leases::instance_id(),
            lease: LEASE,
            clock,
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// The same scheduler under another instance name (several in one process, in tests).
    pub fn with_instance(mut self, instance: impl Into<String>) -> Scheduler {
        self.instance = instance.into();
        self
    }

    /// The same scheduler with leases of `lease` instead of [`LEASE`] (renewed every third).
    pub fn with_lease(mut self, lease: ChronoDuration) -> Scheduler {
        self.lease = lease;
        self
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The scheduled jobs that have an implementation, each as handled up to `now`.
    fn scheduled(&self, now: DateTime<Utc>) -> Vec<Scheduled> {
        let mut out = Vec::new();
        for (name, schedule) in &self.config.schedule {
            if PER_INSTANCE.contains(&name.as_str()) {
                continue;
            }
            match self.registry.get(name) {
                Some(f) => out.push(Scheduled {
                    name: name.clone(),
                    schedule: schedule.schedule.clone(),
                    f: f.clone(),
                    last: now,
                }),
                None => {
                    tracing::info!(job = %name, "scheduled job not available in this build; not run")
                }
            }
        }
        out
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<Scheduled>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts scheduling at `now`: every scheduled job counts as handled up to `now`, and the
    /// runs to catch up are answered (a job whose latest due tick has no run although an
    /// earlier tick has one, see the module doc).
    pub async fn start(&self, now: DateTime<Utc>) -> Vec<Due> {
        let jobs = self.scheduled(now);
        let mut due = Vec::new();
        for job in &jobs {
            match self.missed_tick(&job.name, &job.schedule, now).await {
                Ok(Some(tick)) => {
                    tracing::info!(job = %job.name, tick = %tick, "catching up a missed run");
                    due.push(Due {
                        job: job.name.clone(),
                        tick,
                        f: job.f.clone(),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %error_chain(&e), "cannot check for missed runs")
                }
            }
        }
        *self.jobs() = jobs;
        due
    }

    /// The ticks due at `now` since the last call: for each job, its latest tick in
    /// (last handled, `now`] (ticks this instance slept through are skipped), then handled.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Due> {
        let mut out = Vec::new();
        for job in self.jobs().iter_mut() {
            let latest = job
                .schedule
                .after(&job.last)
                .take_while(|t| *t <= now)
                .last();
            if let Some(tick) = latest {
                job.last = tick;
                out.push(Due {
                    job: job.name.clone(),
                    tick,
                    f: job.f.clone(),
                });
            }
        }
        out
    }

    /// The next tick of any job after those handled; `None` when no job is scheduled.
    pub fn next_tick(&self) -> Option<DateTime<Utc>> {
        self.jobs()
            .iter()
            .filter_map(|j| j.schedule.after(&j.last).next())
            .min()
    }

    /// Runs every tick due at `now` ([`Scheduler::due`]) and waits for them all: what the loop
    /// of [`Scheduler::run`] does when it wakes, except that it does not wait. The runs this
    /// instance claimed, as `(job, tick, run id)`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>, Option<i64>)> {
        self.run_all(self.due(now)).await
    }

    /// Runs `due` concurrently and waits for them all.
    pub async fn run_all(&self, due: Vec<Due>) -> Vec<(String, DateTime<Utc>, Option<i64>)> {
        let runs = due.into_iter().map(|d| async move {
            let id = self.run_tick(&d.job, d.tick, d.f).await;
            (d.job, d.tick, id)
        });
        futures_util::future::join_all(runs).await
    }

    /// Runs until `shutdown` turns true, then waits up to `grace` for running jobs.
    pub async fn run(self, shutdown: watch::Receiver<bool>, grace: Duration) {
        let span = tracing::info_span!("scheduler", instance = %self.instance);
        self.run_in_span(shutdown, grace).instrument(span).await
    }

    async fn run_in_span(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let this = Arc::new(self);
        let mut running = tokio::task::JoinSet::new();
        let spawn = |running: &mut tokio::task::JoinSet<Option<i64>>, d: Due| {
            let this = this.clone();
            running
                .spawn(async move { this.run_tick(&d.job, d.tick, d.f).await }.in_current_span());
        };
        for d in this.start(this.clock.now()).await {
            spawn(&mut running, d);
        }
        loop {
            while running.try_join_next().is_some() {}
            let Some(next) = this.next_tick() else {
                let _ = shutdown.changed().await;
                break;
            };
            let wait = (next - this.clock.now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            for d in this.due(this.clock.now()) {
                spawn(&mut running, d);
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
    ) -> Result<Option<DateTime<Utc>>, DbErr> {
        let Some(last_tick) = store::latest_tick(&self.db, job).await? else {
            return Ok(None); // never ran: nothing was missed
        };
        let due = schedule.after(&last_tick).take_while(|t| *t <= now).last();
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
                tracing::warn!(job, tick = %tick, error = %error_chain(&e), "cannot claim the run");
                None
            }
        }
    }

    /// Inserts the run row; `None` when another instance already has this tick.
    async fn claim(&self, job: &str, tick: DateTime<Utc>) -> Result<Option<i64>, SchedulerError> {
        match store::claim(&self.db, job, tick, &self.instance, self.clock.now()).await? {
            store::Claim::Won(id) => Ok(Some(id)),
            store::Claim::Taken => Ok(None),
            store::Claim::Missing => Err(SchedulerError::ClaimedRunMissing {
                job: job.to_string(),
                tick,
            }),
        }
    }

    async fn execute(&self, run_id: i64, job: &str, f: JobFn) {
        let acquired =
            leases::acquire(&self.db, job, &self.instance, self.lease, self.clock.now()).await;
        let outcome = match acquired {
            Ok(Err(holder)) => Err((RunOutcome::Skipped, format!("{LEASE_HELD} {holder}"))),
            Err(e) => Err((
                RunOutcome::Failed,
                format!("cannot take the lease: {}", error_chain(&e)),
            )),
            Ok(Ok(lease)) => {
                // The job runs as a task of its own, in this span: a panic in it ends that
                // task only and comes back as the task's error.
                let mut work =
                    tokio::spawn(f(self.db.clone(), self.config.clone()).in_current_span());
                // A lost lease (another instance took it over) stops the work where it is.
                let result = tokio::select! {
                    r = &mut work => Some(r),
                    _ = lease.keep(&self.db, &self.clock) => None,
                };
                if result.is_none() {
                    work.abort();
                }
                if let Err(e) = lease.release(&self.db).await {
                    tracing::warn!(job, error = %e, "cannot release the lease; it will expire");
                }
                match result {
                    None => Err((
                        RunOutcome::Failed,
                        format!(
                            "the lease (token {}) was lost to another instance; the run was stopped",
                            lease.token
                        ),
                    )),
                    Some(Ok(Ok(Outcome::Done(summary)))) => Ok(summary),
                    Some(Ok(Ok(Outcome::Skipped(why)))) => Err((RunOutcome::Skipped, why)),
                    Some(Ok(Err(e))) => Err((RunOutcome::Failed, error_chain(e.as_ref()))),
                    Some(Err(e)) if e.is_panic() => {
                        Err((
                        RunOutcome::Panicked,
                        panic_message(e.into_panic().as_ref()),
                    ))
                    }
                    Some(Err(_)) => Err((RunOutcome::Failed, "the run was cancelled".to_string())),
                }
            }
        };
        let (outcome, text) = match outcome {
            Ok(summary) => (RunOutcome::Ok, summary),
            Err(failed) => failed,
        };
        let label = outcome.as_str();
        match outcome {
            RunOutcome::Ok | RunOutcome::Skipped => {
                tracing::info!(job, run = run_id, outcome = label, "{text}")
            }
            _ => {
                tracing::error!(job, run = run_id, outcome = label, error = %text, "job run failed")
            }
        }
        let finished = store::finish(&self.db, run_id, outcome, text, self.clock.now()).await;
        if let Err(e) = finished {
            tracing::warn!(job, run = run_id, error = %e, "cannot record the end of the run");
        }
    }
}

/// Runs `job` now (an admin's request), as a tick at `clock`'s current second.
pub async fn run_now(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    clock: &Clock,
    job: &str,
) -> Result<Option<Run>, SchedulerError> {
    let tick = clock.now().trunc_subsecs(0);
    run_at(db, config, registry, clock, job, tick).await
}

/// Runs `job` now for an outside hint (a webhook), as a tick at `clock`'s current millisecond:
/// never a scheduled tick's (whole seconds), so it is claimed apart from them, and under the
/// same lease, so it never overlaps a run here or on another instance (it is then recorded as
/// skipped, see [`lease_was_held`]).
pub async fn run_triggered(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    clock: &Clock,
    job: &str,
) -> Result<Option<Run>, SchedulerError> {
    let mut tick = clock.now().trunc_subsecs(3);
    if tick.timestamp_subsec_millis() == 0 {
        tick += ChronoDuration::milliseconds(1);
    }
    run_at(db, config, registry, clock, job, tick).await
}

async fn run_at(
    db: DatabaseConnection,
    config: Arc<Config>,
    registry: &Registry,
    clock: &Clock,
    job: &str,
    tick: DateTime<Utc>,
) -> Result<Option<Run>, SchedulerError> {
    let Some(f) = registry.get(job).cloned() else {
        return Ok(None);
    };
    let scheduler = Scheduler::new(db.clone(), config, registry.clone(), clock.clone());
    let id =
        scheduler
            .run_tick(job, tick, f)
            .await
            .ok_or_else(|| SchedulerError::AlreadyClaimed {
                job: job.to_string(),
            })?;
    Ok(store::run(&db, id).await?)
}
