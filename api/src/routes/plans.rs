//! What more money would build: `GET /api/v1/plans[?at=RFC3339]` (interfaces.md).
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use buildfund_jobs::books::plans::plans_report;
use buildfund_jobs::bounds::{At, Refused};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct AtQuery {
    pub at: Option<String>,
}

/// Every fund (config order) with its recent income and burn and its plans in order: cover,
/// funded, runway if adopted, as of `at` (default now; bounded like every `at`).
pub async fn get_plans(
    state: web::Data<AppState>,
    query: web::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let at = At::parse_or_now(query.at.as_deref(), state.clock.now()).map_err(Refused::from)?;
    Ok(HttpResponse::Ok().json(plans_report(&state.db, &state.config, at).await?))
}
