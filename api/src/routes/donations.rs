//! Donations: `GET /api/v1/donations?month=` (public: what OpenCollective shows publicly, an
//! anonymous contributor as "Anonymous") and `POST /api/v1/donations` (admin: a manual donation
//! with an idempotency key).
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::routes::books::{month_and_at_of, MonthQuery};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpResponse};
use buildfund_jobs::books::donations::{self, ManualDonation, ManualOutcome};
use buildfund_jobs::books::BooksError;
use buildfund_jobs::money::add_cents;
use serde_json::json;

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
    Ok(HttpResponse::Ok().json(json!({
        "month": month.to_string(),
        "currency": state.config.currency,
        "gross_cents": total(|d| d.gross_cents)?,
        "fees_cents": total(|d| d.fees_cents)?,
        "net_cents": total(|d| d.net_cents)?,
        "donations": items,
    })))
}

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
