//! What more money would build: `GET /api/v1/plans[?at=RFC3339]` (interfaces.md).
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use buildfund_jobs::books::plans::plans_report;
use buildfund_jobs::calendar::parse_rfc3339;
use chrono::Utc;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct AtQuery {
    pub at: Option<String>,
}

/// Every fund (config order) with its recent income and burn and its plans in order: cover,
/// funded, runway if adopted, as of `at` (default now).
#[get("/plans")]
pub async fn get_plans(
    state: web::Data<AppState>,
    query: web::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let at = match &query.at {
        None => Utc::now(),
        Some(s) => parse_rfc3339(s).map_err(|e| ApiError::bad_request(format!("at: {e}")))?,
    };
    Ok(HttpResponse::Ok().json(plans_report(&state.db, &state.config, at).await?))
}
