//! Admin management of API tokens. Secrets are shown once, at creation; listings show only a
//! short prefix.
use crate::auth::{Admin, Authed};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use buildfund_jobs::api_tokens::{self as tokens, Scope, Token, TokenError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// A token as the API shows it: never its secret (only at creation, in `token`).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    id: i32,
    name: String,
    /// `ingest`, `scheduler` or `admin`.
    #[schema(value_type = String)]
    scope: &'static str,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    /// The secret, shown once: in the answer to its creation only.
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

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenResponse>,
}

/// Every token, revoked ones included (never a secret).
#[utoipa::path(
    operation_id = "list_tokens",
    tag = "admin",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Every token.", body = TokenList),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
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

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `ingest`, `scheduler` or `admin`.
    #[schema(example = "ingest")]
    scope: String,
    /// Default: "SCOPE token".
    name: Option<String>,
}

/// Creates a token; the answer holds its secret, shown this once.
#[utoipa::path(
    operation_id = "create_token",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body(content = NewToken, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `token` is the secret.", body = TokenResponse),
        (status = 400, description = "The body is not `application/json` of this shape.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 422, description = "`scope` is not a scope.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
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

/// Revokes a token: it is refused from now on.
#[utoipa::path(
    operation_id = "revoke_token",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = i32, Path, description = "The token's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, description = "`id` is not a whole number of 32 bits.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this.", body = ErrorBody),
        (status = 404, description = "No active token has this id.", body = ErrorBody),
        (status = 503, description = "The database is unavailable or busy; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
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
