//! Donations: `GET /api/v1/donations?month=` (public: what OpenCollective shows publicly, an
//! anonymous contributor as "Anonymous") and `POST /api/v1/donations` (admin: a manual donation
//! with an idempotency key).
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::routes::books::{month_and_at_of, MonthQuery};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpResponse};
use buildfund_jobs::books::donations::PublicDonation;
use buildfund_jobs::books::donations::{self, ManualDonation, ManualOutcome};
use buildfund_jobs::books::BooksError;
use buildfund_jobs::money::add_cents;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The month's donations as OpenCollective shows them publicly (an anonymous contributor as
/// "Anonymous"), with their sums.
#[utoipa::path(
    get,
    path = "/api/v1/donations",
    operation_id = "list_donations",
    tag = "figures",
    params(MonthQuery),
    responses(
        (status = 200, description = "The month's donations.", body = DonationsAnswer),
        (status = 400, description = "`month` or `at` is not a month or an instant.", body = ErrorBody),
        (status = 422, description = "`month` or `at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<MonthQuery>,
) -> Result<HttpResponse, ApiError> {
    let (month, _) = month_and_at_of(&state, &query)?;
    let items = donations::month_records(&state.db, &state.config, month).await?;
    let total = |field: fn(&donations::PublicDonation) -> i64| {
        items
            .iter()
            .try_fold(0i64, |sum, d| add_cents(sum, field(d)))
            .map_err(BooksError::from)
    };
    Ok(HttpResponse::Ok().json(DonationsAnswer {
        month: month.to_string(),
        currency: state.config.currency.clone(),
        gross_cents: total(|d| d.gross_cents)?,
        fees_cents: total(|d| d.fees_cents)?,
        net_cents: total(|d| d.net_cents)?,
        donations: items,
    }))
}

/// The answer of `GET /api/v1/donations`.
#[derive(Serialize, ToSchema)]
pub struct DonationsAnswer {
    pub month: String,
    pub currency: String,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub donations: Vec<PublicDonation>,
}

/// Records a donation that did not pass through OpenCollective, once per idempotency key.
#[utoipa::path(
    operation_id = "create_donation",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body(content = ManualDonation, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored.", body = PublicDonation),
        (status = 200, description = "A replay of a stored donation (same key, same donation): stored once.", body = PublicDonation),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope is not admin.", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for another donation.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is refused; `details` names each.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/donations")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    body: web::Json<ManualDonation>,
) -> Result<HttpResponse, ApiError> {
    let record = body.validate(&state.config).map_err(|errors| {
        ApiError::with_details(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid donation",
            errors.iter().map(|e| json!(e)).collect(),
        )
    })?;
    match donations::store_manual(&state.db, &state.config, &record, state.clock.now()).await? {
        ManualOutcome::Created(m) => {
            // The fund's balance moved (the gate weighs it); a failed refresh leaves it stale.
            let _ = state.after_write().await;
            tracing::info!(key = %m.id, by = %auth.token.name, "manual donation stored");
            Ok(HttpResponse::Created().json(m))
        }
        ManualOutcome::Replayed(m) => Ok(HttpResponse::Ok().json(m)),
        ManualOutcome::Conflict(_) => Err(ApiError::client(
            StatusCode::CONFLICT,
            format!(
                "idempotency_key {:?} was already used for a different donation",
                record.external_id
            ),
        )),
    }
}
