//! What more money would build: `GET /api/v1/plans[?at=RFC3339]` (interfaces.md).
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use buildfund_jobs::books::plans::plans_report;
use buildfund_jobs::books::plans::PlansReport;
use buildfund_jobs::bounds::{At, Refused};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant, RFC 3339, from 1970-01-01T00:00:00Z to now plus a minute (default: now).
    /// Text that is no RFC 3339 instant is refused with 400, an instant out of that range
    /// with 422.
    #[param(format = DateTime, example = "2026-10-31T12:00:00Z")]
    pub at: Option<String>,
}

/// Every fund (config order) with its recent income and burn and its plans in order: cover,
/// funded, runway if adopted, as of `at` (default now; bounded like every `at`).
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    operation_id = "get_plans",
    tag = "figures",
    params(AtQuery),
    responses(
        (status = 200, description = "Every fund's plans as of `at`.", body = PlansReport),
        (status = 400, description = "`at` is not an RFC 3339 instant.", body = ErrorBody),
        (status = 422, description = "`at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub async fn get_plans(
    state: web::Data<AppState>,
    query: web::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let at = At::parse_or_now(query.at.as_deref(), state.clock.now()).map_err(Refused::from)?;
    Ok(HttpResponse::Ok().json(plans_report(&state.db, &state.config, at).await?))
}
