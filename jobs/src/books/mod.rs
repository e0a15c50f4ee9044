//! The books: every figure buildfund publishes, per cost-model.md. [`terms`] prepares, once
//! per window, what the rules need of the machines (parts between changes, active spans, exact
//! prices); [`attribution`] holds the rules as plain functions over exact rationals and those
//! prepared terms; [`costs`] runs them over the stored build steps; [`funds`] adds the
//! donations ([`donations`]) and gives balance, burn, runway and the raised-vs-spent history;
//! [`plans`] what more money would build and how much of it recent income covers; [`jobs`]
//! splits each jobset line among its jobs and [`job_costs`] gives the month's cost per job.
//! [`store`] keeps the books of closed months and [`days`] the busy seconds of whole days, so
//! a read computes only the edges of its windows from the steps ([`steps`]).
//!
//! The rest of the code reads a month's figures through the functions here ([`month_figures`],
//! [`funding_figures`], [`history`]), once per page or report, rather than module by module.
//! Below them a figure is read, then computed, then assembled: the facts first (the prepared
//! terms, the stored months and days, the steps), then pure functions over them, then the
//! figures here.
pub mod attribution;
pub mod costs;
pub mod days;
pub mod donations;
pub mod error;
pub mod expenses;
pub mod funds;
pub mod invoices;
pub mod job_costs;
pub mod job_days;
pub mod jobs;
pub mod ledger;
pub mod machines;
pub mod opencollective_check;
pub mod plans;
pub mod reconciliation;
pub mod shared;
pub mod sponsors;
pub mod stale;
pub mod steps;
pub mod store;
pub mod terms;

pub use error::BooksError;

use crate::calendar::{Month, Period};
use crate::config::Config;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

/// Every figure of a month as of an instant: what the month's report, page and e-mail show
/// from the books.
#[derive(Clone, Debug)]
pub struct MonthFigures {
    /// The month and the instant the figures are for, with its bounds and windows.
    pub period: Period,
    /// Exactly `GET /api/v1/funds?month=…&at=…`'s `funds`.
    pub funds: Vec<funds::FundMonth>,
    /// The month's lines (`GET /api/v1/costs`).
    pub costs: ledger::WindowCosts,
    /// Every configured machine with an active part in the month, with its use of capacity.
    pub machines: Vec<machines::MachineCost>,
    /// The month's sponsors, largest net first (net > 0 only).
    pub sponsors: Vec<sponsors::Sponsor>,
    /// Every (jobset, job) of the month (`GET /api/v1/costs/jobs`, all of them).
    pub jobs: Vec<jobs::JobCost>,
    /// Every fund's plans as of `as_of` (empty when no plan is configured).
    pub plans: Vec<plans::FundPlans>,
    /// The plans whose cover moved in the month.
    pub plan_changes: Vec<plans::PlanChange>,
    pub reconciliation: reconciliation::Reconciliation,
    pub expenses: reconciliation::ExpensesMonth,
}

/// The figures of `period`'s month as of its instant.
pub async fn month_figures(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<MonthFigures, BooksError> {
    let terms = period
        .window
        .map(|w| terms::WindowTerms::prepare(config, w));
    let (funds, costs) = funds::funds_month(db, config, period.month, period.at).await?;
    let machines = machines::machine_costs(period, terms.as_ref(), &costs.lines);
    let jobs =
        job_costs::month_job_list(db, config, period, terms.as_ref(), &Default::default()).await?;
    let (plans, plan_changes) = if config.plans.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let now = plans::plans_at(db, config, period.as_of).await?;
        let before = plans::plans_at(db, config, period.start).await?;
        let changes = plans::plan_changes(&before, &now);
        (now, changes)
    };
    let (reconciliation, expenses) =
        reconciliation::reconciliation_and_expenses(db, config, period, &costs).await?;
    let (from, to) = sponsors::month_bounds(period);
    let sponsors = sponsors::sponsors(db, from, to, None).await?;
    Ok(MonthFigures {
        period: *period,
        funds,
        costs,
        machines,
        sponsors,
        jobs,
        plans,
        plan_changes,
        reconciliation,
        expenses,
    })
}

/// The books' part of the funding page as of `at`: the figures of the month of `at`, the
/// history of the 11 months before it (from `ledger_start`), last month's reconciliation
/// (none when the books began this month), the top sponsors and the latest donations.
#[derive(Clone, Debug)]
pub struct FundingFigures {
    pub month: Month,
    pub figures: MonthFigures,
    pub history: Vec<HistoryMonth>,
    pub last_month: Option<reconciliation::Reconciliation>,
    /// The `top` sponsors of all time (`[ledger_start, at)`).
    pub top_sponsors: Vec<sponsors::Sponsor>,
    /// The `recent` latest donation records before `at`, newest first.
    pub recent_donations: Vec<donations::PublicDonation>,
}

/// [`FundingFigures`] as of `at`, with the `top` sponsors and the `recent` latest donations.
pub async fn funding_figures(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
    top: usize,
    recent: u64,
) -> Result<FundingFigures, BooksError> {
    let period = Period::of(at, config.ledger_start);
    let month = period.month;
    let figures = month_figures(db, config, &period).await?;
    let top_sponsors = sponsors::top_sponsors(db, config, at, top).await?;
    let recent_donations = sponsors::recent_donations(db, config, at, recent).await?;
    let (history, last_month) = if month > Month::of(config.ledger_start) {
        // Last month's lines are those of the history's last month.
        let prev = period.prev(config.ledger_start);
        let (history, prev_costs) = funds::history(db, config, prev.month, 11, at).await?;
        let last = reconciliation::reconciliation_of(db, config, &prev, &prev_costs).await?;
        (history, Some(last))
    } else {
        (Vec::new(), None)
    };
    Ok(FundingFigures {
        month,
        figures,
        history,
        last_month,
        top_sponsors,
        recent_donations,
    })
}

/// One month of the raised-vs-spent history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HistoryMonth {
    pub month: Month,
    /// Net raised over every fund.
    pub raised_cents: i64,
    pub spent_cents: i64,
}

/// The `count` months ending with `last` (oldest first), each as of `at`; months before
/// `ledger_start` are left out.
pub async fn history(
    db: &impl ConnectionTrait,
    config: &Config,
    last: Month,
    count: usize,
    at: DateTime<Utc>,
) -> Result<Vec<HistoryMonth>, BooksError> {
    Ok(funds::history(db, config, last, count, at).await?.0)
}
