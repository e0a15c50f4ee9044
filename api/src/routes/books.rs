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

use crate::openapi::ErrorBody;
use buildfund_jobs::books::costs::CostsReport;
use buildfund_jobs::books::funds::FundMonth;
use buildfund_jobs::books::job_costs::JobsReport;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The month and instant of a public figure (docs/src/http-api.md, "Bounds").
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// The month, `YYYY-MM`, from 1970-01 to the current month (default: the month of `at`).
    /// Text that is no month is refused with 400, a month out of that range with 422.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2026-10")]
    pub month: Option<String>,
    /// The instant the figures are computed as of, RFC 3339, from 1970-01-01T00:00:00Z to now
    /// plus a minute (default: now). Text that is no RFC 3339 instant is refused with 400, an
    /// instant out of that range with 422.
    #[param(format = DateTime, example = "2026-10-31T12:00:00Z")]
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

/// The month's cost lines: every machine-hour attributed to jobsets, pools and funds.
#[utoipa::path(
    get,
    path = "/api/v1/costs",
    operation_id = "get_costs",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "The month's cost lines as of `at`.", body = CostsReport),
        (status = 400, description = "`month` or `at` is not a month or an instant (or a parameter is repeated).", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub async fn get_costs(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    Ok(HttpResponse::Ok().json(costs_report(&state.db, &state.config, month, at).await?))
}

/// The month, instant and filters of `GET /api/v1/costs/jobs`: every refused value is a 422.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// The month, `YYYY-MM`, from 1970-01 to the current month (default: the month of `at`).
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2026-10")]
    pub month: Option<String>,
    /// The instant, RFC 3339, from 1970-01-01T00:00:00Z to now plus a minute (default: now).
    #[param(format = DateTime, example = "2026-10-31T12:00:00Z")]
    pub at: Option<String>,
    /// Only this jobset, `PROJECT:JOBSET` in Hydra's names.
    #[param(example = "nixpkgs:cuda", max_length = 511)]
    pub jobset: Option<String>,
    /// Only this pool: a configured pool's slug or `other`.
    pub pool: Option<String>,
    /// At most this many jobs, the most expensive first (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
}

/// The answer of `GET /api/v1/funds`: every fund's figures of the month.
#[derive(Serialize, ToSchema)]
pub struct FundsAnswer {
    pub month: String,
    pub currency: String,
    pub as_of: String,
    pub funds: Vec<FundMonth>,
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

/// The month's jobs by cost.
#[utoipa::path(
    get,
    path = "/api/v1/costs/jobs",
    operation_id = "get_cost_jobs",
    tag = "figures",
    params(JobsQuery),
    responses(
        (status = 200, description = "The month's jobs, the most expensive first.", body = JobsReport),
        (status = 400, description = "A parameter is repeated.", body = ErrorBody),
        (status = 422, description = "A parameter is refused (the message names it).", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy.", body = ErrorBody),
    ),
)]
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

/// The month's cost lines as a FOCUS 1.0 dataset (docs/src/http-api.md, "FOCUS export"): CSV, one row per
/// line of `/costs` for the same `month` and `at`, checked the same way.
#[utoipa::path(
    get,
    path = "/api/v1/costs/focus",
    operation_id = "get_costs_focus",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "The month's cost lines as a FOCUS 1.0 dataset.", content_type = "text/csv; charset=utf-8", body = String),
        (status = 400, description = "`month` or `at` is not a month or an instant.", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy.", body = ErrorBody),
    ),
)]
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

/// Every fund's donations, spending, balance and runway for the month.
#[utoipa::path(
    get,
    path = "/api/v1/funds",
    operation_id = "get_funds",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "Every fund's figures of the month as of `at`.", body = FundsAnswer),
        (status = 400, description = "`month` or `at` is not a month or an instant.", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy.", body = ErrorBody),
    ),
)]
pub async fn get_funds(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    let (figures, _) = funds_month(&state.db, &state.config, month, at.instant()).await?;
    Ok(HttpResponse::Ok().json(FundsAnswer {
        month: month.to_string(),
        currency: state.config.currency.clone(),
        as_of: at.to_string(),
        funds: figures,
    }))
}
