//! Public figures: `GET /api/v1/costs`, its FOCUS 1.0 export `GET /api/v1/costs/focus` and
//! `GET /api/v1/funds` (interfaces.md).
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use buildfund_jobs::books::costs::costs_report;
use buildfund_jobs::books::funds::funds_month;
use buildfund_jobs::calendar::{parse_rfc3339, rfc3339, Month};
use buildfund_jobs::report::focus::month_focus_csv;
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
        return Err(ApiError::client(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("at: {} is later than now", rfc3339(at)),
        ));
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
        return Err(ApiError::client(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("month: {month} is after the current month {current}"),
        ));
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
