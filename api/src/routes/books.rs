//! Public figures: `GET /api/v1/costs`, its FOCUS 1.0 export `GET /api/v1/costs/focus`,
//! `GET /api/v1/costs/jobs` and `GET /api/v1/funds` (interfaces.md).
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use buildfund_jobs::books::costs::costs_report;
use buildfund_jobs::books::funds::funds_month;
use buildfund_jobs::books::job_costs::{month_jobs, JobsFilter, DEFAULT_LIMIT, MAX_LIMIT};
use buildfund_jobs::calendar::{parse_rfc3339, rfc3339, Month};
use buildfund_jobs::config::{Config, OTHER_POOL};
use buildfund_jobs::report::focus::month_focus_csv;
use buildfund_jobs::sources::ingest::record::{is_jobset_name, is_project_name};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct MonthQuery {
    pub month: Option<String>,
    pub at: Option<String>,
}

/// How far ahead of the server's clock an `at` may be (clock skew between callers).
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Refuses (422, naming `at`) an instant later than now plus [`CLOCK_SKEW_SECONDS`]: the
/// books of the future are not known, and evaluating them would walk months that are not.
pub fn not_in_future(at: DateTime<Utc>) -> Result<(), ApiError> {
    let limit = Utc::now() + chrono::Duration::seconds(CLOCK_SKEW_SECONDS);
    if at > limit {
        return Err(ApiError::unprocessable(format!(
            "at: {} is later than now",
            rfc3339(at)
        )));
    }
    Ok(())
}

/// The month and evaluation instant of a request: `at` defaults to now, `month` to the month
/// of `at`. `at` may not be later than now (plus a minute), nor `month` after the current one
/// (422, naming the field).
pub fn month_and_instant(q: &MonthQuery) -> Result<(Month, DateTime<Utc>), ApiError> {
    let at = match &q.at {
        None => Utc::now(),
        Some(s) => parse_rfc3339(s).map_err(|e| ApiError::bad_request(format!("at: {e}")))?,
    };
    not_in_future(at)?;
    let month = match &q.month {
        None => Month::of(at),
        Some(s) => Month::parse(s).map_err(|e| ApiError::bad_request(format!("month: {e}")))?,
    };
    let current = Month::of(Utc::now() + chrono::Duration::seconds(CLOCK_SKEW_SECONDS));
    if month > current {
        return Err(ApiError::unprocessable(format!(
            "month: {month} is after the current month {current}"
        )));
    }
    Ok((month, at))
}

#[get("/costs")]
pub async fn get_costs(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_instant(&query)?;
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
/// configured pool (or `other`), `limit` from 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
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
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(format!(
                    "limit: {:?} is not a whole number from 1 to {MAX_LIMIT}",
                    shown(l)
                ))
            }
        },
    };
    Ok(JobsFilter {
        jobset,
        pool,
        limit: Some(limit),
    })
}

#[get("/costs/jobs")]
pub async fn get_cost_jobs(
    state: web::Data<AppState>,
    query: web::Query<JobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_instant(&MonthQuery {
        month: query.month.clone(),
        at: query.at.clone(),
    })
    .map_err(|e| match e {
        // Every bad parameter of this route is a 422 naming it.
        ApiError::Client { message, .. } => ApiError::unprocessable(message),
        e => e,
    })?;
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
#[get("/costs/focus")]
pub async fn get_costs_focus(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_instant(&query)?;
    let body = month_focus_csv(&state.db, &state.config, month, at).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"buildfund-focus-{month}.csv\""),
        ))
        .body(body))
}

#[get("/funds")]
pub async fn get_funds(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_instant(&query)?;
    let (figures, _) = funds_month(&state.db, &state.config, month, at).await?;
    Ok(HttpResponse::Ok().json(json!({
        "month": month.to_string(),
        "currency": state.config.currency,
        "as_of": rfc3339(at),
        "funds": figures,
    })))
}
