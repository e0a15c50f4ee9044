//! `GET /api/v1/reconciliation` and `GET /api/v1/expenses` (public, interfaces.md): the month's
//! machines against their invoices, the other expenses and cash; and every expense record of
//! the month, classified. `month` and `at` are checked as `/api/v1/costs` checks them.
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::routes::books::{month_and_at_of, MonthQuery};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use buildfund_jobs::books::reconciliation::{expenses_of_month, reconciliation};
use buildfund_jobs::books::reconciliation::{ExpensesMonth, Reconciliation};
use buildfund_jobs::calendar::Period;

/// The month's machines against their invoices, the other expenses and cash.
/// Registered from [`super::PUBLIC_FIGURES`].
#[utoipa::path(
    get,
    path = "/api/v1/reconciliation",
    operation_id = "get_reconciliation",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "The month's reconciliation as of `at`.", body = Reconciliation),
        (status = 400, description = "`month` or `at` is not a month or an instant.", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub async fn get_reconciliation(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    let period = Period::new(month, at.instant(), state.config.ledger_start);
    let r = reconciliation(&state.db, &state.config, &period).await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Every expense record paid in the month, classified.
/// Registered from [`super::PUBLIC_FIGURES`] (a `POST` of the path goes on to
/// `manual_expenses`).
#[utoipa::path(
    get,
    path = "/api/v1/expenses",
    operation_id = "get_expenses",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "The month's expenses as of `at`.", body = ExpensesMonth),
        (status = 400, description = "`month` or `at` is not a month or an instant.", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub async fn get_expenses(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, at) = month_and_at_of(&state, &query)?;
    let period = Period::new(month, at.instant(), state.config.ledger_start);
    let e = expenses_of_month(&state.db, &state.config, &period).await?;
    Ok(HttpResponse::Ok().json(e))
}
