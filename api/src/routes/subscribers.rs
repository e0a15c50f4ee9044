//! Admin management of report subscribers: `GET/POST /api/v1/subscribers`,
//! `DELETE /api/v1/subscribers/{email}`.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpResponse};
use buildfund_entity::subscribers;
use buildfund_jobs::email::outbox::{self, Delivery};
use buildfund_jobs::email::subscriptions::{self, SubscriberEmail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// A subscriber as the admin API shows it.
#[derive(Serialize, ToSchema)]
pub struct SubscriberResponse {
    id: i64,
    email: String,
    /// `pending`, `confirmed` or `unsubscribed`.
    #[schema(value_type = String)]
    status: &'static str,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    unsubscribed_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<subscribers::Model> for SubscriberResponse {
    fn from(s: subscribers::Model) -> Self {
        SubscriberResponse {
            id: s.id,
            email: s.email,
            status: s.status.as_str(),
            created_at: s.created_at,
            confirmed_at: s.confirmed_at,
            unsubscribed_at: s.unsubscribed_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubscriberList {
    subscribers: Vec<SubscriberResponse>,
}

/// The answer to an added address.
#[derive(Serialize, ToSchema)]
pub struct AddedResponse {
    subscriber: SubscriberResponse,
    created: bool,
    confirmation_queued: bool,
    confirmation_sent: bool,
    confirmation_error: Option<String>,
}

/// Every subscriber of the monthly report.
#[utoipa::path(
    operation_id = "list_subscribers",
    tag = "admin",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Every subscriber.", body = SubscriberList),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[get("/subscribers")]
pub async fn list(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
) -> Result<HttpResponse, ApiError> {
    let rows = subscriptions::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(SubscriberList {
        subscribers: rows.into_iter().map(SubscriberResponse::from).collect(),
    }))
}

/// An address to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriber {
    email: String,
    #[serde(default)]
    confirmed: bool,
}

/// Adds an address: `confirmed: true` subscribes it at once; otherwise it is pending and a
/// confirmation email is queued with it (at most one per 10 minutes) and tried at once:
/// `confirmation_queued`, and `confirmation_sent` when the relay took it (otherwise the outbox
/// retries it, `confirmation_error` says why it is not sent yet). 201 when created, 200 when it
/// existed.
#[utoipa::path(
    operation_id = "add_subscriber",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body(content = NewSubscriber, content_type = "application/json"),
    responses(
        (status = 201, description = "Added.", body = AddedResponse),
        (status = 200, description = "The address was there already.", body = AddedResponse),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 422, description = "`email` is not an address the report can go to.", body = ErrorBody),
        (status = 500, description = "The confirmation could not be made (the signing key); the cause is in the server log.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/subscribers")]
pub async fn create(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
    body: web::Json<NewSubscriber>,
) -> Result<HttpResponse, ApiError> {
    let email = SubscriberEmail::parse(&body.email).map_err(|problem| {
        ApiError::with_details(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("email: {problem}"),
            vec![json!({"field": "email", "message": problem})],
        )
    })?;
    let now = state.clock.now();
    let added = subscriptions::add(&state.db, &email, body.confirmed, now).await?;
    let mut confirmation_sent = false;
    let mut confirmation_error: Option<String> = None;
    if let (Some(id), Some(mailer)) = (added.confirmation, &state.mailer) {
        let key = super::subscriptions::email_key(&state).await?;
        match outbox::deliver_now(&state.db, &state.config, mailer, &key, id, &state.clock).await? {
            Delivery::Sent => confirmation_sent = true,
            Delivery::Retry { error, .. } => confirmation_error = Some(error),
            Delivery::Failed(e) | Delivery::GaveUp(e) => confirmation_error = Some(e),
            Delivery::Skipped | Delivery::NotDue => {}
        }
    }
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(AddedResponse {
        subscriber: added.subscriber.into(),
        created: added.created,
        confirmation_queued: added.confirmation.is_some(),
        confirmation_sent,
        confirmation_error,
    }))
}

/// Removes a subscriber and everything kept of them.
#[utoipa::path(
    operation_id = "remove_subscriber",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("email" = String, Path, description = "The subscriber's address.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No such subscriber.", body = ErrorBody),
        (status = 422, description = "`email` is not an email address.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[delete("/subscribers/{email}")]
pub async fn remove(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let email = SubscriberEmail::parse(&path)
        .map_err(|p| ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, format!("email: {p}")))?;
    if subscriptions::remove(&state.db, &email).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no subscriber {email}")))
    }
}
