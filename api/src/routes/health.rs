//! Liveness, readiness and metrics.
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use buildfund_jobs::db;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The answer of `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The process is up.
#[utoipa::path(
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up.", body = Health)),
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The database answers and every migration is applied.
#[utoipa::path(
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready: the database does not answer or a migration is missing.", body = Readiness),
    ),
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = db::backend_name(&state.db);
    match db::readiness(&state.db).await {
        Ok(()) => HttpResponse::Ok().json(Readiness {
            status: "ready",
            database,
            error: None,
        }),
        Err(reason) => HttpResponse::ServiceUnavailable().json(Readiness {
            status: "unready",
            database,
            error: Some(reason),
        }),
    }
}

/// The HTTP metrics and the farm's gauges (see [`crate::gauges`]).
#[utoipa::path(
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus's text format.",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let gate = state.gate.current();
    let mut farm = state
        .gauges
        .families(&gate, &state.db, &state.jobs, state.clock.now())
        .await;
    farm.extend(crate::metrics::books_families(&state.flights));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(farm))
}
