//! Building and running the HTTP server. `Application::build` binds its own listener, so port 0
//! works in tests, and returns before serving so callers can read the port.
use crate::error::{json_error, ApiError};
use crate::gauges::Gauges;
use crate::metrics::{self, Metrics};
use crate::page_cache::PageCache;
use crate::rate_limit::RateLimiter;
use crate::routes;
use crate::state::{figures_changed, AppState};
use crate::telemetry::{self, BuildfundRootSpan, RoutePattern};
use actix_web::dev::{Server, ServerHandle, ServiceRequest};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use buildfund_jobs::books::shared::Flights;
use buildfund_jobs::clock::Clock;
use buildfund_jobs::config::Secrets;
use buildfund_jobs::email::outbox::ConfirmationSender;
use buildfund_jobs::email::Mailer;
use buildfund_jobs::gate::actions::Actions;
use buildfund_jobs::gate::Gate;
use buildfund_jobs::scheduler::{self, builtin_jobs, Registry, Scheduler};
use buildfund_jobs::sources::opencollective_webhook::{Attempt, SyncTrigger, WebhookToken};
use buildfund_jobs::Config;
use sea_orm::DatabaseConnection;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tracing_actix_web::TracingLogger;

pub struct Application {
    port: u16,
    server: Server,
    jobs: Registry,
    /// What the shared jobs' scheduler runs on: the app's database, configuration and clock.
    db: DatabaseConnection,
    config: Arc<Config>,
    clock: Clock,
    /// The month computations shared by the handlers and the keeper of this instance.
    flights: Arc<Flights>,
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

/// The fallback: a path some route has, asked with another method, is a 405 naming the methods
/// it takes (`Allow`); any other path a 404.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = routes::methods_on(req.path());
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )));
    }
    let allow = allowed.join(", ");
    let mut answer = ApiError::client(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}: {allow}", req.method(), req.path()),
    )
    .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        answer
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    Ok(answer)
}

/// The route pattern `req`'s root span looked up (`None` without a root span).
fn route_of(req: &ServiceRequest) -> Option<Option<&'static str>> {
    req.extensions()
        .get::<RoutePattern>()
        .map(|RoutePattern(route)| *route)
}

/// Whether `req` runs in the instance's [`Flights`] scope ([`routes::may_compute_books`]), by
/// the route pattern its root span looked up (`route`, [`route_of`]).
fn books_scope(req: &ServiceRequest, route: Option<Option<&'static str>>) -> bool {
    match route {
        Some(route) => routes::may_compute_books(route, req.query_string()),
        None => true,
    }
}

/// The sync OpenCollective's webhook asks for: `opencollective_sync` run now, claimed and
/// recorded like every run and under the job's lease, then, when it ran, the after-write policy
/// (fresh pages and gate). A run that found the job running elsewhere is tried again.
fn opencollective_trigger(
    db: DatabaseConnection,
    config: Arc<Config>,
    jobs: Registry,
    pages: Arc<PageCache>,
    gate: Arc<Gate>,
    clock: Clock,
) -> SyncTrigger {
    SyncTrigger::spawn(move || {
        let (db, config, jobs) = (db.clone(), config.clone(), jobs.clone());
        let (pages, gate, clock) = (pages.clone(), gate.clone(), clock.clone());
        async move {
            let run =
                scheduler::run_triggered(db.clone(), config, &jobs, &clock, "opencollective_sync")
                    .await;
            match run {
                Ok(Some(run)) if scheduler::lease_was_held(&run) => Attempt::Busy,
                Ok(Some(run)) => {
                    if run.outcome == scheduler::RunOutcome::Ok {
                        let _ = figures_changed(&pages, &gate, &db).await;
                    }
                    Attempt::Done
                }
                Ok(None) => Attempt::Done,
                Err(e) => {
                    tracing::warn!(error = %scheduler::error_chain(&e), "the webhook's sync did not run");
                    Attempt::Done
                }
            }
        }
    })
}

impl Application {
    /// [`Application::build_with_clock`] on the system clock.
    pub fn build(
        config: Arc<Config>,
        secrets: Arc<Secrets>,
        db: DatabaseConnection,
        options: ServeOptions,
    ) -> anyhow::Result<Application> {
        Self::build_with_clock(config, secrets, db, options, Clock::system())
    }

    /// The server, its handlers reading "now" from `clock`.
    pub fn build_with_clock(
        config: Arc<Config>,
        secrets: Arc<Secrets>,
        db: DatabaseConnection,
        options: ServeOptions,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&config.server.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (server.listen): {e}",
                config.server.listen
            )
        })?;
        let port = listener.local_addr()?.port();
        // One computation per window the store cannot serve, shared by every request, the
        // keeper and the gate's refreshes; the heavy ones leave part of the pool to the
        // writers (books::shared).
        let flights = Flights::new(config.database.max_connections);
        let gate = Arc::new(Gate::new(config.clone(), clock.clone()).sharing(flights.clone()));
        gate.add_sink(Arc::new(Actions::new(
            config.clone(),
            secrets.clone(),
            db.clone(),
            clock.clone(),
        )));
        let jobs = builtin_jobs(gate.clone(), secrets.clone(), clock.clone());
        // This instance's own work (the gate's refresh) starts with it; the shared jobs run
        // where the scheduler runs (`buildfund serve`, from [`Application::scheduler`]).
        scheduler::spawn_per_instance(db.clone(), config.clone(), &jobs, clock.clone());
        let mailer = match &config.smtp {
            Some(smtp) => Some(Mailer::new(smtp, &secrets)?),
            None => None,
        };
        let confirmations = mailer.clone().map(|m| {
            ConfirmationSender::spawn(
                db.clone(),
                config.clone(),
                secrets.clone(),
                m,
                clock.clone(),
            )
        });
        let pages = Arc::new(PageCache::new());
        let opencollective_webhook = WebhookToken::from_secrets(&secrets)?.map(|token| {
            let trigger = opencollective_trigger(
                db.clone(),
                config.clone(),
                jobs.clone(),
                pages.clone(),
                gate.clone(),
                clock.clone(),
            );
            (token, trigger)
        });
        let state = web::Data::new(AppState {
            db: db.clone(),
            clock: clock.clone(),
            config: config.clone(),
            secrets: secrets.clone(),
            metrics: Metrics::new(),
            jobs: jobs.clone(),
            gate,
            pages,
            mailer,
            confirmations,
            email_key: tokio::sync::OnceCell::new(),
            subscribe_limit: RateLimiter::new(5, Duration::from_secs(600)),
            gauges: Gauges::new(),
            opencollective_webhook,
            flights: flights.clone(),
        });
        let max_body = config.server.max_body_bytes;
        let metrics = state.metrics.clone();
        let shared = flights.clone();
        let mut server = HttpServer::new(move || {
            let metrics = metrics.clone();
            let shared = shared.clone();
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
                // The gate's answer from its snapshot without the router (the scheduler's
                // hot path, `routes::from_snapshot_unrouted`); the month computations shared,
                // in the requests that may compute the books.
                .wrap(from_fn(
                    move |req: ServiceRequest, next: actix_web::middleware::Next<_>| {
                        let route = route_of(&req);
                        let early = routes::from_snapshot_unrouted(&req, route.flatten());
                        let shared = books_scope(&req, route).then(|| shared.clone());
                        async move {
                            match (early, shared) {
                                (Some(answer), _) => Ok(req.into_response(answer)),
                                (None, Some(shared)) => shared.scope(next.call(req)).await,
                                (None, None) => next.call(req).await,
                            }
                        }
                    },
                ))
                // Outside the gate's answer above, so that it has them too.
                .wrap(crate::security::headers())
                .wrap(from_fn(move |req, next| {
                    metrics::track(metrics.clone(), req, next)
                }))
                // The logger is the outer layer: its request id exists when the header is set.
                .wrap_fn(telemetry::request_id_header)
                .wrap(TracingLogger::<BuildfundRootSpan>::new())
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
            jobs,
            db,
            config,
            clock,
            flights,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The jobs this server knows (built once: the scheduler runs the same ones).
    pub fn jobs(&self) -> &Registry {
        &self.jobs
    }

    /// A scheduler of this server's jobs on its database, configuration and clock, for
    /// `buildfund serve` to run beside it.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.db.clone(),
            self.config.clone(),
            self.jobs.clone(),
            self.clock.clone(),
        )
    }

    /// The month computations this server's handlers share; the keeper of `buildfund serve`
    /// runs in it too.
    pub fn flights(&self) -> Arc<Flights> {
        self.flights.clone()
    }

    /// The clock the server reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
