//! The month's transparency report: the one set of figures the funding page, the report pages,
//! the month's CSV, the sponsor email and the CLI costs table show. Every figure comes from the
//! same functions as the API (`funds::funds_month` for `/api/v1/funds`, its cost lines for
//! `/api/v1/costs`); this module only groups and sorts them, so a presentation never repeats
//! the arithmetic.
//!
//! - this module: the figures ([`month_report`], [`funding_page`], [`history`], …);
//! - [`view`]: the view model every presentation reads (formatted amounts, filtered links,
//!   worded gate events, no admin names), with [`chart`] for the funding page's chart;
//! - [`csv`]: the month's CSV; [`focus`]: the month's costs as a FOCUS 1.0 dataset;
//!   [`table`]: the CLI's costs table.
pub mod chart;
pub mod csv;
pub mod focus;
pub mod format;
pub mod packages;
mod store;
pub mod table;
pub mod view;

pub use self::csv::{month_csv, text_cell, CSV_COLUMNS};

use crate::books::attribution::Line;
use crate::books::costs::UnpricedLine;
use crate::books::donations::PublicDonation;
use crate::books::funds::{FundMonth, Raised};
use crate::books::jobs::JobCost;
use crate::books::machines::MachineCost;
use crate::books::plans::{FundPlans, PlanChange};
use crate::books::reconciliation::{ExpensesMonth, MachineStatus, Reconciliation};
use crate::books::sponsors::Sponsor;
use crate::books::{BooksError, FundingFigures, HistoryMonth, MonthFigures};
use crate::calendar::{Month, Period};
use crate::config::Config;
use crate::gate::Current;
use buildfund_entity::donations;
use buildfund_entity::gate_events::EventKind;
use chrono::{DateTime, Utc};
use packages::PackageCost;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QuerySelect};
use serde::Serialize;
use std::collections::BTreeMap;
use view::FundingView;

/// One pool's cost in the month (the sum of its lines).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolCost {
    pub pool: String,
    pub fund: String,
    pub busy_seconds: i64,
    pub cost_cents: i64,
    pub budget_cents: Option<i64>,
}

/// The gate events a report shows: state changes and admin actions. Never the outcomes of
/// outgoing actions (`webhook_failed`, `hydra_*`): their texts can name internal hosts and
/// webhook URLs, which may carry secrets.
pub const PUBLIC_GATE_EVENTS: &[EventKind] = &[
    EventKind::State,
    EventKind::Pause,
    EventKind::Override,
    EventKind::Lift,
];

/// A gate state change or admin action of the month, as the public sees it: never who made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateEvent {
    pub at: String,
    pub pool: String,
    /// `state`, `pause`, `override`, `lift`, ….
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    /// An override's end.
    pub until: Option<String>,
    /// The reason without admin names ([`view::admin_free`]): a state change's reason quotes
    /// the pause or override in force, which the gate words with the token's name.
    pub reason: String,
}

/// Why a report's figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Books(#[from] BooksError),
    /// A CSV export could not be written.
    #[error("writing a CSV")]
    Csv(#[from] ::csv::Error),
}

/// How many machines of a reconciliation have each status (the funding page's summary of last
/// month). Counted from [`Reconciliation::machines`], so the summary and the report agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub matched: usize,
    pub over: usize,
    pub under: usize,
    pub unbilled: usize,
    /// Machines with `billing = "none"` (never invoiced).
    pub not_billed: usize,
    /// Machines of a month not over yet.
    pub open: usize,
}

impl StatusCounts {
    pub fn of(r: &Reconciliation) -> StatusCounts {
        let mut c = StatusCounts::default();
        for m in &r.machines {
            let n = match m.status {
                MachineStatus::Matched => &mut c.matched,
                MachineStatus::Over => &mut c.over,
                MachineStatus::Under => &mut c.under,
                MachineStatus::Unbilled => &mut c.unbilled,
                MachineStatus::NotBilled => &mut c.not_billed,
                MachineStatus::Open => &mut c.open,
            };
            *n += 1;
        }
        c
    }
}

/// Everything one month's report shows, as of an instant.
#[derive(Clone, Debug, Serialize)]
pub struct MonthReport {
    pub month: Month,
    pub currency: String,
    /// `min(at, end of the month)`: the instant the figures are for.
    pub as_of: DateTime<Utc>,
    /// The month has ended at `at`.
    pub complete: bool,
    /// Exactly `GET /api/v1/funds?month=…&at=…`'s `funds`.
    pub funds: Vec<FundMonth>,
    /// The sum over funds.
    pub raised: Raised,
    /// The sum of every line (`/api/v1/costs`' `total_cents`).
    pub spent_cents: i64,
    pub idle_cents: i64,
    /// Exactly `GET /api/v1/costs?month=…&at=…`'s `lines`.
    pub lines: Vec<Line>,
    pub unpriced: Vec<UnpricedLine>,
    /// Pools by cost, largest first; only pools with lines.
    pub pools: Vec<PoolCost>,
    /// Every configured machine active in the month, by name.
    pub machines: Vec<MachineCost>,
    /// The month's sponsors, largest net first (net > 0 only).
    pub sponsors: Vec<Sponsor>,
    /// Gate state changes and admin actions dated in the month, oldest first
    /// ([`PUBLIC_GATE_EVENTS`] only).
    pub gate_events: Vec<GateEvent>,
    /// Every fund's plans as of `as_of`: exactly `GET /api/v1/plans?at=…`'s `funds` (empty
    /// when no plan is configured).
    pub plans: Vec<FundPlans>,
    /// The plans whose cover moved in the month: `covered_percent` as of `as_of` against the
    /// same at the month's start (the end of the month before), in config order.
    pub plan_changes: Vec<PlanChange>,
    /// Exactly `GET /api/v1/costs/jobs?month=…&at=…`'s jobs, all of them, in its order.
    pub jobs: Vec<JobCost>,
    /// The month's packages ([`packages::packages`]), most expensive first.
    pub packages: Vec<PackageCost>,
    /// Exactly `GET /api/v1/reconciliation?month=…&at=…`: every machine's modeled cost
    /// against the invoices paying for the month, the other expenses by fund, and cash at
    /// `as_of` (the books' balance sits beside it in [`Self::funds`]).
    pub reconciliation: Reconciliation,
    /// Exactly `GET /api/v1/expenses?month=…`: every expense record paid in the month,
    /// classified (invoices of a machine and other expenses of a fund).
    pub expenses: ExpensesMonth,
}

/// The report of `month` as of `at`: the month's figures from the books, then its gate
/// events, then the report assembled from them.
pub async fn month_report(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<MonthReport, ReportError> {
    let period = Period::new(month, at, config.ledger_start);
    let books = crate::books::month_figures(db, config, &period).await?;
    let gate_events = store::public_gate_events(db, &books.period).await?;
    assemble(config, books, gate_events)
}

/// The report of a month from its figures and gate events: no database, no clock.
fn assemble(
    config: &Config,
    books: MonthFigures,
    gate_events: Vec<GateEvent>,
) -> Result<MonthReport, ReportError> {
    let MonthFigures {
        period,
        funds,
        costs,
        machines,
        sponsors,
        jobs,
        plans,
        plan_changes,
        reconciliation,
        expenses,
    } = books;
    let mut raised = Raised::default();
    for f in &funds {
        raised = raised
            .checked_add(Raised {
                gross_cents: f.gross_cents,
                fees_cents: f.fees_cents,
                net_cents: f.net_cents,
            })
            .map_err(BooksError::from)?;
    }
    let pools = pool_costs(config, &costs.lines);
    let over_budget: Vec<&str> = pools
        .iter()
        .filter(|p| p.budget_cents.is_some_and(|b| p.cost_cents > b))
        .map(|p| p.pool.as_str())
        .collect();
    let packages = packages::packages(&jobs, costs.total_cents(), &over_budget);
    Ok(MonthReport {
        month: period.month,
        currency: config.currency.clone(),
        as_of: period.as_of,
        complete: period.complete(),
        funds,
        raised,
        spent_cents: costs.total_cents(),
        idle_cents: costs
            .lines
            .iter()
            .filter(|l| l.idle)
            .map(|l| l.cost_cents)
            .sum(),
        lines: costs.lines,
        unpriced: costs.unpriced,
        pools,
        machines,
        sponsors,
        gate_events,
        plans,
        plan_changes,
        jobs,
        packages,
        reconciliation,
        expenses,
    })
}

/// Pools by cost (largest first, then slug).
pub fn pool_costs(config: &Config, lines: &[Line]) -> Vec<PoolCost> {
    let mut by_pool: BTreeMap<&str, PoolCost> = BTreeMap::new();
    for l in lines {
        let Some(pool) = &l.pool else { continue };
        let e = by_pool.entry(pool).or_insert_with(|| PoolCost {
            pool: pool.clone(),
            fund: l.fund.clone(),
            busy_seconds: 0,
            cost_cents: 0,
            budget_cents: config
                .pools
                .iter()
                .find(|p| &p.slug == pool)
                .and_then(|p| p.monthly_budget_cents),
        });
        e.busy_seconds += l.busy_seconds;
        e.cost_cents += l.cost_cents;
    }
    let mut out: Vec<PoolCost> = by_pool.into_values().collect();
    out.sort_by(|a, b| b.cost_cents.cmp(&a.cost_cents).then(a.pool.cmp(&b.pool)));
    out
}

/// What the public funding page shows: this month's report to `at`, the raised-vs-spent
/// history of the last 12 months (this month last), the all-time top sponsors and the latest
/// donations. This month's history entry is taken from its report, so the two always agree.
#[derive(Clone, Debug, Serialize)]
pub struct FundingPage {
    pub report: MonthReport,
    pub history: Vec<HistoryMonth>,
    pub top_sponsors: Vec<Sponsor>,
    pub recent_donations: Vec<PublicDonation>,
    /// Last month's reconciliation as of `at` (`GET /api/v1/reconciliation?month=…&at=…`),
    /// none when the books began this month.
    pub last_month: Option<Reconciliation>,
}

/// The funding page's figures as of `at` (this month is the month of `at`).
pub async fn funding_page(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
    top: usize,
    recent: u64,
) -> Result<FundingPage, ReportError> {
    let FundingFigures {
        month,
        figures,
        mut history,
        last_month,
        top_sponsors,
        recent_donations,
    } = crate::books::funding_figures(db, config, at, top, recent).await?;
    let gate_events = store::public_gate_events(db, &figures.period).await?;
    let report = assemble(config, figures, gate_events)?;
    history.push(HistoryMonth {
        month,
        raised_cents: report.raised.net_cents,
        spent_cents: report.spent_cents,
    });
    Ok(FundingPage {
        report,
        history,
        top_sponsors,
        recent_donations,
        last_month,
    })
}

/// The funding page as shown as of `at` with the gate snapshot `gate`: its figures
/// ([`funding_page`]), then their view ([`view::funding_view`]).
pub async fn funding_page_view(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
    gate: &Current,
    top: usize,
    recent: u64,
) -> Result<FundingView, ReportError> {
    let page = funding_page(db, config, at, top, recent).await?;
    Ok(view::funding_view(&page, gate))
}

/// The months that have a report at `at`: from the month of `at` back to the month of
/// `ledger_start`, newest first (none before the books begin).
pub fn report_months(config: &Config, at: DateTime<Utc>) -> Vec<Month> {
    let first = Month::of(config.ledger_start);
    let mut m = Month::of(at);
    let mut out = Vec::new();
    if at <= config.ledger_start {
        return out;
    }
    while m >= first {
        out.push(m);
        m = m.prev();
    }
    out
}

/// The first month with anything to report at `at`: the month of the earliest of the first
/// build step, the first donation and the first instant a configured machine costs money,
/// never before `ledger_start`'s month; the month of `at` when there is nothing yet. The index of
/// reports starts there, so a ledger started long before the data (the built-in defaults start
/// at the Unix epoch) does not list decades of empty months.
pub async fn first_report_month(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
) -> Result<Month, ReportError> {
    use buildfund_entity::build_steps;
    let mut first: Option<DateTime<Utc>> = config
        .machines
        .iter()
        .map(|m| m.active_from.unwrap_or(config.ledger_start))
        .min();
    let step: Option<Option<i64>> = build_steps::Entity::find()
        .select_only()
        .column_as(build_steps::Column::StartTs.min(), "first")
        .into_tuple()
        .one(db)
        .await?;
    if let Some(t) = step.flatten().and_then(|s| DateTime::from_timestamp(s, 0)) {
        first = Some(first.map_or(t, |f| f.min(t)));
    }
    let donation: Option<Option<DateTime<Utc>>> = donations::Entity::find()
        .select_only()
        .column_as(donations::Column::OccurredAt.min(), "first")
        .into_tuple()
        .one(db)
        .await?;
    if let Some(t) = donation.flatten() {
        first = Some(first.map_or(t, |f| f.min(t)));
    }
    let first = first.map_or(at, |f| f.max(config.ledger_start).min(at));
    Ok(Month::of(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::machines::machine_costs;
    use crate::books::terms::WindowTerms;

    fn config() -> Config {
        Config::parse(
            r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
default = true
[[pools]]
slug = "cuda"
fund = "general"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "80.00"
[[machines]]
name = "a"
slots = 2
monthly = "120.00"
[[machines]]
name = "b"
hourly = "1.00"
active_from = "2026-03-01"
"#,
            "t",
        )
        .unwrap()
    }

    fn line(machine: &str, pool: Option<&str>, busy: i64, cents: i64) -> Line {
        Line {
            machine: machine.into(),
            jobset: pool.map(|p| format!("nixpkgs:{p}")),
            pool: pool.map(str::to_string),
            fund: "general".into(),
            idle: pool.is_none(),
            busy_seconds: busy,
            cost_cents: cents,
        }
    }

    #[test]
    fn report_months_run_from_now_back_to_the_ledger_start() {
        let c = config();
        let at: DateTime<Utc> = "2026-03-05T10:00:00Z".parse().unwrap();
        let months: Vec<String> = report_months(&c, at)
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(months, ["2026-03", "2026-02", "2026-01"]);
        let before: DateTime<Utc> = "2025-12-31T23:00:00Z".parse().unwrap();
        assert!(report_months(&c, before).is_empty());
    }

    #[test]
    fn pools_sum_their_lines_and_sort_by_cost() {
        let c = config();
        let lines = [
            line("a", Some("cuda"), 100, 7),
            line("a", Some("other"), 50, 9),
            line("a", None, 0, 11),
            line("b", Some("cuda"), 10, 3),
        ];
        let p = pool_costs(&c, &lines);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].pool.as_str(), p[0].cost_cents), ("cuda", 10));
        assert_eq!(p[0].busy_seconds, 110);
        assert_eq!(p[0].budget_cents, Some(8000));
        assert_eq!(
            (p[1].pool.as_str(), p[1].cost_cents, p[1].budget_cents),
            ("other", 9, None)
        );
    }

    #[test]
    fn utilization_is_busy_over_slots_times_active_time() {
        let c = config();
        let feb = Month::parse("2026-02").unwrap();
        let at = Month::parse("2026-03").unwrap().start();
        // February: 28 days; machine a has 2 slots; b is not active yet.
        let lines = [
            line("a", Some("cuda"), 28 * 86400, 60),
            line("a", None, 0, 60),
        ];
        let period = Period::new(feb, at, c.ledger_start);
        let terms = period.window.map(|w| WindowTerms::prepare(&c, w));
        let m = machine_costs(&period, terms.as_ref(), &lines);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].capacity_seconds, 2 * 28 * 86400);
        assert_eq!(m[0].utilization_permille, Some(500));
        assert_eq!(view::utilization_text(m[0].utilization_permille), "50.0 %");
        assert_eq!((m[0].cost_cents, m[0].idle_cents), (120, 60));
        // Mid-March, month to date: both machines, half a day of capacity for b.
        let mar = Month::parse("2026-03").unwrap();
        let at = mar.start() + chrono::Duration::hours(12);
        let period = Period::new(mar, at, c.ledger_start);
        let terms = period.window.map(|w| WindowTerms::prepare(&c, w));
        let m = machine_costs(
            &period,
            terms.as_ref(),
            &[line("b", Some("cuda"), 3 * 3600, 12)],
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].machine, "b");
        assert_eq!(m[1].capacity_seconds, 12 * 3600);
        assert_eq!(m[1].utilization_permille, Some(250));
        assert_eq!(m[0].utilization_permille, Some(0));
    }
}
