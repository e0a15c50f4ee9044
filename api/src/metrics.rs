//! Request metrics (Prometheus) and one structured log line per request.
use crate::telemetry::RoutePattern;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use buildfund_jobs::books::shared::Flights;
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::borrow::Cow;
use std::time::Instant;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "buildfund_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "buildfund_http_request_duration_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        Metrics {
            registry,
            requests,
            latency,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text of the HTTP metrics followed by `more` (the farm's gauges).
    pub fn render(&self, more: Vec<MetricFamily>) -> String {
        let mut families = self.registry.gather();
        families.extend(more);
        TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The counters of the computations this instance shared ([`Flights`]): how many windows were
/// computed from the steps, how many of them were months to date, and how many reads waited
/// for a computation already running instead of starting their own.
pub fn books_families(flights: &Flights) -> Vec<MetricFamily> {
    let registry = Registry::new();
    for (name, help, value) in [
        (
            "buildfund_books_computations_total",
            "Windows (months, months to date) whose cost lines this instance computed from the build steps because the store could not serve them (once per window and generation, shared by the readers, the gate's refresh and the keeper)",
            flights.computations(),
        ),
        (
            "buildfund_books_computations_to_date_total",
            "Of buildfund_books_computations_total, the windows that do not end with their month (the open month to date, a month as of an instant inside it)",
            flights.computations_to_date(),
        ),
        (
            "buildfund_books_computations_joined_total",
            "Reads that waited for a computation of their window already running instead of starting their own",
            flights.joined(),
        ),
    ] {
        let counter = IntCounter::new(name, help).expect("valid metric");
        counter.inc_by(value);
        registry
            .register(Box::new(counter))
            .expect("registered once");
    }
    registry.gather()
}

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The method label: the standard methods by name, anything else as `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The path a request is logged with: its route pattern when the path holds a secret (the
/// webhook's `{token}`), else the path itself.
pub fn logged_path<'a>(route: &'a str, path: &'a str) -> &'a str {
    if route.contains("{token}") {
        route
    } else {
        path
    }
}

/// Middleware: times the request, counts it under its route pattern (not its raw path, so
/// `/reports/2026-10` and `/reports/2026-11` are one series) and logs it.
pub async fn track(
    metrics: Metrics,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method()).to_string();
    // The pattern of a matched route (a fixed set), else one fixed label: raw paths and
    // invented methods never become label values, so the series stay bounded.
    // Looked up once per request, by the request's root span (`telemetry::RoutePattern`);
    // looked up here only where no root span did.
    let pattern = req
        .extensions()
        .get::<RoutePattern>()
        .map(|RoutePattern(route)| *route);
    let route: Cow<'static, str> = match pattern {
        Some(route) => Cow::Borrowed(route.unwrap_or(UNMATCHED)),
        None => req
            .match_pattern()
            .map_or(Cow::Borrowed(UNMATCHED), Cow::Owned),
    };
    let path = logged_path(&route, req.path()).to_string();
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    tracing::info!(
        http.method = %method,
        http.route = %route,
        http.path = %path,
        http.status = status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_path_is_logged_as_its_pattern() {
        let route = "/webhooks/opencollective/{token}";
        assert_eq!(logged_path(route, "/webhooks/opencollective/s3cret"), route);
        assert_eq!(
            logged_path("/reports/{month}", "/reports/2026-10"),
            "/reports/2026-10"
        );
        assert_eq!(logged_path(UNMATCHED, "/random/1"), "/random/1");
    }
}
