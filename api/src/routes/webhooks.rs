//! `POST /webhooks/opencollective/{token}`: OpenCollective's webhook, a hint that the ledger
//! changed. The payload is unsigned, so it is read (at most
//! [`MAX_BODY_BYTES`](buildfund_jobs::sources::opencollective_webhook::MAX_BODY_BYTES)) and
//! dropped; a call with the right token only asks for an incremental sync
//! ([`buildfund_jobs::sources::opencollective_webhook`]) and is answered 202 at once. Any other
//! token, or no webhook configured, is answered like a path that does not exist, with no work.
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use buildfund_jobs::sources::opencollective_webhook::MAX_BODY_BYTES;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

#[utoipa::path(
    operation_id = "opencollective_webhook",
    tag = "operations",
    params(("token" = String, Path, description = "The webhook's secret token (`opencollective.webhook_token_env`).")),
    request_body(description = "OpenCollective's event; read and dropped.", content = Object, content_type = "application/json"),
    responses(
        (status = 202, description = "An incremental sync is scheduled.", body = WebhookAccepted),
        (status = 400, description = "The body broke off.", body = ErrorBody),
        (status = 404, description = "No webhook with this token (the answer of a path that does not exist).", body = ErrorBody),
        (status = 413, description = "The body is larger than the webhook's limit.", body = ErrorBody),
    ),
)]
#[post("/webhooks/opencollective/{token}")]
pub async fn opencollective(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let trigger = match &state.opencollective_webhook {
        Some((expected, trigger)) if expected.matches(&token) => trigger,
        // The same answer as an unknown path, which it is to anyone without the token.
        _ => {
            return Err(ApiError::not_found(format!(
                "no route for {} /webhooks/opencollective/…",
                req.method()
            )))
        }
    };
    let mut read = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        read += chunk.len();
        if read > MAX_BODY_BYTES {
            return Err(ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a webhook body is at most {MAX_BODY_BYTES} bytes"),
            ));
        }
    }
    trigger.request();
    Ok(HttpResponse::Accepted().json(WebhookAccepted {
        status: "accepted",
        sync: "scheduled",
    }))
}

/// The answer to a webhook call with the right token.
#[derive(Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// `accepted`.
    pub status: &'static str,
    /// `scheduled`.
    pub sync: &'static str,
}
