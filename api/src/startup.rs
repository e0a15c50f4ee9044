//! Building and running the HTTP server. `Application::build` binds its own listener, so port 0
//! works in tests, and returns before serving so callers can read the port.
use crate::error::{json_error, ApiError};
use crate::metrics::{self, Metrics};
use crate::page_cache::PageCache;
use crate::rate_limit::RateLimiter;
use crate::routes;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use buildfund_jobs::email::{EmailKey, Mailer};
use buildfund_jobs::gate::actions::Actions;
use buildfund_jobs::gate::Gate;
use buildfund_jobs::scheduler::{builtin_jobs, Registry};
use buildfund_jobs::Config;
use sea_orm::DatabaseConnection;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// What every handler can reach.
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub metrics: Metrics,
    /// The jobs `POST /api/v1/jobs/{name}/run` can start.
    pub jobs: Registry,
    /// The gate's in-memory snapshot, refreshed by [`spawn_gate_refresh`] and after changes.
    pub gate: Arc<Gate>,
    /// The public pages, rendered, with their ETags (see [`crate::page_cache`]).
    pub pages: Arc<PageCache>,
    /// The SMTP relay, when `[smtp]` is configured (confirmation emails).
    pub mailer: Option<Mailer>,
    /// The link-signing key, loaded on first use (it may live in the database).
    pub email_key: tokio::sync::OnceCell<EmailKey>,
    /// `POST /subscribe`: 5 requests per client address per 10 minutes.
    pub subscribe_limit: RateLimiter,
}

/// The gate's refresh loop: once at start, then on `schedule.gate_refresh` (default every
/// minute; at most a minute apart when that job is disabled), as monthly machines accrue cost
/// with time. Runs until the runtime stops.
pub fn spawn_gate_refresh(gate: Arc<Gate>, db: DatabaseConnection, config: Arc<Config>) {
    tokio::spawn(async move {
        loop {
            let _ = gate.refresh(&db).await;
            let now = chrono::Utc::now();
            let wait = config
                .schedule
                .get("gate_refresh")
                .and_then(|s| s.schedule.upcoming(chrono::Utc).next())
                .and_then(|next| (next - now).to_std().ok())
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    });
}

pub struct Application {
    port: u16,
    server: Server,
}

#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Stop gracefully on SIGTERM/SIGINT (off when many apps share one test process).
    pub handle_signals: bool,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            handle_signals: true,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

impl Application {
    pub fn build(
        config: Arc<Config>,
        db: DatabaseConnection,
        options: ServeOptions,
    ) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&config.server.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (server.listen): {e}",
                config.server.listen
            )
        })?;
        let port = listener.local_addr()?.port();
        let gate = Arc::new(Gate::new(config.clone()));
        gate.add_sink(Arc::new(Actions::new(config.clone(), db.clone())));
        spawn_gate_refresh(gate.clone(), db.clone(), config.clone());
        let mailer = match &config.smtp {
            Some(smtp) => Some(Mailer::new(smtp)?),
            None => None,
        };
        let state = web::Data::new(AppState {
            db,
            config: config.clone(),
            metrics: Metrics::new(),
            jobs: builtin_jobs(),
            gate,
            pages: Arc::new(PageCache::new()),
            mailer,
            email_key: tokio::sync::OnceCell::new(),
            subscribe_limit: RateLimiter::new(5, Duration::from_secs(600)),
        });
        let max_body = config.server.max_body_bytes;
        let metrics = state.metrics.clone();
        let mut server = HttpServer::new(move || {
            let metrics = metrics.clone();
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(|e, _| json_error(e.into())),
                )
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|e, _| json_error(e.into())))
                .app_data(web::PathConfig::default().error_handler(|e, _| json_error(e.into())))
                .wrap(crate::security::headers())
                .wrap(from_fn(move |req, next| {
                    metrics::track(metrics.clone(), req, next)
                }))
                .configure(routes::configure)
                .default_service(web::to(no_route))
        })
        .listen(listener)?
        .shutdown_timeout(options.shutdown_timeout.as_secs());
        if let Some(workers) = config.server.workers {
            server = server.workers(workers);
        }
        if !options.handle_signals {
            server = server.disable_signals();
        }
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
