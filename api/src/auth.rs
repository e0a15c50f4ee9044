//! Bearer-token authentication as an extractor: `Authed<Admin>` in a handler's arguments means
//! "a valid, unrevoked token whose scope grants admin". No token or an unknown one is 401, a
//! token of the wrong scope is 403, both as JSON errors. An authenticated token's name is
//! recorded as the request span's `caller`.
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use buildfund_jobs::api_tokens::{self as tokens, Scope, TokenInfo};
use futures_util::future::LocalBoxFuture;
use std::marker::PhantomData;
use tracing::Span;
use tracing_actix_web::RootSpan;

pub trait RequiredScope {
    const SCOPE: Scope;
}

pub struct Admin;
pub struct Ingest;
pub struct Scheduler;

impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}
impl RequiredScope for Ingest {
    const SCOPE: Scope = Scope::Ingest;
}
impl RequiredScope for Scheduler {
    const SCOPE: Scope = Scope::Scheduler;
}

pub struct Authed<S: RequiredScope> {
    pub token: TokenInfo,
    _scope: PhantomData<S>,
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let secret = value.strip_prefix("Bearer ").ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be \"Bearer TOKEN\"")
    })?;
    Ok(secret.trim().to_string())
}

impl<S: RequiredScope + 'static> FromRequest for Authed<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let secret = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // The request's root span (see `telemetry::BuildfundRootSpan`) names the caller.
        let root_span = req.extensions().get::<RootSpan>().map(|s| Span::clone(s));
        Box::pin(async move {
            let secret = secret?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token = tokens::verify(&state.db, &secret)
                .await?
                .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))?;
            if let Some(span) = root_span {
                span.record("caller", token.name.as_str());
            }
            if !token.scope.grants(S::SCOPE) {
                return Err(ApiError::forbidden(format!(
                    "token {:?} has scope {}; this needs scope {}",
                    token.name,
                    token.scope,
                    S::SCOPE
                )));
            }
            Ok(Authed {
                token,
                _scope: PhantomData,
            })
        })
    }
}
