//! `POST /api/v1/build-steps` (scope `ingest`): NDJSON, a JSON array or CSV, streamed into the
//! same ingest the CLI uses. The body is never held whole: it flows through a small bounded
//! channel to the parser while validated records are written.
use crate::auth::{Authed, Ingest};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{post, web, HttpRequest, HttpResponse};
use buildfund_jobs::sources::ingest::IngestReport;
use buildfund_jobs::sources::ingest::{self, Format, IngestError, TooLargeError};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Uploads build steps (docs/src/http-api.md, "Build steps"): NDJSON, a JSON array or CSV, one step a
/// record. The batch is stored whole or not at all; a resent step is recognised and counted
/// unchanged.
#[utoipa::path(
    operation_id = "ingest_build_steps",
    tag = "ingest",
    security(("bearer" = ["ingest"]), ("bearer" = ["admin"])),
    request_body(
        description = "Build step records, one per line (NDJSON), as a JSON array, or as CSV with a header line.",
        content(
            (String = "application/x-ndjson"),
            (Vec<Object> = "application/json"),
            (String = "text/csv"),
        ),
    ),
    responses(
        (status = 200, description = "The batch is stored.", body = IngestReport),
        (status = 400, description = "The body cannot be read as the content type says.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 408, description = "The body stopped sending for `server.body_idle_timeout_seconds`; nothing was stored.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_ingest_bytes`.", body = ErrorBody),
        (status = 415, description = "The content type is none of the three.", body = ErrorBody),
        (status = 422, description = "Records are refused; `details` lists each problem (line, record, field, message) and nothing was stored.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/build-steps")]
pub async fn ingest_build_steps(
    state: web::Data<AppState>,
    auth: Authed<Ingest>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {content_type:?}; send application/x-ndjson, application/json or text/csv"
            ),
        )
    })?;
    let limit = state.config.server.max_ingest_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }

    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let idle = Duration::from_secs(state.config.server.body_idle_timeout_seconds);
    let timed_out = Arc::new(AtomicBool::new(false));
    let stalled = timed_out.clone();
    let feed = async move {
        let mut received = 0usize;
        loop {
            // A body that stops sending is given up after the idle timeout: its records are
            // never stored, and what the upload holds (a parser, a transaction) is let go.
            let chunk = match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return,
                Err(_) => {
                    stalled.store(true, Ordering::SeqCst);
                    let _ = tx
                        .send(Err(std::io::Error::other(format!(
                            "the request body sent nothing for {} s",
                            idle.as_secs()
                        ))))
                        .await;
                    return;
                }
            };
            let item = match chunk {
                Ok(bytes) => {
                    received += bytes.len();
                    if received > limit {
                        let _ = tx
                            .send(Err(std::io::Error::other(TooLargeError(limit))))
                            .await;
                        return;
                    }
                    Ok(bytes)
                }
                Err(e) => Err(std::io::Error::other(format!(
                    "the request body broke off: {e}"
                ))),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    };
    let work = ingest::ingest(
        &state.db,
        state.config.clone(),
        format,
        ingest::channel_reader(rx),
        state.clock.now(),
        None,
    );
    let ((), result) = tokio::join!(feed, work);
    if timed_out.load(Ordering::SeqCst) {
        return Err(ApiError::client(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body sent nothing for {} s (server.body_idle_timeout_seconds); nothing was stored",
                idle.as_secs()
            ),
        ));
    }
    match result {
        Ok(report) => {
            tracing::info!(
                token = %auth.token.name,
                records = report.records,
                inserted = report.inserted,
                updated = report.updated,
                unchanged = report.unchanged,
                unpriced = report.unpriced_machines.len(),
                "build steps ingested"
            );
            // The gate's figures move with every ingest; a failed refresh leaves it stale.
            let _ = state.after_write().await;
            Ok(HttpResponse::Ok().json(report))
        }
        Err(e) => Err(e.into()),
    }
}

fn too_large(limit: usize) -> ApiError {
    IngestError::TooLarge { limit }.into()
}
