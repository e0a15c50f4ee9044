//! Admin management of API tokens. Secrets are shown once, at creation; listings show only a
//! short prefix.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use buildfund_jobs::api_tokens::{self as tokens, Scope, Token, TokenError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A token as the API shows it: never its secret (only at creation, in `token`).
#[derive(Serialize)]
struct TokenResponse {
    id: i32,
    name: String,
    scope: &'static str,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<Token> for TokenResponse {
    fn from(t: Token) -> Self {
        TokenResponse {
            id: t.id,
            name: t.name,
            scope: t.scope.as_str(),
            prefix: t.prefix,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
            token: None,
        }
    }
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenResponse>,
}

#[get("/tokens")]
pub async fn list(
    state: web::Data<AppState>,
    _auth: Authed<Admin>,
) -> Result<HttpResponse, ApiError> {
    let tokens = tokens::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: tokens.into_iter().map(TokenResponse::from).collect(),
    }))
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
    let scope: Scope = body.scope.parse().map_err(|e: TokenError| {
        ApiError::with_details(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid token request",
            vec![json!({"field": "scope", "message": e.to_string()})],
        )
    })?;
    let name = body
        .name
        .clone()
        .unwrap_or_else(|| format!("{scope} token"));
    let (secret, token) = tokens::create(&state.db, scope, &name, state.clock.now()).await?;
    tracing::info!(token.name = %token.name, token.scope = %scope, by = %auth.token.name, "token created");
    let out = TokenResponse {
        token: Some(secret),
        ..token.into()
    };
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
