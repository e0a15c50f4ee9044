//! Logging: structured events through `tracing`. `RUST_LOG` filters (default `info`);
//! `BUILDFUND_LOG_FORMAT=json` gives one JSON object a line, `text` readable lines (the default
//! on a terminal; JSON otherwise). Logs go to stderr so command output stays clean.
//!
//! Every HTTP request runs in a root span ([`BuildfundRootSpan`]) whose `request_id` is also
//! the response's `x-request-id` ([`request_id_header`]); a JSON line carries its spans' fields
//! (`span`, `spans`), so the route and the request id are on every line a request causes.
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, Version};
use actix_web::{Error, HttpMessage};
use std::borrow::Cow;
use std::future::Future;
use std::io::IsTerminal;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("BUILDFUND_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = result;
}

/// The root span of every HTTP request (`request`): tracing-actix-web's default fields
/// (`http.method`, `http.route`, `http.target`, `http.status_code`, `request_id`, `exception.*`,
/// …) and `caller`, the name of the token that authenticated the request (empty for anonymous
/// callers; recorded by [`crate::auth`]). Every log line a request causes is in this span, so
/// it carries the route and the request id; the id is also the response's `x-request-id`.
pub struct BuildfundRootSpan;

/// A request's route pattern (`/api/v1/gate/{project}/{jobset}`; `None` when no route
/// matches), looked up once per request by [`BuildfundRootSpan`] and kept in the request's
/// extensions for the metrics ([`crate::metrics::track`]). It is [`crate::routes::pattern_of`],
/// what actix's `match_pattern` answers without its regular expressions (which cost a gate
/// request more than anything else it does).
#[derive(Clone, Copy, Debug)]
pub struct RoutePattern(pub Option<&'static str>);

impl RootSpanBuilder for BuildfundRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = crate::routes::pattern_of(request.path());
        let span = root_span(request, route);
        request.extensions_mut().insert(RoutePattern(route));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The span `tracing_actix_web::root_span!(request, caller = Empty)` makes (tracing-actix-web
/// 0.7, without its OpenTelemetry features: the same name, fields and values), from a route
/// pattern already looked up, where that macro looks it up again. Its values are computed only
/// when the span is enabled (`tracing` evaluates a span's fields then): with the `info` level
/// filtered out, a request does not format its peer's address for nothing.
fn root_span(request: &ServiceRequest, route: Option<&str>) -> Span {
    let route = route.unwrap_or("default");
    // In this order: the first `connection_info()` stores it in the extensions (a mutable
    // borrow), before `request_id` borrows them.
    tracing::info_span!(
        "HTTP request",
        http.method = %http_method(request.method()),
        http.route = %route,
        http.flavor = %http_flavor(request.version()),
        http.scheme = %request.connection_info().scheme(),
        http.host = %request.connection_info().host(),
        http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
        http.user_agent = %request
            .headers()
            .get("User-Agent")
            .map(|h| h.to_str().unwrap_or(""))
            .unwrap_or(""),
        http.target = %request.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
        http.status_code = tracing::field::Empty,
        otel.name = %format!("{} {route}", http_method(request.method())),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        request_id = request.extensions().get::<RequestId>().copied().map(tracing::field::display),
        exception.message = tracing::field::Empty,
        exception.details = tracing::field::Empty,
        caller = tracing::field::Empty,
    )
}

/// The `http.method` of [`root_span`], as tracing-actix-web writes it.
fn http_method(method: &Method) -> Cow<'static, str> {
    match *method {
        Method::OPTIONS => "OPTIONS".into(),
        Method::GET => "GET".into(),
        Method::POST => "POST".into(),
        Method::PUT => "PUT".into(),
        Method::DELETE => "DELETE".into(),
        Method::HEAD => "HEAD".into(),
        Method::TRACE => "TRACE".into(),
        Method::CONNECT => "CONNECT".into(),
        Method::PATCH => "PATCH".into(),
        ref other => other.to_string().into(),
    }
}

/// The `http.flavor` of [`root_span`], as tracing-actix-web writes it.
fn http_flavor(version: Version) -> Cow<'static, str> {
    match version {
        Version::HTTP_09 => "0.9".into(),
        Version::HTTP_10 => "1.0".into(),
        Version::HTTP_11 => "1.1".into(),
        Version::HTTP_2 => "2.0".into(),
        Version::HTTP_3 => "3.0".into(),
        other => format!("{other:?}").into(),
    }
}

/// The header that carries a request's id back to the caller (the `request_id` of its logs).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Puts the request's id ([`tracing_actix_web::RequestId`], set by the `TracingLogger` wrapped
/// outside this) into the response's `x-request-id`, on every answer (handlers' errors are
/// answers by then; the request itself is not cloned here, as routing still needs it alone).
pub fn request_id_header<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody,
{
    let request_id = req.extensions().get::<RequestId>().copied();
    let call = srv.call(req);
    async move {
        let mut res = call.await?;
        if let Some(id) = request_id {
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
        }
        Ok(res)
    }
}
