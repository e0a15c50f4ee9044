//! The public pages: `GET /` (the funding page), `GET /reports` (every month),
//! `GET /reports/YYYY-MM` (a month's transparency report) and `GET /reports/YYYY-MM.csv`.
//!
//! Every figure comes from `buildfund_jobs::report` (the same functions as `/api/v1/funds` and
//! `/api/v1/costs`); this module only turns them into display strings and askama renders them
//! (auto-escaped: every name from outside is text, never markup). Pages are served from
//! [`crate::page_cache`] with an ETag and `Last-Modified`; errors are small HTML pages.
use crate::error::ApiError;
use crate::page_cache::{CachedPage, Rendered};
use crate::startup::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{route, web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use buildfund_jobs::books::costs::UnpricedLine;
use buildfund_jobs::books::donations::PublicDonation;
use buildfund_jobs::books::funds::FundMonth;
use buildfund_jobs::calendar::{rfc3339, Month};
use buildfund_jobs::gate::{Current, State};
use buildfund_jobs::money::{format_cents, group_thousands, hours};
use buildfund_jobs::report::{
    self, funding_page, month_csv, month_donations, month_report, report_months, FundingPage,
    HistoryMonth, MonthReport, Sponsor,
};
use buildfund_jobs::Config;
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Arc;

/// This month's sponsors listed on `/` (the month's report lists them all).
pub const FRONT_SPONSORS: usize = 100;
/// All-time top sponsors on `/`.
pub const TOP_SPONSORS: usize = 20;
/// Latest donations on `/`.
pub const RECENT_DONATIONS: u64 = 15;

const HTML: &str = "text/html; charset=utf-8";
const CSV: &str = "text/csv; charset=utf-8";

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

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
                tracing::error!(error.cause_chain = ?e, error.message = %e, "page failed");
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

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("rendering a page")).into()
    }
}

impl From<csv::Error> for PageError {
    fn from(e: csv::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("writing a CSV")).into()
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

// ---------------------------------------------------------------------------------------------
// Display values.

/// An amount: exact cents (for `data-value`) and its text ("1,500.00").
pub struct MoneyView {
    pub cents: i64,
    pub text: String,
}

pub fn money(cents: i64) -> MoneyView {
    MoneyView {
        cents,
        text: group_thousands(&format_cents(cents)),
    }
}

/// "1234567.50" -> "1,234,567.50".
pub fn month_label(m: Month) -> String {
    format!("{} {}", MONTH_NAMES[(m.month - 1) as usize], m.year)
}

fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Now, in whole seconds (the figures' `as_of` is then exactly what `?at=` can ask for).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now is a valid instant")
}

/// A name and, when it is a web address, a link. Profile links come from outside: only
/// `http(s)://` ones become links, so a `javascript:` "profile" stays inert.
pub struct SponsorView {
    pub name: String,
    pub url: Option<String>,
}

fn person(name: &str, url: Option<&str>) -> SponsorView {
    let url = url
        .filter(|u| {
            let lower = u.to_ascii_lowercase();
            lower.starts_with("https://") || lower.starts_with("http://")
        })
        .map(str::to_string);
    SponsorView {
        name: name.to_string(),
        url,
    }
}

fn sponsor_view(s: &Sponsor) -> SponsorView {
    person(&s.name, s.url.as_deref())
}

pub struct FundView {
    pub slug: String,
    pub name: String,
    pub gross: MoneyView,
    pub fees: MoneyView,
    pub net: MoneyView,
    pub spent: MoneyView,
    pub balance: MoneyView,
    pub goal: Option<MoneyView>,
    /// The progress bar's width, 0..=100.
    pub progress_bar: i64,
    pub progress_text: String,
    pub runway_days: Option<i64>,
    pub runway_text: String,
}

fn fund_view(f: &FundMonth) -> FundView {
    let (progress_bar, progress_text) = match f.goal_cents {
        Some(goal) if goal > 0 => {
            let pct = (i128::from(f.net_cents) * 100 / i128::from(goal)) as i64;
            let text = if f.net_cents >= goal {
                format!("Goal reached: {pct} % of the goal")
            } else {
                format!("{pct} % of the goal")
            };
            (pct.clamp(0, 100), text)
        }
        _ => (0, String::new()),
    };
    let runway_text = match f.runway_days {
        Some(0) => "none: the balance is used up".to_string(),
        Some(1) => "1 day at the last 30 days’ spending".to_string(),
        Some(d) => format!(
            "{} days at the last 30 days’ spending",
            group_thousands(&d.to_string())
        ),
        None => "no spending in the last 30 days".to_string(),
    };
    FundView {
        slug: f.slug.clone(),
        name: f.name.clone(),
        gross: money(f.gross_cents),
        fees: money(f.fees_cents),
        net: money(f.net_cents),
        spent: money(f.spent_cents),
        balance: money(f.balance_cents),
        goal: f.goal_cents.map(money),
        progress_bar,
        progress_text,
        runway_days: f.runway_days,
        runway_text,
    }
}

pub struct PoolView {
    pub pool: String,
    pub fund: String,
    pub busy_hours: String,
    pub cost: MoneyView,
    pub budget: Option<MoneyView>,
}

pub struct MachineView {
    pub machine: String,
    pub busy_hours: String,
    pub capacity_hours: String,
    pub utilization: String,
    pub cost: MoneyView,
    pub idle: MoneyView,
}

pub struct UnpricedView {
    pub machine: String,
    pub jobset: String,
    pub busy_hours: String,
}

/// What the funding page and a report have in common (`_funds.html`, `_costs.html`).
pub struct Figures {
    pub month: String,
    pub month_label: String,
    pub currency: String,
    pub as_of: String,
    pub as_of_text: String,
    pub funds: Vec<FundView>,
    pub raised: MoneyView,
    pub spent: MoneyView,
    pub idle: MoneyView,
    pub pools: Vec<PoolView>,
    pub machines: Vec<MachineView>,
    pub unpriced: Vec<UnpricedView>,
}

fn figures(r: &MonthReport) -> Figures {
    Figures {
        month: r.month.to_string(),
        month_label: month_label(r.month),
        currency: r.currency.clone(),
        as_of: rfc3339(r.as_of),
        as_of_text: time_text(r.as_of),
        funds: r.funds.iter().map(fund_view).collect(),
        raised: money(r.raised.net_cents),
        spent: money(r.spent_cents),
        idle: money(r.idle_cents),
        pools: r
            .pools
            .iter()
            .map(|p| PoolView {
                pool: p.pool.clone(),
                fund: p.fund.clone(),
                busy_hours: hours(p.busy_seconds),
                cost: money(p.cost_cents),
                budget: p.budget_cents.map(money),
            })
            .collect(),
        machines: r
            .machines
            .iter()
            .map(|m| MachineView {
                machine: m.machine.clone(),
                busy_hours: hours(m.busy_seconds),
                capacity_hours: hours(m.capacity_seconds),
                utilization: m.utilization_text(),
                cost: money(m.cost_cents),
                idle: money(m.idle_cents),
            })
            .collect(),
        unpriced: r.unpriced.iter().map(unpriced_view).collect(),
    }
}

fn unpriced_view(u: &UnpricedLine) -> UnpricedView {
    UnpricedView {
        machine: u.machine.clone(),
        jobset: u.jobset.clone(),
        busy_hours: hours(u.busy_seconds),
    }
}

pub struct DonationView {
    pub at: String,
    pub date: String,
    pub contributor: SponsorView,
    pub fund: String,
    pub refund: bool,
    pub gross: MoneyView,
    pub fees: MoneyView,
    pub net: MoneyView,
}

fn donation_view(d: &PublicDonation) -> DonationView {
    DonationView {
        at: d.occurred_at.clone(),
        date: d
            .occurred_at
            .get(..10)
            .unwrap_or(&d.occurred_at)
            .to_string(),
        contributor: person(&d.contributor.name, d.contributor.url.as_deref()),
        fund: d.fund.clone(),
        refund: d.gross_cents < 0 || d.refund_of.is_some(),
        gross: money(d.gross_cents),
        fees: money(d.fees_cents),
        net: money(d.net_cents),
    }
}

pub struct GateView {
    pub pool: String,
    pub state: &'static str,
    /// Closed, but allowed by an admin override.
    pub overridden: bool,
    pub reason: String,
}

/// Every pool's gate from the in-memory snapshot, and a note when it is missing or stale.
fn gate_views(gate: &Current) -> (Vec<GateView>, Option<String>) {
    let Some(snapshot) = &gate.snapshot else {
        return (
            Vec::new(),
            Some("The pool states have not been computed yet.".into()),
        );
    };
    let views = snapshot
        .pools
        .values()
        .map(|g| GateView {
            pool: g.pool.clone(),
            state: g.state.as_str(),
            overridden: g.state == State::Closed && g.allow,
            reason: g.reason.clone(),
        })
        .collect();
    let note = gate.stale.then(|| {
        format!(
            "These states could not be refreshed since {}.",
            time_text(snapshot.at)
        )
    });
    (views, note)
}

// ---------------------------------------------------------------------------------------------
// The chart: inline SVG scaled here with integer arithmetic.

pub struct BarView {
    pub month: String,
    pub label: String,
    pub short: String,
    /// The year under January and under the first bar.
    pub year: Option<i32>,
    pub raised: MoneyView,
    pub spent: MoneyView,
    pub difference: MoneyView,
    pub x_raised: i64,
    pub x_spent: i64,
    pub x_label: i64,
    pub y_raised: i64,
    pub y_spent: i64,
    pub h_raised: i64,
    pub h_spent: i64,
}

pub struct ChartView {
    pub width: i64,
    pub height: i64,
    pub left: i64,
    pub right: i64,
    pub top: i64,
    pub baseline: i64,
    pub bar_width: i64,
    pub max_label: String,
    pub desc: String,
    pub bars: Vec<BarView>,
}

pub fn chart(history: &[HistoryMonth]) -> ChartView {
    let (width, height, left, right, top, baseline) =
        (720i64, 260i64, 72i64, 712i64, 14i64, 214i64);
    let n = history.len().max(1) as i64;
    let group = (right - left) / n;
    let bar_width = ((group - 10) / 2).clamp(2, 26);
    let max = history
        .iter()
        .flat_map(|h| [h.raised_cents, h.spent_cents])
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |v: i64| -> i64 {
        (i128::from(v.max(0)) * i128::from(baseline - top) / i128::from(max)) as i64
    };
    let mut desc = String::new();
    let bars = history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let gx = left + i as i64 * group;
            let x_raised = gx + (group - 2 * bar_width - 2) / 2;
            let (h_raised, h_spent) = (scale(h.raised_cents), scale(h.spent_cents));
            let label = month_label(h.month);
            if !desc.is_empty() {
                desc.push_str("; ");
            }
            desc.push_str(&format!(
                "{label}: raised {}, spent {}",
                money(h.raised_cents).text,
                money(h.spent_cents).text
            ));
            BarView {
                month: h.month.to_string(),
                short: MONTH_NAMES[(h.month.month - 1) as usize][..3].to_string(),
                year: (i == 0 || h.month.month == 1).then_some(h.month.year),
                label,
                raised: money(h.raised_cents),
                spent: money(h.spent_cents),
                difference: money(h.raised_cents - h.spent_cents),
                x_raised,
                x_spent: x_raised + bar_width + 2,
                x_label: gx + group / 2,
                y_raised: baseline - h_raised,
                y_spent: baseline - h_spent,
                h_raised,
                h_spent,
            }
        })
        .collect();
    ChartView {
        width,
        height,
        left,
        right,
        top,
        baseline,
        bar_width,
        max_label: money(max).text,
        desc,
        bars,
    }
}

// ---------------------------------------------------------------------------------------------
// Pages.

#[derive(Template)]
#[template(path = "pages/index.html")]
pub struct IndexPage {
    pub fig: Figures,
    pub chart: ChartView,
    pub gates: Vec<GateView>,
    pub gate_note: Option<String>,
    pub sponsors: Vec<SponsorView>,
    pub sponsors_more: usize,
    pub top_sponsors: Vec<SponsorView>,
    pub recent: Vec<DonationView>,
}

/// The funding page's view of `data` with the gate snapshot `gate`.
pub fn index_page(data: &FundingPage, gate: &Current) -> IndexPage {
    let r = &data.report;
    let (gates, gate_note) = gate_views(gate);
    IndexPage {
        fig: figures(r),
        chart: chart(&data.history),
        gates,
        gate_note,
        sponsors: r
            .sponsors
            .iter()
            .take(FRONT_SPONSORS)
            .map(sponsor_view)
            .collect(),
        sponsors_more: r.sponsors.len().saturating_sub(FRONT_SPONSORS),
        top_sponsors: data.top_sponsors.iter().map(sponsor_view).collect(),
        recent: data.recent_donations.iter().map(donation_view).collect(),
    }
}

pub struct LineView {
    pub machine: String,
    pub jobset: Option<String>,
    /// The jobset, or `idle`: the line's key in `data-figure`.
    pub key: String,
    pub pool: String,
    pub fund: String,
    pub busy_hours: String,
    pub cost: MoneyView,
}

pub struct EventView {
    pub at: String,
    pub at_text: String,
    pub pool: String,
    pub what: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "pages/report.html")]
pub struct ReportPage {
    pub fig: Figures,
    pub complete: bool,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub lines: Vec<LineView>,
    pub sponsors: Vec<SponsorView>,
    pub donations: Vec<DonationView>,
    pub gate_events: Vec<EventView>,
}

/// The month's report page (its gate events are `jobs::report::PUBLIC_GATE_EVENTS` only: the
/// outcome of outgoing webhooks and Hydra calls is operators' business, not the public's).
pub fn report_page(
    config: &Config,
    r: &MonthReport,
    donations: &[PublicDonation],
    at: DateTime<Utc>,
) -> ReportPage {
    let months = report_months(config, at);
    let prev = r.month.prev();
    let next = r.month.next();
    ReportPage {
        fig: figures(r),
        complete: r.complete,
        prev: months.contains(&prev).then(|| prev.to_string()),
        next: months.contains(&next).then(|| next.to_string()),
        lines: r
            .lines
            .iter()
            .map(|l| LineView {
                machine: l.machine.clone(),
                jobset: l.jobset.clone(),
                key: l.jobset.clone().unwrap_or_else(|| "idle".into()),
                pool: l.pool.clone().unwrap_or_else(|| "–".into()),
                fund: l.fund.clone(),
                busy_hours: hours(l.busy_seconds),
                cost: money(l.cost_cents),
            })
            .collect(),
        sponsors: r.sponsors.iter().map(sponsor_view).collect(),
        donations: donations.iter().map(donation_view).collect(),
        gate_events: r
            .gate_events
            .iter()
            .map(|e| EventView {
                at: e.at.clone(),
                at_text: DateTime::parse_from_rfc3339(&e.at)
                    .map(|t| time_text(t.with_timezone(&Utc)))
                    .unwrap_or_else(|_| e.at.clone()),
                pool: e.pool.clone(),
                what: match e.kind.as_str() {
                    "state" => format!(
                        "{} → {}",
                        e.from_state.as_deref().unwrap_or("new"),
                        e.to_state.as_deref().unwrap_or("?")
                    ),
                    "pause" => "paused by an admin".into(),
                    "override" => "allowed by an admin override".into(),
                    "lift" => "pause or override lifted".into(),
                    other => other.into(),
                },
                reason: e.reason.clone(),
            })
            .collect(),
    }
}

pub struct MonthRow {
    pub month: String,
    pub label: String,
    pub complete: bool,
    pub raised: MoneyView,
    pub spent: MoneyView,
}

#[derive(Template)]
#[template(path = "pages/reports.html")]
pub struct ReportsPage {
    pub currency: String,
    pub as_of: String,
    pub as_of_text: String,
    pub months: Vec<MonthRow>,
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
#[route("/", method = "GET", method = "HEAD")]
pub async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    cached(&state, &req, "/", || async {
        // The pool states are refreshed first, so that their reasons quote the same books as
        // the figures beside them (on failure the last snapshot is shown, marked stale).
        let _ = state.gate.refresh(&state.db).await;
        let at = now();
        let data =
            funding_page(&state.db, &state.config, at, TOP_SPONSORS, RECENT_DONATIONS).await?;
        let body = index_page(&data, &state.gate.current()).render()?;
        Ok(html(body, data.report.as_of))
    })
    .await
}

/// Every month with a report, newest first, with what it raised and spent.
#[route("/reports", method = "GET", method = "HEAD")]
pub async fn reports(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    cached(&state, &req, "/reports", || async {
        let at = now();
        let start = report::first_report_month(&state.db, &state.config, at).await?;
        let months: Vec<Month> = report_months(&state.config, at)
            .into_iter()
            .filter(|m| *m >= start)
            .collect();
        let mut rows = Vec::with_capacity(months.len());
        if let Some(&last) = months.first() {
            let history = report::history(&state.db, &state.config, last, months.len(), at).await?;
            for h in history.iter().rev() {
                rows.push(MonthRow {
                    month: h.month.to_string(),
                    label: month_label(h.month),
                    complete: h.month < last,
                    raised: money(h.raised_cents),
                    spent: money(h.spent_cents),
                });
            }
        }
        let page = ReportsPage {
            currency: state.config.currency.clone(),
            as_of: rfc3339(at),
            as_of_text: time_text(at),
            months: rows,
        };
        Ok(html(page.render()?, at))
    })
    .await
}

/// `/reports/YYYY-MM` (the page) and `/reports/YYYY-MM.csv` (every cost line and donation).
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
    let months = report_months(&state.config, now());
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
        let at = now();
        let r = month_report(&state.db, &state.config, month, at).await?;
        let donations = month_donations(&state.db, &state.config, month, at).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(money(0).text, "0.00");
        assert_eq!(money(123_456).text, "1,234.56");
        assert_eq!(money(-100_000_000).text, "-1,000,000.00");
        assert_eq!(money(99_999).text, "999.99");
        assert_eq!(hours(5400), "1.5");
        assert_eq!(hours(3_600_000), "1,000.0");
    }

    #[test]
    fn only_web_profile_links_become_links() {
        assert_eq!(
            person("a", Some("https://opencollective.com/a"))
                .url
                .as_deref(),
            Some("https://opencollective.com/a")
        );
        assert!(person("b", Some("javascript:alert(1)")).url.is_none());
        assert!(person("c", Some(" data:text/html,x")).url.is_none());
    }

    #[test]
    fn chart_bars_are_scaled_to_the_largest_figure() {
        let m = |s| Month::parse(s).unwrap();
        let c = chart(&[
            HistoryMonth {
                month: m("2026-10"),
                raised_cents: 10_000,
                spent_cents: 5_000,
            },
            HistoryMonth {
                month: m("2026-11"),
                raised_cents: -300,
                spent_cents: 2_500,
            },
        ]);
        let full = c.baseline - c.top;
        assert_eq!(c.bars[0].h_raised, full);
        assert_eq!(c.bars[0].h_spent, full / 2);
        assert_eq!(c.bars[0].y_raised, c.top);
        assert_eq!(c.bars[1].h_raised, 0, "a negative month draws no bar");
        assert_eq!(c.bars[1].h_spent, full / 4);
        assert_eq!(c.bars[1].raised.text, "-3.00");
        assert_eq!(c.max_label, "100.00");
        assert!(c.bars[1].x_raised > c.bars[0].x_spent);
        assert_eq!(c.bars[0].year, Some(2026));
        assert_eq!(c.bars[1].year, None);
    }
}
