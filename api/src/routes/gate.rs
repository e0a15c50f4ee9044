//! The budget gate (interfaces.md, "Gate"): `GET /api/v1/gate/{project}/{jobset}` for
//! schedulers, the audit `GET /api/v1/gate/events`, and admin pause, override and lift.
use crate::auth::{Admin, Authed, Scheduler};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use buildfund_entity::gate_events::EventKind;
use buildfund_jobs::bounds::{At, Refused};
use buildfund_jobs::gate::{self, pool_slug, Decision, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
pub struct GateQuery {
    at: Option<String>,
}

fn instant(s: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    buildfund_jobs::calendar::parse_rfc3339(s)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// Without `at`: from the in-memory snapshot (no database access, `stale` when the last
/// refresh failed). With `at`: evaluated exactly at that instant.
pub async fn get_gate(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<GateQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, jobset) = path.into_inner();
    let key = format!("{project}:{jobset}");
    let pool = pool_slug(&state.config, &key);
    if let Some(at) = &query.at {
        let at = At::parse(at, state.clock.now()).map_err(Refused::from)?;
        let snapshot = gate::evaluate(&state.db, &state.config, at.instant()).await?;
        let g = snapshot.pools.get(pool).expect("every pool is evaluated");
        return Ok(HttpResponse::Ok().json(Decision {
            jobset: key,
            gate: g,
            stale: false,
        }));
    }
    let mut current = state.gate.current();
    if current.snapshot.is_none() {
        // Before the first refresh finished (just after start): compute it now.
        let _ = state.gate.refresh(&state.db).await;
        current = state.gate.current();
    }
    // The answer was serialised with the snapshot; only the jobset is written here.
    let Some(body) = current.answer(&key, pool) else {
        return Err(ApiError::Unavailable(
            "the gate has no figures yet (the database has not answered since start)".into(),
        ));
    };
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// One entry of the audit, as the API shows it.
#[derive(Serialize)]
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

#[derive(Deserialize)]
pub struct EventsQuery {
    pool: Option<String>,
    limit: Option<u64>,
}

/// The audit, newest first: state changes (`state`), admin actions (`pause`, `override`,
/// `lift`) and the outcome of outgoing actions (`webhook_failed`, `hydra_*`).
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

#[derive(Deserialize)]
pub struct ControlBody {
    reason: String,
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

#[post("/gate/pools/{pool}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Pause).await
}

#[post("/gate/pools/{pool}/override")]
pub async fn override_pool(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Override).await
}

#[post("/gate/pools/{pool}/lift")]
pub async fn lift(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    pool: web::Path<String>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &auth, &pool, &body, Action::Lift).await
}
