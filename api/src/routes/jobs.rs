//! Admin view of the scheduled jobs: their recent runs, and running one now.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use buildfund_jobs::scheduler::{self, Run};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One run of a job, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct RunView {
    id: i64,
    job: String,
    scheduled_for: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    /// `running`, `ok`, `skipped`, `failed` or `panicked`.
    #[schema(value_type = String)]
    outcome: &'static str,
    error: Option<String>,
    instance: String,
}

impl From<Run> for RunView {
    fn from(r: Run) -> Self {
        let Run {
            id,
            job,
            scheduled_for,
            started_at,
            finished_at,
            outcome,
            error,
            instance,
        } = r;
        RunView {
            id,
            job,
            scheduled_for,
            started_at,
            finished_at,
            outcome: outcome.as_str(),
            error,
            instance,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this job's runs.
    job: Option<String>,
    /// At most this many runs, newest first (default 100; above 1000 counts as 1000, 0 as 1).
    #[param(minimum = 0, format = "uint64")]
    limit: Option<u64>,
}

/// A scheduled job: its cron expression and whether this server has it.
#[derive(Serialize, ToSchema)]
pub struct ScheduleEntry {
    cron: String,
    available: bool,
}

/// The answer of `GET /api/v1/jobs`.
#[derive(Serialize, ToSchema)]
pub struct RunsAnswer {
    /// Every scheduled job by name.
    schedule: std::collections::BTreeMap<String, ScheduleEntry>,
    runs: Vec<RunView>,
}

/// The schedule and the recent runs of the jobs, newest first.
#[utoipa::path(
    operation_id = "list_job_runs",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(RunsQuery),
    responses(
        (status = 200, description = "The schedule and the runs.", body = RunsAnswer),
        (status = 400, description = "`limit` is not a whole number.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[get("/jobs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let runs: Vec<RunView> = scheduler::recent_runs(&state.db, query.job.as_deref(), limit)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let schedule = state
        .config
        .schedule
        .iter()
        .map(|(name, s)| {
            let entry = ScheduleEntry {
                cron: s.expression.clone(),
                available: state.jobs.get(name).is_some(),
            };
            (name.clone(), entry)
        })
        .collect();
    Ok(HttpResponse::Ok().json(RunsAnswer { schedule, runs }))
}

/// Runs a job now (claimed and recorded like every run) and answers its run.
#[utoipa::path(
    operation_id = "run_job",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The job's name.")),
    responses(
        (status = 200, description = "The run, finished.", body = RunView),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No such job.", body = ErrorBody),
        (status = 409, description = "Another instance claimed the run at the same instant; try again.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/jobs/{name}/run")]
pub async fn run_now(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    tracing::info!(job = %name, by = %auth.token.name, "job run requested");
    let run = scheduler::run_now(
        state.db.clone(),
        state.config.clone(),
        &state.jobs,
        &state.clock,
        &name,
    )
    .await;
    // A job (a sync, say) may have written figures the pages and the gate show.
    let _ = state.after_write().await;
    match run? {
        Some(run) => Ok(HttpResponse::Ok().json(RunView::from(run))),
        None => {
            let known: Vec<&str> = state.jobs.names().collect();
            Err(ApiError::not_found(format!(
                "no job {name:?} (jobs: {})",
                known.join(", ")
            )))
        }
    }
}
