//! The public subscription flow (docs/src/monthly-email.md, "Monthly email"): `POST /subscribe` from the funding
//! page's form, `GET /confirm?token=` (a page with a Confirm button) and `POST /confirm?token=`
//! (the button), `GET /unsubscribe?token=` (a page with a button) and `POST
//! /unsubscribe?token=` (the button, and RFC 8058 one-click from mail clients). Answers
//! are small HTML pages. The subscribe answer is the same whether the address is new, pending
//! or confirmed, and the confirmation is queued in the outbox and sent in the background, so
//! neither the page nor its timing tells whether an address is known, and a relay that refuses
//! it for now delays it instead of losing it.
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use buildfund_jobs::email::links::TokenError;
use buildfund_jobs::email::render::Page;
use buildfund_jobs::email::subscriptions::{self, LinkError, Subscribed, SubscriberEmail};
use buildfund_jobs::email::{EmailError, EmailKey};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn page(state: &AppState, status: StatusCode, title: &str, paragraphs: &[&str]) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(Page::new(title, paragraphs, &state.config.public_url).html())
}

fn unavailable(state: &AppState, e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "subscription request failed");
    page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again later",
        &["Something went wrong on our side; nothing was changed. Please try again in a few minutes."],
    )
}

pub async fn email_key(state: &AppState) -> Result<EmailKey, EmailError> {
    state
        .email_key
        .get_or_try_init(|| EmailKey::load(&state.db, &state.secrets, state.clock.now()))
        .await
        .cloned()
}

/// The funding page's form.
#[derive(Deserialize, ToSchema)]
pub struct SubscribeForm {
    /// The address to send the monthly report to.
    email: Option<String>,
}

/// The funding page's form: queues a confirmation email. The answer is the same whether the
/// address is new, pending or confirmed.
#[utoipa::path(
    operation_id = "subscribe",
    tag = "pages",
    request_body(content = SubscribeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page: check your inbox.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A page: the form has no valid address.", content_type = "text/html; charset=utf-8", body = String),
        (status = 429, description = "A page: this client asked too often (5 per 10 minutes); `Retry-After` says when to retry.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: subscriptions are closed (no `[smtp]`) or the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[post("/subscribe")]
pub async fn subscribe(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<web::Form<SubscribeForm>, actix_web::Error>,
) -> HttpResponse {
    if let Some(ip) = crate::rate_limit::client_ip(&req, &state.config.server.trusted_proxies) {
        if let Err(wait) = state.subscribe_limit.check(ip) {
            let secs = wait.as_secs().max(1);
            let mut answer = page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                &[&format!(
                    "This address has asked too often. Please try again in {} minutes.",
                    secs.div_ceil(60)
                )],
            );
            answer.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(secs),
            );
            return answer;
        }
    }
    let raw = match form {
        Ok(f) => f.into_inner().email.unwrap_or_default(),
        Err(e) => {
            return page(
                &state,
                StatusCode::BAD_REQUEST,
                "That did not work",
                &[&format!(
                    "The form could not be read ({e}); it needs an email field."
                )],
            )
        }
    };
    let email = match SubscriberEmail::parse(&raw) {
        Ok(e) => e,
        Err(problem) => {
            return page(
                &state,
                StatusCode::BAD_REQUEST,
                "Please check the address",
                &[&problem],
            )
        }
    };
    if state.mailer.is_none() {
        return page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "Subscriptions are closed",
            &["This server sends no email (it has no [smtp] configuration)."],
        );
    }
    let now = state.clock.now();
    match subscriptions::subscribe(&state.db, &email, now).await {
        Ok(Subscribed::ConfirmationQueued { .. }) => {
            if let Some(sender) = &state.confirmations {
                sender.wake();
            }
        }
        Ok(Subscribed::AlreadyConfirmed | Subscribed::RecentlySent) => {}
        Err(e) => return unavailable(&state, e),
    }
    page(
        &state,
        StatusCode::OK,
        "Check your inbox",
        &[&format!(
            "If {email} can receive the report, a message with a confirmation link is on its way. \
             The link works for 48 hours; nothing is sent until it is followed."
        )],
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The signed token of the email's link.
    token: Option<String>,
}

fn link_error(state: &AppState, e: LinkError) -> HttpResponse {
    match e {
        LinkError::Token(TokenError::Expired) => page(
            state,
            StatusCode::GONE,
            "This link has expired",
            &["Confirmation links work for 48 hours. Subscribe again to get a new one."],
        ),
        LinkError::Token(e) => page(state, StatusCode::BAD_REQUEST, "This link is not valid", &[&e.to_string()]),
        LinkError::Gone => page(
            state,
            StatusCode::GONE,
            "This link is no longer valid",
            &["The subscription it belongs to has ended. You can subscribe again from the funding page."],
        ),
        LinkError::Db(e) => unavailable(state, e),
    }
}

/// The token of a link and the signing key, or the page that answers when either is missing.
async fn token_and_key(
    state: &AppState,
    q: &TokenQuery,
) -> Result<(String, EmailKey), HttpResponse> {
    let Some(token) = q.token.clone().filter(|t| !t.is_empty()) else {
        return Err(page(
            state,
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            &["The link has no token: copy the whole link from the email."],
        ));
    };
    match email_key(state).await {
        Ok(key) => Ok((token, key)),
        Err(e) => Err(unavailable(state, format!("{e:#}"))),
    }
}

fn subscribed(state: &AppState, email: &str) -> HttpResponse {
    page(
        state,
        StatusCode::OK,
        "You are subscribed",
        &[&format!(
            "{email} will get the monthly report. Every report has a link to unsubscribe."
        )],
    )
}

fn unsubscribed(state: &AppState, email: &str) -> HttpResponse {
    page(
        state,
        StatusCode::OK,
        "You are unsubscribed",
        &[&format!("{email} gets no more reports.")],
    )
}

/// A page asking `question` with one button that POSTs to `action` (a link's GET never acts:
/// mail link scanners follow links).
fn button_page(
    state: &AppState,
    title: &str,
    question: &str,
    action: String,
    label: &str,
) -> HttpResponse {
    let mut p = Page::new(title, &[question], &state.config.public_url);
    p.form = Some((action, label.into()));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(p.html())
}

/// The link of the confirmation email: a page with a Confirm button, changing nothing by itself
/// (mail link scanners follow links; only the subscriber's click may subscribe them).
#[utoipa::path(
    operation_id = "confirm_page",
    tag = "pages",
    params(TokenQuery),
    responses(
        (status = 200, description = "A page: a Confirm button, or: you are subscribed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A page: the link has no token or an invalid one.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "A page: the link has expired or its subscription ended.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[get("/confirm")]
pub async fn confirm_page(state: web::Data<AppState>, q: web::Query<TokenQuery>) -> HttpResponse {
    let (token, key) = match token_and_key(&state, &q).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    match subscriptions::check_confirm(&state.db, &key, &token, state.clock.now()).await {
        Ok(s) if s.status == subscriptions::CONFIRMED => subscribed(&state, &s.email),
        Ok(s) => button_page(
            &state,
            "Confirm your subscription",
            &format!(
                "Send the monthly report of the build farm's books to {}?",
                s.email
            ),
            format!("/confirm?token={token}"),
            "Confirm",
        ),
        Err(e) => link_error(&state, e),
    }
}

/// The Confirm button: the subscriber is confirmed.
#[utoipa::path(
    operation_id = "confirm",
    tag = "pages",
    params(TokenQuery),
    responses(
        (status = 200, description = "A page: you are subscribed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A page: the link has no token or an invalid one.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "A page: the link has expired or its subscription ended.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[post("/confirm")]
pub async fn confirm(state: web::Data<AppState>, q: web::Query<TokenQuery>) -> HttpResponse {
    let (token, key) = match token_and_key(&state, &q).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    match subscriptions::confirm(&state.db, &key, &token, state.clock.now()).await {
        Ok(s) => subscribed(&state, &s.email),
        Err(e) => link_error(&state, e),
    }
}

#[utoipa::path(
    operation_id = "unsubscribe_page",
    tag = "pages",
    params(TokenQuery),
    responses(
        (status = 200, description = "A page: an Unsubscribe button, or: you are unsubscribed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A page: the link has no token or an invalid one.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "A page: the link has expired or its subscription ended.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[get("/unsubscribe")]
pub async fn unsubscribe_page(
    state: web::Data<AppState>,
    q: web::Query<TokenQuery>,
) -> HttpResponse {
    let (token, key) = match token_and_key(&state, &q).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    match subscriptions::check_unsubscribe(&state.db, &key, &token, state.clock.now()).await {
        Ok(s) if s.status == subscriptions::UNSUBSCRIBED => unsubscribed(&state, &s.email),
        Ok(s) => button_page(
            &state,
            "Unsubscribe",
            &format!("Stop sending the monthly report to {}?", s.email),
            format!("/unsubscribe?token={token}"),
            "Unsubscribe",
        ),
        Err(e) => link_error(&state, e),
    }
}

/// The page's button and RFC 8058 one-click (`List-Unsubscribe=One-Click` in the body, which
/// is not required): unsubscribes at once.
#[utoipa::path(
    operation_id = "unsubscribe",
    tag = "pages",
    params(TokenQuery),
    responses(
        (status = 200, description = "A page: you are unsubscribed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A page: the link has no token or an invalid one.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "A page: the link has expired or its subscription ended.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[post("/unsubscribe")]
pub async fn unsubscribe(state: web::Data<AppState>, q: web::Query<TokenQuery>) -> HttpResponse {
    let (token, key) = match token_and_key(&state, &q).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    match subscriptions::unsubscribe(&state.db, &key, &token, state.clock.now()).await {
        Ok(s) => unsubscribed(&state, &s.email),
        Err(e) => link_error(&state, e),
    }
}
