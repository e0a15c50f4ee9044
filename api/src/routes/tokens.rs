//! Admin management of API tokens. Secrets are shown once, at creation; listings show only a
//! short prefix.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use buildfund_entity::api_tokens;
use buildfund_jobs::api_tokens::{self as tokens, Scope};
use serde::Deserialize;
use serde_json::json;

fn public(t: &api_tokens::Model) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "scope": t.scope,
        "prefix": t.token_prefix,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
    })
}

#[get("/tokens")]
pub async fn list(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
) -> Result<HttpResponse, ApiError> {
    let rows = tokens::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({"tokens": rows.iter().map(public).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    scope: String,
    name: Option<String>,
}

#[post("/tokens")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let scope: Scope = body.scope.parse().map_err(|e: String| {
        ApiError::with_details(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid token request",
            vec![json!({"field": "scope", "message": e})],
        )
    })?;
    let name = body
        .name
        .clone()
        .unwrap_or_else(|| format!("{scope} token"));
    let (secret, row) = tokens::create(&state.db, scope, &name, state.clock.now()).await?;
    tracing::info!(token.name = %row.name, token.scope = %scope, by = %auth.token.name, "token created");
    let mut out = public(&row);
    out["token"] = json!(secret);
    Ok(HttpResponse::Created().json(out))
}

#[delete("/tokens/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: Authed<Admin>,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if tokens::revoke(&state.db, id, state.clock.now()).await? {
        tracing::info!(token.id = id, by = %auth.token.name, "token revoked");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no active token with id {id}")))
    }
}
