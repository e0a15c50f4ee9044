//! Rendering from `templates/`: the report (a plain-text and an HTML part), the confirmation
//! email and the small subscription pages. Templates are askama (compiled in, checked at build
//! time); `.html` templates escape every value, `.txt` ones do not. The view structs below
//! only format what [`crate::report::month_report`] computed: no arithmetic happens here.
use crate::money::format_cents;
use crate::report::MonthReport;
use askama::Template;

/// One fund's line in the report.
#[derive(Clone, Debug)]
pub struct FundRow {
    pub name: String,
    pub gross: String,
    pub fees: String,
    pub net: String,
    pub spent: String,
    pub balance: String,
    pub runway: String,
}

#[derive(Clone, Debug)]
pub struct PoolRow {
    pub pool: String,
    pub fund: String,
    pub hours: String,
    pub cost: String,
    pub budget: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MachineRow {
    pub machine: String,
    pub hours: String,
    pub utilization: String,
    pub cost: String,
    pub idle: String,
}

#[derive(Clone, Debug)]
pub struct SponsorRow {
    pub name: String,
    /// Only http(s) profile links are shown.
    pub url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EventRow {
    pub day: String,
    pub pool: String,
    pub what: String,
    pub reason: String,
}

/// Everything the report templates show, formatted.
#[derive(Clone, Debug)]
pub struct ReportView {
    pub month: String,
    pub month_name: String,
    pub currency: String,
    pub complete: bool,
    pub as_of: String,
    pub gross: String,
    pub fees: String,
    pub net: String,
    pub spent: String,
    pub idle: String,
    pub balance: String,
    pub funds: Vec<FundRow>,
    pub pools: Vec<PoolRow>,
    pub machines: Vec<MachineRow>,
    pub sponsors: Vec<SponsorRow>,
    pub events: Vec<EventRow>,
    pub public_url: String,
    pub unsubscribe_url: String,
}

use crate::money::hours;

fn runway(days: Option<i64>) -> String {
    match days {
        Some(1) => "1 day".into(),
        Some(d) => format!("{d} days"),
        None => "no spending".into(),
    }
}

fn month_name(report: &MonthReport) -> String {
    report.month.start().format("%B %Y").to_string()
}

impl ReportView {
    pub fn new(report: &MonthReport, public_url: &str, unsubscribe_url: &str) -> ReportView {
        let funds: Vec<FundRow> = report
            .funds
            .iter()
            .map(|f| FundRow {
                name: f.name.clone(),
                gross: format_cents(f.gross_cents),
                fees: format_cents(f.fees_cents),
                net: format_cents(f.net_cents),
                spent: format_cents(f.spent_cents),
                balance: format_cents(f.balance_cents),
                runway: runway(f.runway_days),
            })
            .collect();
        ReportView {
            month: report.month.to_string(),
            month_name: month_name(report),
            currency: report.currency.clone(),
            complete: report.complete,
            as_of: report.as_of.format("%Y-%m-%d %H:%M UTC").to_string(),
            gross: format_cents(report.raised.gross_cents),
            fees: format_cents(report.raised.fees_cents),
            net: format_cents(report.raised.net_cents),
            spent: format_cents(report.spent_cents),
            idle: format_cents(report.idle_cents),
            balance: format_cents(report.funds.iter().map(|f| f.balance_cents).sum()),
            funds,
            pools: report
                .pools
                .iter()
                .map(|p| PoolRow {
                    pool: p.pool.clone(),
                    fund: p.fund.clone(),
                    hours: hours(p.busy_seconds),
                    cost: format_cents(p.cost_cents),
                    budget: p.budget_cents.map(format_cents),
                })
                .collect(),
            machines: report
                .machines
                .iter()
                .map(|m| MachineRow {
                    machine: m.machine.clone(),
                    hours: hours(m.busy_seconds),
                    utilization: m.utilization_text(),
                    cost: format_cents(m.cost_cents),
                    idle: format_cents(m.idle_cents),
                })
                .collect(),
            sponsors: report
                .sponsors
                .iter()
                .map(|s| SponsorRow {
                    name: s.name.clone(),
                    url: s
                        .url
                        .clone()
                        .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                })
                .collect(),
            events: report
                .gate_events
                .iter()
                .map(|e| EventRow {
                    day: e.at.get(..10).unwrap_or(&e.at).to_string(),
                    pool: e.pool.clone(),
                    what: match (&e.from_state, &e.to_state) {
                        (Some(a), Some(b)) => format!("{a} → {b}"),
                        (None, Some(b)) => format!("{} → {b}", e.kind),
                        _ => e.kind.clone(),
                    },
                    reason: e.reason.clone(),
                })
                .collect(),
            public_url: public_url.to_string(),
            unsubscribe_url: unsubscribe_url.to_string(),
        }
    }

    pub fn subject(&self) -> String {
        format!(
            "{}: raised {} {}, spent {} {}",
            self.month_name, self.net, self.currency, self.spent, self.currency
        )
    }
}

#[derive(Template)]
#[template(path = "email/report.txt")]
struct ReportText<'a> {
    r: &'a ReportView,
}

#[derive(Template)]
#[template(path = "email/report.html")]
struct ReportHtml<'a> {
    r: &'a ReportView,
}

/// The two parts of one report email.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn report(view: &ReportView) -> Result<Rendered, askama::Error> {
    Ok(Rendered {
        subject: view.subject(),
        text: ReportText { r: view }.render()?,
        html: ReportHtml { r: view }.render()?,
    })
}

#[derive(Template)]
#[template(path = "email/confirm.txt")]
struct ConfirmText<'a> {
    confirm_url: &'a str,
    public_url: &'a str,
    hours: i64,
}

#[derive(Template)]
#[template(path = "email/confirm.html")]
struct ConfirmHtml<'a> {
    confirm_url: &'a str,
    public_url: &'a str,
    hours: i64,
}

pub fn confirmation(confirm_url: &str, public_url: &str) -> Result<Rendered, askama::Error> {
    let hours = super::links::CONFIRM_TTL_SECONDS / 3600;
    Ok(Rendered {
        subject: "Confirm your subscription to the build farm's monthly report".into(),
        text: ConfirmText {
            confirm_url,
            public_url,
            hours,
        }
        .render()?,
        html: ConfirmHtml {
            confirm_url,
            public_url,
            hours,
        }
        .render()?,
    })
}

/// A small HTML page answering a subscription request (`templates/subscribe/page.html`).
#[derive(Template)]
#[template(path = "subscribe/page.html")]
pub struct Page {
    pub title: String,
    pub paragraphs: Vec<String>,
    /// A button that POSTs here (the unsubscribe confirmation), with its label.
    pub form: Option<(String, String)>,
    pub public_url: String,
}

impl Page {
    pub fn new(title: impl Into<String>, paragraphs: &[&str], public_url: &str) -> Page {
        Page {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            form: None,
            public_url: public_url.to_string(),
        }
    }

    pub fn html(&self) -> String {
        self.render()
            .unwrap_or_else(|e| format!("<!doctype html><title>error</title><p>{e}</p>"))
    }
}
