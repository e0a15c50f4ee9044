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
use actix_web::{Error, HttpMessage};
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

impl RootSpanBuilder for BuildfundRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(request, caller = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
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
