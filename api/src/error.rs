//! The one error type of HTTP handlers. Its body is interfaces.md's
//! `{"error": "...", "details": [...]}`; server faults are logged with their cause chain and
//! answered with a generic message, never with internals.
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use buildfund_jobs::bounds::Refused;
use serde_json::{json, Value};
use std::fmt;

pub enum ApiError {
    /// A 4xx answer: the caller's fault, explained.
    Client {
        status: StatusCode,
        message: String,
        details: Vec<Value>,
    },
    /// A 5xx answer: ours. The cause goes to the log only.
    Internal(anyhow::Error),
    /// The database is unreachable or timed out: 503, retry later.
    Unavailable(String),
    /// The database is busy with another writer (SQLite's lock): 503, retry soon.
    Busy(String),
}

/// `Retry-After` of a 503 for an unreachable database, in seconds.
pub const RETRY_UNAVAILABLE_SECONDS: u32 = 5;
/// `Retry-After` of a 503 for a busy database, in seconds.
pub const RETRY_BUSY_SECONDS: u32 = 1;

impl ApiError {
    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(
        status: StatusCode,
        message: impl Into<String>,
        details: Vec<Value>,
    ) -> Self {
        ApiError::Client {
            status,
            message: message.into(),
            details,
        }
    }

    /// A 500 for a fault of ours that is no error value (an invariant that did not hold).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal(anyhow::Error::msg(message.into()))
    }

    /// A 500 for an error of ours while `doing` something; the log gets both and the chain.
    pub fn internal_while<E>(e: E, doing: &'static str) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        ApiError::Internal(anyhow::Error::new(e).context(doing))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, message)
    }

    /// 422: the request is well-formed but a value in it is refused (the message names it).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, message)
    }
}

/// A caller's `at`, `month` or `limit` refused by the domain's bounds: 400 when the text is not
/// a value of its kind (interfaces.md: "400 malformed"), 422 when it is one out of bounds; the
/// message and `details` name the field.
impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        let status = if e.is_malformed() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError::refused(status, &e)
    }
}

impl ApiError {
    /// A refused field, as `{"error": "FIELD: problem", "details": [{"field", "message"}]}`.
    pub fn refused(status: StatusCode, e: &Refused) -> Self {
        ApiError::with_details(
            status,
            e.to_string(),
            vec![json!({"field": e.field(), "message": e.problem()})],
        )
    }
}

/// An error no wing classified: a 500. A busy or unreachable database is told apart only
/// through the typed errors (`From<DbErr>` and each wing's `From`), never by looking inside.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if buildfund_jobs::db::is_unavailable(&e) {
            ApiError::Unavailable(format!("database unavailable: {e}"))
        } else if buildfund_jobs::db::is_busy(&e) {
            ApiError::Busy(format!("database busy: {e}"))
        } else {
            ApiError::Internal(anyhow::Error::new(e))
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Client {
                status, message, ..
            } => write!(f, "{status}: {message}"),
            ApiError::Internal(e) => write!(f, "{e:?}"),
            ApiError::Unavailable(m) | ApiError::Busy(m) => write!(f, "{m}"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Client { message, .. } => f.write_str(message),
            ApiError::Internal(e) => write!(f, "{e:#}"),
            ApiError::Unavailable(m) | ApiError::Busy(m) => f.write_str(m),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Client { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Client {
                message, details, ..
            } => {
                json!({"error": message, "details": details})
            }
            ApiError::Internal(e) => {
                // One line, in the request's span (route, request id): the error and its causes.
                tracing::error!(error.chain = %format_args!("{e:#}"), "request failed");
                json!({"error": "internal error; the cause is in the server log", "details": []})
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(error.message = %m, "request failed: database unavailable");
                json!({"error": "the database is unavailable; try again shortly", "details": []})
            }
            ApiError::Busy(m) => {
                tracing::warn!(error.message = %m, "request failed: database busy");
                json!({"error": "the database is busy with another write; try again shortly", "details": []})
            }
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable(_) => {
                res.insert_header(("Retry-After", RETRY_UNAVAILABLE_SECONDS.to_string()));
            }
            ApiError::Busy(_) => {
                res.insert_header(("Retry-After", RETRY_BUSY_SECONDS.to_string()));
            }
            _ => {}
        }
        res.json(body)
    }
}

/// Turns actix's own extractor errors (bad JSON, oversized body, bad query) into our JSON shape.
pub fn json_error(err: actix_web::Error) -> actix_web::Error {
    let status = err.as_response_error().status_code();
    ApiError::client(status, err.to_string()).into()
}

/// The books' errors: storage through the `DbErr` classification above, a refused input as a
/// 422 naming it, an overflow of the exact arithmetic as a 500 (logged with its chain).
impl From<buildfund_jobs::books::BooksError> for ApiError {
    fn from(e: buildfund_jobs::books::BooksError) -> Self {
        use buildfund_jobs::books::expenses::ExpenseError;
        use buildfund_jobs::books::BooksError;
        match e {
            BooksError::Db(db) | BooksError::Expense(ExpenseError::Db(db)) => db.into(),
            e @ (BooksError::DonationRefused { .. }
            | BooksError::Expense(ExpenseError::Refused { .. })) => {
                ApiError::unprocessable(e.to_string())
            }
            e @ (BooksError::Overflow(_)
            | BooksError::Attribution(_)
            | BooksError::Expense(ExpenseError::Corrupt { .. })) => {
                ApiError::Internal(anyhow::Error::new(e))
            }
        }
    }
}

/// Build-step ingest: the batch's record errors are the 422's details (nothing was stored);
/// storage faults go through the database's classification.
impl From<buildfund_jobs::sources::ingest::IngestError> for ApiError {
    fn from(e: buildfund_jobs::sources::ingest::IngestError) -> Self {
        use buildfund_jobs::sources::ingest::IngestError;
        match e {
            IngestError::Invalid { errors, count } => ApiError::with_details(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{count} problem(s) in the batch; nothing was stored"),
                errors.iter().map(|e| json!(e)).collect(),
            ),
            IngestError::TooLarge { limit } => ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than the limit of {limit} bytes (server.max_ingest_bytes)"
                ),
            ),
            IngestError::Read(message) => ApiError::bad_request(message),
            IngestError::Db(e) => e.into(),
            e @ IngestError::NoCounts => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// The sources (syncs, the webhook's token): storage faults through the database's
/// classification; anything else is ours (a sync is not the caller's request).
impl From<buildfund_jobs::sources::SourceError> for ApiError {
    fn from(e: buildfund_jobs::sources::SourceError) -> Self {
        use buildfund_jobs::sources::SourceError;
        match e {
            SourceError::Db(e) => e.into(),
            e => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// The email: storage faults through the database's classification; a relay, key or message
/// that cannot be made is ours.
impl From<buildfund_jobs::email::EmailError> for ApiError {
    fn from(e: buildfund_jobs::email::EmailError) -> Self {
        use buildfund_jobs::email::EmailError;
        match e {
            EmailError::Db(e) => e.into(),
            e => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// API tokens: storage faults through the database's classification; an unknown scope is the
/// caller's (422).
impl From<buildfund_jobs::api_tokens::TokenError> for ApiError {
    fn from(e: buildfund_jobs::api_tokens::TokenError) -> Self {
        use buildfund_jobs::api_tokens::TokenError;
        match e {
            TokenError::Db(e) => e.into(),
            e @ TokenError::UnknownScope { .. } => ApiError::unprocessable(e.to_string()),
        }
    }
}

/// The gate's errors: a control's refusal is the caller's (404 unknown pool, 422 invalid,
/// 409 nothing to lift); storage goes through `From<DbErr>`; the rest is ours (500).
impl From<buildfund_jobs::gate::GateError> for ApiError {
    fn from(e: buildfund_jobs::gate::GateError) -> Self {
        use buildfund_jobs::gate::GateError;
        match e {
            GateError::UnknownPool(_) => ApiError::not_found(e.to_string()),
            GateError::Invalid(m) => ApiError::unprocessable(m),
            GateError::NothingToLift(m) => ApiError::client(StatusCode::CONFLICT, m),
            GateError::Db(e) => e.into(),
            GateError::Books(e) => e.into(),
            GateError::Hydra(buildfund_jobs::gate::hydra_web::HydraError::Db(e)) => e.into(),
            e @ (GateError::StateEventMissing { .. }
            | GateError::EvaluationPanicked(_)
            | GateError::EvaluationCancelled
            | GateError::Encode(_)
            | GateError::EncodeAnswer { .. }
            | GateError::Hydra(_)) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// The scheduler's errors: a run claimed by someone else at the same instant is a conflict to
/// retry (409); storage goes through `From<DbErr>`.
impl From<buildfund_jobs::scheduler::SchedulerError> for ApiError {
    fn from(e: buildfund_jobs::scheduler::SchedulerError) -> Self {
        use buildfund_jobs::scheduler::SchedulerError;
        match e {
            SchedulerError::AlreadyClaimed { .. } => {
                ApiError::client(StatusCode::CONFLICT, e.to_string())
            }
            SchedulerError::Db(e) => e.into(),
            e @ SchedulerError::ClaimedRunMissing { .. } => {
                ApiError::Internal(anyhow::Error::new(e))
            }
        }
    }
}

/// The report's errors: storage and the books through their own classification; a CSV that
/// cannot be written is ours.
impl From<buildfund_jobs::report::ReportError> for ApiError {
    fn from(e: buildfund_jobs::report::ReportError) -> Self {
        use buildfund_jobs::report::ReportError;
        match e {
            ReportError::Db(db) => db.into(),
            ReportError::Books(b) => b.into(),
            e @ ReportError::Csv(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}
