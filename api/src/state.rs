//! What every handler can reach, and the one policy every write follows.
use crate::gauges::Gauges;
use crate::metrics::Metrics;
use crate::page_cache::PageCache;
use crate::rate_limit::RateLimiter;
use buildfund_jobs::clock::Clock;
use buildfund_jobs::config::Secrets;
use buildfund_jobs::email::outbox::ConfirmationSender;
use buildfund_jobs::email::{EmailKey, Mailer};
use buildfund_jobs::gate::{Gate, GateError};
use buildfund_jobs::scheduler::Registry;
use buildfund_jobs::sources::opencollective_webhook::{SyncTrigger, WebhookToken};
use buildfund_jobs::Config;
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub db: DatabaseConnection,
    /// What "now" is for the handlers (the system clock; a manual one in tests).
    pub clock: Clock,
    pub config: Arc<Config>,
    /// The environment's secrets, read once at start.
    pub secrets: Arc<Secrets>,
    pub metrics: Metrics,
    /// The jobs `POST /api/v1/jobs/{name}/run` can start (the scheduler runs the same ones).
    pub jobs: Registry,
    /// The gate's in-memory snapshot, refreshed on `schedule.gate_refresh` (see
    /// [`buildfund_jobs::scheduler`]) and after every write ([`AppState::after_write`]).
    pub gate: Arc<Gate>,
    /// The public pages, rendered, with their ETags (see [`crate::page_cache`]).
    pub pages: Arc<PageCache>,
    /// The SMTP relay, when `[smtp]` is configured (confirmation emails).
    pub mailer: Option<Mailer>,
    /// This instance's background sender of queued confirmation emails (with `[smtp]`).
    pub confirmations: Option<ConfirmationSender>,
    /// The link-signing key, loaded on first use (it may live in the database).
    pub email_key: tokio::sync::OnceCell<EmailKey>,
    /// `POST /subscribe`: 5 requests per client address per 10 minutes.
    pub subscribe_limit: RateLimiter,
    /// The farm's gauges of `/metrics` (their database figures, kept a few seconds).
    pub gauges: Gauges,
    /// `POST /webhooks/opencollective/{token}`: the token and the sync it triggers, when
    /// `opencollective.webhook_token_env` is set.
    pub opencollective_webhook: Option<(WebhookToken, SyncTrigger)>,
    /// The computations shared by this instance's requests, gate refreshes and keeper
    /// (`buildfund_books_computations_total`).
    pub flights: Arc<buildfund_jobs::books::shared::Flights>,
}

impl AppState {
    /// After a write that moves the figures (build steps, donations, a job's run, an admin's
    /// control): see [`figures_changed`].
    pub async fn after_write(&self) -> Result<(), GateError> {
        figures_changed(&self.pages, &self.gate, &self.db).await
    }
}

/// The one after-write policy: the cached pages are outdated and the gate's snapshot is
/// recomputed. A failed refresh leaves the last snapshot, marked stale, and is returned for the
/// caller to weigh.
pub async fn figures_changed(
    pages: &PageCache,
    gate: &Gate,
    db: &DatabaseConnection,
) -> Result<(), GateError> {
    pages.bump();
    gate.refresh(db).await.map(|_| ())
}
