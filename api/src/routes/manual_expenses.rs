//! `POST /api/v1/expenses` (admin): a manual expense, paid outside OpenCollective, with an
//! idempotency key: 201 when stored, 200 with the same answer for a replay, 409 when the key
//! was used for another expense, 422 naming each invalid field
//! ([`buildfund_jobs::books::expenses::manual`]). (`GET /api/v1/expenses`, the month's list,
//! is the books' own route.)
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpResponse};
use buildfund_jobs::books::expenses::manual::{self, ManualExpense, ManualOutcome};
use buildfund_jobs::books::expenses::{ExpenseError, ExpenseRecord};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A stored manual expense as the API answers it.
#[derive(Serialize, ToSchema)]
pub struct ExpenseAnswer {
    pub source: String,
    pub id: String,
    pub kind: &'static str,
    pub paid_at: String,
    pub incurred_at: String,
    pub account: String,
    pub payee: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub fees_cents: i64,
    pub total_cents: i64,
    pub original_amount: String,
    pub original_currency: String,
}

impl From<&ExpenseRecord> for ExpenseAnswer {
    fn from(r: &ExpenseRecord) -> Self {
        ExpenseAnswer {
            source: r.source.clone(),
            id: r.external_id.clone(),
            kind: r.kind.as_str(),
            paid_at: buildfund_jobs::calendar::rfc3339(r.paid_at),
            incurred_at: buildfund_jobs::calendar::rfc3339(r.incurred_at),
            account: r.account_slug.clone(),
            payee: r.payee.clone(),
            tags: r.tags.clone(),
            description: r.description.clone(),
            amount_cents: r.amount_cents,
            fees_cents: r.fees_cents,
            total_cents: r.total_cents(),
            original_amount: r.original_amount.clone(),
            original_currency: r.original_currency.clone(),
        }
    }
}

fn internal(e: ExpenseError) -> ApiError {
    match e {
        ExpenseError::Db(e) => e.into(),
        other => ApiError::internal_while(other, "recording a manual expense"),
    }
}

/// Records an expense paid outside OpenCollective, once per idempotency key.
#[utoipa::path(
    operation_id = "create_expense",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body(content = ManualExpense, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored.", body = ExpenseAnswer),
        (status = 200, description = "A replay of a stored expense (same key, same expense): stored once.", body = ExpenseAnswer),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for another expense.", body = ErrorBody),
        (status = 422, description = "A field is refused; `details` names each.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/expenses")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    body: web::Json<ManualExpense>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let record = body.validate(&state.config, now).map_err(|errors| {
        ApiError::with_details(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid expense",
            errors.iter().map(|e| json!(e)).collect(),
        )
    })?;
    match manual::store_manual(&state.db, &record, now)
        .await
        .map_err(internal)?
    {
        ManualOutcome::Created(r) => {
            // The fund's costs moved (the gate weighs them); a failed refresh leaves it stale.
            let _ = state.after_write().await;
            tracing::info!(key = %r.external_id, by = %auth.token.name, "manual expense stored");
            Ok(HttpResponse::Created().json(ExpenseAnswer::from(&r)))
        }
        ManualOutcome::Replayed(r) => Ok(HttpResponse::Ok().json(ExpenseAnswer::from(&r))),
        ManualOutcome::Conflict(_) => Err(ApiError::client(
            StatusCode::CONFLICT,
            format!(
                "idempotency_key {:?} was already used for a different expense",
                record.external_id
            ),
        )),
    }
}
