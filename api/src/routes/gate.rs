//! The budget gate (interfaces.md, "Gate"): `GET /api/v1/gate/{project}/{jobset}` for
//! schedulers, the audit `GET /api/v1/gate/events`, and admin pause, override and lift.
use crate::auth::{Admin, Authed, Scheduler};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::ContentType;
use actix_web::http::{Method, StatusCode};
use actix_web::{get, post, web, FromRequest, HttpRequest, HttpResponse};
use buildfund_entity::gate_events::EventKind;
use buildfund_jobs::bounds::{At, Refused};
use buildfund_jobs::gate::{self, pool_slug, Decision, PoolGate, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::borrow::Cow;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GateQuery {
    /// Evaluate the gate exactly at this instant (RFC 3339, from 1970-01-01T00:00:00Z to now
    /// plus a minute) instead of answering the current snapshot.
    #[param(format = DateTime, example = "2026-10-31T12:00:00Z")]
    at: Option<String>,
}

fn instant(s: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    buildfund_jobs::calendar::parse_rfc3339(s)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// Without `at`: from the in-memory snapshot (no database access, `stale` when the last
/// refresh failed). With `at`: evaluated exactly at that instant.
#[utoipa::path(
    get,
    path = "/api/v1/gate/{project}/{jobset}",
    operation_id = "get_gate",
    tag = "gate",
    params(
        ("project" = String, Path, description = "The Hydra project."),
        ("jobset" = String, Path, description = "The Hydra jobset."),
        GateQuery,
    ),
    responses(
        (status = 200, description = "Whether the jobset may build now (`allow`), its pool's state and the figures it was decided from; `stale` when the last refresh failed.", body = Decision),
        (status = 400, description = "`at` is not an RFC 3339 instant.", body = ErrorBody),
        (status = 422, description = "`at` is out of bounds.", body = ErrorBody),
        (status = 503, description = "No figures yet (the database has not answered since start), or the database is unavailable or busy.", body = ErrorBody),
    ),
)]
pub async fn get_gate(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    // What `web::Path<(String, String)>` and `web::Query<GateQuery>` give, without their
    // deserialisers on the common request: segments without `%` are already what the path
    // decodes to, and no query string means no `at`. Anything else goes through the
    // extractors, errors and all.
    let (project, jobset) = match (
        req.match_info().get("project"),
        req.match_info().get("jobset"),
    ) {
        (Some(p), Some(j)) if !p.contains('%') && !j.contains('%') => {
            (Cow::Borrowed(p), Cow::Borrowed(j))
        }
        _ => {
            let (p, j) = web::Path::<(String, String)>::extract(&req)
                .await?
                .into_inner();
            (Cow::Owned(p), Cow::Owned(j))
        }
    };
    let at = if req.query_string().is_empty() {
        None
    } else {
        web::Query::<GateQuery>::extract(&req)
            .await?
            .into_inner()
            .at
    };
    match at {
        // Boxed: the evaluation's future is large, and the handler's future (moved into a box
        // by actix on every request) would be as large as its largest branch.
        Some(at) => {
            let key = format!("{project}:{jobset}");
            let pool = pool_slug(&state.config, &key);
            Ok(Box::pin(evaluated(&state, key, pool, &at)).await?)
        }
        None => Ok(from_snapshot(&state, &project, &jobset).await?),
    }
}

/// The answer [`get_gate`] gives `req` from the gate's snapshot, without the router, for a
/// request the router gives it (`route`, the request's pattern by [`super::pattern_of`], is
/// [`super::GATE`], and the method GET) that it answers from the snapshot as it stands: no
/// query, no `%` in the path (so the two segments are what the router decodes them to), and
/// a snapshot. `None` for any other request, which goes on to the router and the handler.
///
/// The server asks this before routing (`startup.rs`): the router would find the route by
/// its regular expression and the handler's segments by their names, which cost a scheduler's
/// request more than the rest of its answer from the snapshot (docs/src/benchmarks.md).
pub fn from_snapshot_unrouted(req: &ServiceRequest, route: Option<&str>) -> Option<HttpResponse> {
    if route != Some(super::GATE) || req.method() != Method::GET || !req.query_string().is_empty() {
        return None;
    }
    let path = req.path();
    if path.contains('%') {
        return None;
    }
    // The pattern has two non-empty segments after this prefix, and nothing else.
    let (project, jobset) = path.strip_prefix("/api/v1/gate/")?.split_once('/')?;
    let state = req.app_data::<web::Data<AppState>>()?;
    let body = state
        .gate
        .current()
        .answer_of(&state.config, project, jobset)?;
    Some(json_body(body))
}

/// The gate's answer, as serialised in the snapshot: `application/json`.
fn json_body(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// The gate's answer for `key` (`project:jobset`, in `pool`) evaluated exactly `at`.
async fn evaluated(
    state: &AppState,
    key: String,
    pool: &str,
    at: &str,
) -> Result<HttpResponse, ApiError> {
    let at = At::parse(at, state.clock.now()).map_err(Refused::from)?;
    let snapshot = gate::evaluate(&state.db, &state.config, at.instant()).await?;
    let g = snapshot.pools.get(pool).expect("every pool is evaluated");
    Ok(HttpResponse::Ok().json(Decision {
        jobset: key,
        gate: g,
        stale: false,
    }))
}

/// The gate's answer for `project:jobset` from the snapshot in memory.
async fn from_snapshot(
    state: &AppState,
    project: &str,
    jobset: &str,
) -> Result<HttpResponse, ApiError> {
    let mut current = state.gate.current();
    if current.snapshot.is_none() {
        // Before the first refresh finished (just after start): compute it now. The gate's
        // evaluation enters the instance's shared computations itself (`Gate::sharing`), so
        // this request needs no scope of its own (routes::may_compute_books). Boxed, as the
        // evaluation above.
        let _ = Box::pin(state.gate.refresh(&state.db)).await;
        current = state.gate.current();
    }
    // The answer was serialised with the snapshot; only the jobset is written here, once per
    // snapshot and jobset (`Current::answer_of`).
    let Some(body) = current.answer_of(&state.config, project, jobset) else {
        return Err(ApiError::Unavailable(
            "the gate has no figures yet (the database has not answered since start)".into(),
        ));
    };
    Ok(json_body(body))
}

/// One entry of the audit, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: i64,
    at: DateTime<Utc>,
    pool: String,
    kind: EventKind,
    from_state: Option<State>,
    to_state: Option<State>,
    actor: Option<String>,
    reason: String,
    until: Option<DateTime<Utc>>,
    details: Option<String>,
}

impl From<gate::Event> for EventView {
    fn from(e: gate::Event) -> Self {
        let gate::Event {
            id,
            at,
            pool,
            kind,
            from_state,
            to_state,
            actor,
            reason,
            until,
            details,
        } = e;
        EventView {
            id,
            at,
            pool,
            kind,
            from_state,
            to_state,
            actor,
            reason,
            until,
            details,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this pool's events.
    pool: Option<String>,
    /// At most this many, newest first (default 100; above 1000 counts as 1000, 0 as 1).
    #[param(minimum = 0, format = "uint64")]
    limit: Option<u64>,
}

/// The audit, newest first: state changes (`state`), admin actions (`pause`, `override`,
/// `lift`) and the outcome of outgoing actions (`webhook_failed`, `hydra_*`).
#[utoipa::path(
    operation_id = "list_gate_events",
    tag = "gate",
    security(("bearer" = ["scheduler"]), ("bearer" = ["admin"])),
    params(EventsQuery),
    responses(
        (status = 200, description = "The audit, newest first.", body = super::GateEvents),
        (status = 400, description = "`limit` is not a whole number.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[get("/gate/events")]
pub async fn events(
    state: web::Data<AppState>,
    _auth: Authed<Scheduler>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<EventView> = gate::events(&state.db, query.pool.as_deref(), limit)
        .await?
        .into_iter()
        .map(EventView::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": rows })))
}

/// An admin control: why, and for an override until when.
#[derive(Deserialize, ToSchema)]
pub struct ControlBody {
    reason: String,
    /// Required by an override (RFC 3339, in the future); ignored otherwise.
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// The admin controls, one request shape each.
#[derive(Clone, Copy)]
enum Action {
    Pause,
    Override,
    Lift,
}

/// One admin control: checks the request (an override needs a future `until`; the pool and
/// the reason are checked by the gate), applies it, runs the after-write policy and answers
/// the pool's new gate.
async fn control(
    state: &AppState,
    auth: &Authed<Admin>,
    pool: &str,
    body: &ControlBody,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let (db, config, actor, reason, now) = (
        &state.db,
        &state.config,
        auth.token.name.as_str(),
        body.reason.as_str(),
        state.clock.now(),
    );
    let done = match action {
        Action::Pause => gate::pause(db, config, pool, actor, reason, now).await,
        Action::Override => {
            let until = match &body.until {
                Some(u) => instant(u, "until").map_err(|e| {
                    ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                })?,
                None => {
                    return Err(ApiError::client(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "until is required: an override always expires",
                    ))
                }
            };
            gate::override_until(db, config, pool, actor, reason, until, now).await
        }
        Action::Lift => gate::lift(db, config, pool, actor, reason, now).await,
    };
    done?;
    match action {
        Action::Pause => tracing::info!(pool = %pool, actor = %actor, "pool paused"),
        Action::Override => tracing::info!(pool = %pool, actor = %actor, "pool overridden"),
        Action::Lift => tracing::info!(pool = %pool, actor = %actor, "pool controls lifted"),
    }
    state.after_write().await?;
    let current = state.gate.current();
    let g = current
        .snapshot
        .as_ref()
        .and_then(|s| s.pools.get(pool))
        .ok_or_else(|| ApiError::internal(format!("pool {pool} missing from the snapshot")))?;
    Ok(HttpResponse::Ok().json(g))
}

/// Pauses the pool: its jobsets may not build until lifted.
#[utoipa::path(
    operation_id = "pause_pool",
    tag = "gate",
    security(("bearer" = ["admin"])),
    params(("pool" = String, Path, description = "The pool's slug.")),
    request_body(content = ControlBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The pool's gate now.", body = PoolGate),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No such pool.", body = ErrorBody),
        (status = 422, description = "`reason` is refused.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/gate/pools/{pool}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Pause).await
}

/// Overrides the pool open until `until`, whatever its figures.
#[utoipa::path(
    operation_id = "override_pool",
    tag = "gate",
    security(("bearer" = ["admin"])),
    params(("pool" = String, Path, description = "The pool's slug.")),
    request_body(content = ControlBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The pool's gate now.", body = PoolGate),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No such pool.", body = ErrorBody),
        (status = 422, description = "`until` is missing, not an instant or not in the future, or `reason` is refused.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/gate/pools/{pool}/override")]
pub async fn override_pool(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Override).await
}

/// Lifts the pool's pause or override.
#[utoipa::path(
    operation_id = "lift_pool",
    tag = "gate",
    security(("bearer" = ["admin"])),
    params(("pool" = String, Path, description = "The pool's slug.")),
    request_body(content = ControlBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The pool's gate now.", body = PoolGate),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No such pool.", body = ErrorBody),
        (status = 409, description = "The pool has no pause or override to lift.", body = ErrorBody),
        (status = 422, description = "`reason` is refused.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
#[post("/gate/pools/{pool}/lift")]
pub async fn lift(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Lift).await
}
