//! Liveness, readiness and metrics.
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use buildfund_jobs::db;
use serde_json::json;

/// The process is up.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers and every migration is applied.
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let backend = db::backend_name(&state.db);
    match db::readiness(&state.db).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "database": backend})),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unready", "database": backend, "error": reason})),
    }
}

/// The HTTP metrics and the farm's gauges (see [`crate::gauges`]).
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
