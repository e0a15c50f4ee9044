//! Public figures: `GET /api/v1/costs`, its FOCUS 1.0 export `GET /api/v1/costs/focus`,
//! `GET /api/v1/costs/jobs` and `GET /api/v1/funds` (interfaces.md).
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use buildfund_jobs::books::costs::costs_report;
use buildfund_jobs::books::funds::funds_month;
use buildfund_jobs::books::job_costs::{month_jobs, JobsFilter};
use buildfund_jobs::bounds::{month_and_at, At, Limit, Refused};
use buildfund_jobs::calendar::Month;
use buildfund_jobs::config::{Config, OTHER_POOL};
use buildfund_jobs::report::focus::month_focus_csv;
use buildfund_jobs::sources::ingest::record::{is_jobset_name, is_project_name};

use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct MonthQuery {
    pub month: Option<String>,
    pub at: Option<String>,
}

/// The month and evaluation instant of a request, parsed into the domain's bounded types
/// ([`month_and_at`]) on the server's clock: `at` defaults to now, `month` to the month of
/// `at`; `at` may not be later than now (plus a minute) nor before 1970, `month` not after the
/// current one (422, naming the field; 400 for text that is no month or instant at all).
pub fn month_and_at_of(state: &AppState, q: &MonthQuery) -> Result<(Month, At), ApiError> {
    Ok(month_and_at(
        q.month.as_deref(),
        q.at.as_deref(),
        state.clock.now(),
    )?)
}

pub async fn get_costs(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    Ok(HttpResponse::Ok().json(costs_report(&state.db, &state.config, month, at).await?))
}

#[derive(Deserialize)]
pub struct JobsQuery {
    pub month: Option<String>,
    pub at: Option<String>,
    pub jobset: Option<String>,
    pub pool: Option<String>,
    pub limit: Option<String>,
}

/// The filters of `GET /api/v1/costs/jobs` and `buildfund costs --jobs`, each checked (the
/// message names the parameter): `jobset` a `PROJECT:JOBSET` in Hydra's names, `pool` a
/// configured pool (or `other`), `limit` from 1 to [`MAX_LIMIT`](buildfund_jobs::bounds::MAX_LIMIT) (default
/// [`DEFAULT_LIMIT`](buildfund_jobs::bounds::DEFAULT_LIMIT)).
pub fn jobs_filter(
    config: &Config,
    jobset: Option<&str>,
    pool: Option<&str>,
    limit: Option<&str>,
) -> Result<JobsFilter, String> {
    let shown = |s: &str| s.chars().take(100).collect::<String>();
    let jobset = match jobset {
        None => None,
        Some(j) => match j.split_once(':') {
            Some((p, s)) if is_project_name(p) && is_jobset_name(s) && j.len() <= 511 => {
                Some(j.to_string())
            }
            _ => {
                return Err(format!(
                    "jobset: {:?} is not PROJECT:JOBSET in Hydra's names",
                    shown(j)
                ))
            }
        },
    };
    let pool = match pool {
        None => None,
        Some(p) if p == OTHER_POOL || config.pool(p).is_some() => Some(p.to_string()),
        Some(p) => {
            let mut known: Vec<&str> = config.pools.iter().map(|p| p.slug.as_str()).collect();
            known.push(OTHER_POOL);
            return Err(format!(
                "pool: no pool {:?} (pools: {})",
                shown(p),
                known.join(", ")
            ));
        }
    };
    let limit = Limit::parse_or_default(limit).map_err(|e| Refused::from(e).to_string())?;
    Ok(JobsFilter {
        jobset,
        pool,
        limit: Some(limit),
    })
}

pub async fn get_cost_jobs(
    state: web::Data<AppState>,
    query: web::Query<JobsQuery>,
) -> Result<HttpResponse, ApiError> {
    // Every bad parameter of this route is a 422 naming it.
    let (month, at) = month_and_at(
        query.month.as_deref(),
        query.at.as_deref(),
        state.clock.now(),
    )
    .map_err(|e| ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, &e))?;
    Limit::parse_or_default(query.limit.as_deref())
        .map_err(|e| ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, &e.into()))?;
    let filter = jobs_filter(
        &state.config,
        query.jobset.as_deref(),
        query.pool.as_deref(),
        query.limit.as_deref(),
    )
    .map_err(ApiError::unprocessable)?;
    Ok(HttpResponse::Ok().json(month_jobs(&state.db, &state.config, month, at, &filter).await?))
}

/// The month's cost lines as a FOCUS 1.0 dataset (README, "FOCUS export"): CSV, one row per
/// line of `/costs` for the same `month` and `at`, checked the same way.
pub async fn get_costs_focus(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    let body = month_focus_csv(&state.db, &state.config, month, at).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"buildfund-focus-{month}.csv\""),
        ))
        .body(body))
}

pub async fn get_funds(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    let (figures, _) = funds_month(&state.db, &state.config, month, at.instant()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "month": month.to_string(),
        "currency": state.config.currency,
        "as_of": at.to_string(),
        "funds": figures,
    })))
}
