//! The public pages: `GET /` (the funding page), `GET /reports` (every month),
//! `GET /reports/YYYY-MM` (a month's transparency report) and `GET /reports/YYYY-MM.csv`.
//!
//! Every figure comes from `buildfund_jobs::report` (the same functions as `/api/v1/funds` and
//! `/api/v1/costs`) and every display string from its view model (`report::view`, which the
//! email and the CLI table read too); this module holds the template structs askama renders
//! (auto-escaped: every name from outside is text, never markup) and the handlers. Pages are
//! served from [`crate::page_cache`] with an ETag and `Last-Modified`; errors are small HTML
//! pages.
use crate::error::ApiError;
use crate::page_cache::{CachedPage, Rendered};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{route, web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use buildfund_jobs::books::donations::PublicDonation;
use buildfund_jobs::books::sponsors::month_donations;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::report::view::{
    report_view, reports_view, FundingView, ReportView, ReportsView,
};
use buildfund_jobs::report::{
    self, funding_page_view, month_csv, month_report, report_months, MonthReport,
};
use buildfund_jobs::Config;
use chrono::{DateTime, SubsecRound, Utc};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

pub use buildfund_jobs::report::view::FRONT_SPONSORS;
/// All-time top sponsors on `/`.
pub const TOP_SPONSORS: usize = 20;
/// Latest donations on `/`.
pub const RECENT_DONATIONS: u64 = 15;

const HTML: &str = "text/html; charset=utf-8";
const CSV: &str = "text/csv; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Errors: small HTML pages.

/// An error answered as a small HTML page (never cached).
pub struct PageError {
    status: StatusCode,
    heading: String,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, heading: impl Into<String>, message: impl Into<String>) -> Self {
        PageError {
            status,
            heading: heading.into(),
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Client {
                status, message, ..
            } => PageError::new(
                status,
                status.canonical_reason().unwrap_or("Error"),
                message,
            ),
            ApiError::Internal(e) => {
                tracing::error!(error.chain = %format_args!("{e:#}"), "page failed");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "This page could not be made; the cause is in the server log.",
                )
            }
            ApiError::Unavailable(m) | ApiError::Busy(m) => {
                tracing::warn!(error.message = %m, "page failed: database unavailable");
                PageError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Figures unavailable",
                    "The database is unavailable; try again shortly.",
                )
            }
        }
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::from(e).into()
    }
}

impl From<buildfund_jobs::report::ReportError> for PageError {
    fn from(e: buildfund_jobs::report::ReportError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        ApiError::internal_while(e, "rendering a page").into()
    }
}

impl From<csv::Error> for PageError {
    fn from(e: csv::Error) -> Self {
        ApiError::internal_while(e, "writing a CSV").into()
    }
}

impl fmt::Debug for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let page = ErrorPage {
            status: self.status.as_u16(),
            heading: &self.heading,
            message: &self.message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{}: {}", self.status, self.message));
        HttpResponse::build(self.status)
            .insert_header((header::CONTENT_TYPE, HTML))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body)
    }
}

/// Now on the server's clock, in whole seconds (the figures' `as_of` is then exactly what
/// `?at=` can ask for).
fn now(state: &AppState) -> DateTime<Utc> {
    state.clock.now().trunc_subsecs(0)
}

// ---------------------------------------------------------------------------------------------
// Pages: each template reads one view of `report::view` (the fields through `Deref`).

#[derive(Template)]
#[template(path = "pages/index.html")]
pub struct IndexPage {
    pub view: FundingView,
    /// No configuration file is loaded (the built-in defaults): the page says where to start.
    pub unconfigured: bool,
}

impl Deref for IndexPage {
    type Target = FundingView;
    fn deref(&self) -> &FundingView {
        &self.view
    }
}

#[derive(Template)]
#[template(path = "pages/report.html")]
pub struct ReportPage(pub ReportView);

impl Deref for ReportPage {
    type Target = ReportView;
    fn deref(&self) -> &ReportView {
        &self.0
    }
}

/// The month's report page (its gate events are `jobs::report::PUBLIC_GATE_EVENTS` only: the
/// outcome of outgoing webhooks and Hydra calls is operators' business, not the public's).
pub fn report_page(
    config: &Config,
    r: &MonthReport,
    donations: &[PublicDonation],
    at: DateTime<Utc>,
) -> ReportPage {
    ReportPage(report_view(r, donations, &report_months(config, at)))
}

#[derive(Template)]
#[template(path = "pages/reports.html")]
pub struct ReportsPage(pub ReportsView);

impl Deref for ReportsPage {
    type Target = ReportsView;
    fn deref(&self) -> &ReportsView {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers.

fn html(body: String, as_of: DateTime<Utc>) -> Rendered {
    Rendered {
        body: body.into_bytes(),
        content_type: HTML,
        as_of,
        disposition: None,
    }
}

async fn cached<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    key: &str,
    compute: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Rendered, PageError>>,
{
    let page: Arc<CachedPage> = state.pages.get_or_compute(key, compute).await?;
    Ok(page.respond(req))
}

/// The public funding page.
#[utoipa::path(
    operation_id = "funding_page",
    tag = "pages",
    responses(
        (status = 200, description = "The funding page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Not modified since the `If-None-Match` or `If-Modified-Since` given."),
        (status = 500, description = "A page: it could not be made; the cause is in the server log.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[route("/", method = "GET", method = "HEAD")]
pub async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    cached(&state, &req, "/", || async {
        // The pool states are refreshed first, so that their reasons quote the same books as
        // the figures beside them (on failure the last snapshot is shown, marked stale).
        let _ = state.gate.refresh(&state.db).await;
        let (at, gate) = (now(&state), state.gate.current());
        let page = IndexPage {
            view: funding_page_view(
                &state.db,
                &state.config,
                at,
                &gate,
                TOP_SPONSORS,
                RECENT_DONATIONS,
            )
            .await?,
            unconfigured: state.config.is_builtin_defaults(),
        };
        Ok(html(page.render()?, page.as_of))
    })
    .await
}

/// Every month with a report, newest first, with what it raised and spent.
#[utoipa::path(
    operation_id = "reports_page",
    tag = "pages",
    responses(
        (status = 200, description = "Every month with a report.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Not modified since the `If-None-Match` or `If-Modified-Since` given."),
        (status = 500, description = "A page: it could not be made; the cause is in the server log.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[route("/reports", method = "GET", method = "HEAD")]
pub async fn reports(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    cached(&state, &req, "/reports", || async {
        let at = now(&state);
        let start = report::first_report_month(&state.db, &state.config, at).await?;
        let months: Vec<Month> = report_months(&state.config, at)
            .into_iter()
            .filter(|m| *m >= start)
            .collect();
        let history = match months.first() {
            Some(&last) => {
                buildfund_jobs::books::history(&state.db, &state.config, last, months.len(), at)
                    .await
                    .map_err(ApiError::from)?
            }
            None => Vec::new(),
        };
        let page = ReportsPage(reports_view(&state.config, &history, at));
        Ok(html(page.render()?, at))
    })
    .await
}

/// `/reports/YYYY-MM` (the page) and `/reports/YYYY-MM.csv` (every cost line and donation).
#[utoipa::path(
    operation_id = "month_report",
    tag = "pages",
    params(("name" = String, Path, description = "`YYYY-MM` (the page) or `YYYY-MM.csv` (every cost line and donation).", example = "2026-10")),
    responses(
        (status = 200, description = "The month's report page, or its CSV.", content(
            (String = "text/html; charset=utf-8"),
            (String = "text/csv; charset=utf-8"),
        )),
        (status = 400, description = "A page: `name` is not a month.", content_type = "text/html; charset=utf-8", body = String),
        (status = 404, description = "A page: no report for that month.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Not modified since the `If-None-Match` or `If-Modified-Since` given."),
        (status = 500, description = "A page: it could not be made; the cause is in the server log.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "A page: the database is unavailable.", content_type = "text/html; charset=utf-8", body = String),
    ),
)]
#[route("/reports/{name}", method = "GET", method = "HEAD")]
pub async fn month(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let name = name.into_inner();
    let (text, csv) = match name.strip_suffix(".csv") {
        Some(m) => (m, true),
        None => (name.as_str(), false),
    };
    let month = Month::parse(text).map_err(|e| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Not a month",
            format!("{e}: a report’s address is /reports/YYYY-MM, such as /reports/2026-10."),
        )
    })?;
    let months = report_months(&state.config, now(&state));
    if !months.contains(&month) {
        let message = match (months.last(), months.first()) {
            (Some(first), Some(last)) => {
                format!("There is no report for {month}: reports go from {first} to {last}.")
            }
            _ => format!("There is no report for {month}: the books have not begun yet."),
        };
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such report",
            message,
        ));
    }
    let key = format!("/reports/{name}");
    cached(&state, &req, &key, || async {
        let at = now(&state);
        let r = month_report(&state.db, &state.config, month, at).await?;
        let donations = month_donations(&state.db, &state.config, month, at)
            .await
            .map_err(ApiError::from)?;
        if csv {
            Ok(Rendered {
                body: month_csv(&r, &donations)?,
                content_type: CSV,
                as_of: r.as_of,
                disposition: Some(format!("attachment; filename=\"buildfund-{month}.csv\"")),
            })
        } else {
            let body = report_page(&state.config, &r, &donations, at).render()?;
            Ok(html(body, r.as_of))
        }
    })
    .await
}
