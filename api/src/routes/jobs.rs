//! Admin view of the scheduled jobs: their recent runs, and running one now.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use buildfund_jobs::scheduler::{self, Run};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One run of a job, as the API shows it.
#[derive(Serialize)]
pub struct RunView {
    id: i64,
    job: String,
    scheduled_for: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    /// `running`, `ok`, `skipped`, `failed` or `panicked`.
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

#[derive(Deserialize)]
pub struct RunsQuery {
    job: Option<String>,
    limit: Option<u64>,
}

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
    let schedule: serde_json::Map<String, serde_json::Value> = state
        .config
        .schedule
        .iter()
        .map(|(name, s)| {
            let available = state.jobs.get(name).is_some();
            (
                name.clone(),
                json!({"cron": s.expression, "available": available}),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"schedule": schedule, "runs": runs})))
}

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
