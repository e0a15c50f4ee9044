//! What can go wrong bringing data in: the Hydra pull, the OpenCollective sync and client, the
//! webhook's token and the sync cursors. Build-step ingest keeps its own [`IngestError`] (the
//! upload's answer needs its records' errors); a pull that fails storing a page wraps it.
//!
//! Each message is one sentence a user can act on; the cause, when there is one, is the
//! error's `source()`, so a log line or the CLI shows the whole chain.
use super::ingest::IngestError;
use crate::config::secrets::MissingSecret;
use sea_orm::DbErr;

/// An error another wing returned while a sync stored its page (donations, expenses, the
/// OpenCollective check): kept whole as the cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The format a sync cursor's text should be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorFormat {
    /// Hydra: unix seconds.
    UnixSeconds,
    /// OpenCollective: an RFC 3339 instant.
    Rfc3339,
}

impl std::fmt::Display for CursorFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CursorFormat::UnixSeconds => {
                "not unix seconds; delete that sync_cursors row to pull from ledger_start again"
            }
            CursorFormat::Rfc3339 => {
                "not an RFC 3339 time; delete that sync_cursors row to sync from ledger_start again"
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Db(#[from] DbErr),

    // The configuration and the environment.
    #[error("the configuration ({config}) has no [hydra] table, so there is no Hydra database to pull from")]
    NoHydra { config: String },
    #[error("the configuration ({config}) has no [opencollective] table, so there is no collective to sync; add [opencollective] with collective")]
    NoOpenCollective { config: String },
    #[error("hydra.database_url_env is not set, so there is no Hydra database to pull from; set it to the NAME of the environment variable holding the Hydra PostgreSQL URL")]
    NoHydraUrlEnv,
    #[error("the environment variable {var} (hydra.database_url_env) is empty; set it to the Hydra PostgreSQL URL")]
    HydraUrlEmpty { var: String },
    #[error("the environment variable {var} (hydra.database_url_env) is not set; set it to the Hydra PostgreSQL URL")]
    HydraUrlNotSet { var: String },
    #[error("the environment variable {var} (hydra.database_url_env) is not UTF-8")]
    HydraUrlNotUnicode { var: String },
    #[error(
        "the environment variable {var} (hydra.database_url_env) does not hold a postgres:// URL"
    )]
    HydraUrlNotPostgres { var: String },
    #[error("the environment variable {var} (opencollective.token_env) is empty; set it to an OpenCollective personal token with the transactions scope")]
    TokenEmpty { var: String },
    #[error("the environment variable {var} (opencollective.token_env) is not set; set it to an OpenCollective personal token with the transactions scope, or remove token_env to read public data anonymously")]
    TokenNotSet { var: String },
    #[error("the environment variable {var} (opencollective.webhook_token_env) must hold {min} to {max} bytes; use a long random value, e.g. `openssl rand -hex 32`")]
    WebhookTokenLength { var: String, min: usize, max: usize },
    #[error("the environment variable {var} (opencollective.webhook_token_env) may hold only letters, digits, '-', '_', '.' and '~' (it is a segment of the webhook's URL)")]
    WebhookTokenCharacters { var: String },
    #[error(transparent)]
    Secret(#[from] MissingSecret),

    // Cursors.
    #[error("cannot read the sync cursor {name}")]
    CursorRead {
        name: String,
        #[source]
        source: DbErr,
    },
    #[error("cannot store the sync cursor {name}")]
    CursorStore {
        name: String,
        #[source]
        source: DbErr,
    },
    #[error("the sync cursor {name} holds {value:?}, {expected}")]
    CursorUnreadable {
        name: String,
        value: String,
        expected: CursorFormat,
    },

    // Hydra.
    #[error("cannot connect to the Hydra database at {at} (from {var})")]
    HydraConnect {
        /// host:port/database, never the URL (it may hold a password).
        at: String,
        var: String,
        #[source]
        source: DbErr,
    },
    #[error("reading build steps from the Hydra database (page {page}) failed")]
    HydraRead {
        page: u64,
        #[source]
        source: DbErr,
    },
    #[error("storing page {page} of the Hydra build steps failed")]
    HydraStore {
        page: u64,
        #[source]
        source: IngestError,
    },

    // OpenCollective's API.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("OpenCollective's answer to {what} failed after {attempts} tries: {failure}")]
    Unreadable {
        what: String,
        attempts: u32,
        failure: String,
    },
    #[error("OpenCollective answered {what} with errors: {}", messages.join("; "))]
    GraphQl { what: String, messages: Vec<String> },
    #[error("OpenCollective answered {what} without data")]
    NoData { what: String },
    #[error("OpenCollective's rate limit was hit on {what} ({attempts} tries; it asks to wait {wait_seconds} s): try again later")]
    RateLimited {
        what: String,
        attempts: u32,
        wait_seconds: u64,
    },
    #[error("OpenCollective refused {what} with HTTP {status}{}: {body}", if matches!(status.as_u16(), 401 | 403) { " (check the token: it needs the transactions scope)" } else { "" })]
    Refused {
        what: String,
        status: reqwest::StatusCode,
        /// The answer's first 300 characters.
        body: String,
    },
    #[error("OpenCollective did not answer {what} after {attempts} tries: {failure}")]
    Unanswered {
        what: String,
        attempts: u32,
        failure: String,
    },

    // The OpenCollective sync.
    #[error("the OpenCollective sync stopped at page {page}; {stored} page(s) were stored and the next sync resumes after them")]
    SyncStopped {
        page: u64,
        stored: u64,
        #[source]
        source: Box<SourceError>,
    },
    #[error("the OpenCollective sync refused page {page}, so nothing of it was stored: {why}")]
    PageRefused { page: u64, why: String },
    #[error("storing page {page} of the OpenCollective transactions failed")]
    PageStore {
        page: u64,
        #[source]
        source: Cause,
    },
    #[error("recurring contribution {id}: {why}")]
    RecurringRefused { id: String, why: String },
    #[error("the OpenCollective check could not read the collective's balance (the sync itself was stored)")]
    CheckBalance {
        #[source]
        source: Box<SourceError>,
    },
    /// A balance OpenCollective gave that is not a whole number of cents: why.
    #[error("{0}")]
    BalanceRefused(String),
}
