//! The books: every figure buildfund publishes, per cost-model.md. [`attribution`] holds the
//! rules as plain functions over exact rationals; [`costs`] runs them over the stored build
//! steps; [`funds`] adds the donations ([`donations`]) and gives balance, burn and runway;
//! [`plans`] what more money would build and how much of it recent income covers; [`jobs`]
//! splits each jobset line among its jobs and [`job_costs`] gives the month's cost per job.
//! [`store`] keeps the books of closed months and [`days`] the busy seconds of whole days, so
//! a read computes only the edges of its windows from the steps ([`steps`]).
//!
//! The rest of the code reads a month's figures through the functions here ([`month_figures`],
//! [`history`]), once per page or report, rather than module by module.
pub mod attribution;
pub mod costs;
pub mod days;
pub mod donations;
pub mod error;
pub mod expenses;
pub mod funds;
pub mod invoices;
pub mod job_costs;
pub mod jobs;
pub mod ledger;
pub mod opencollective_check;
pub mod plans;
pub mod reconciliation;
pub mod stale;
pub mod steps;
pub mod store;

pub use error::BooksError;

use crate::calendar::Month;
use crate::config::Config;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

/// Every figure of a month as of an instant: what the month's report, page and e-mail show
/// from the books.
#[derive(Clone, Debug)]
pub struct MonthFigures {
    /// `min(at, end of the month)`: the instant the figures are for.
    pub as_of: DateTime<Utc>,
    /// The month has ended at `at`.
    pub complete: bool,
    /// The month's start (the instant the month's gate events begin at).
    pub start: DateTime<Utc>,
    /// Exactly `GET /api/v1/funds?month=…&at=…`'s `funds`.
    pub funds: Vec<funds::FundMonth>,
    /// The month's lines (`GET /api/v1/costs`).
    pub costs: ledger::WindowCosts,
    /// Every (jobset, job) of the month (`GET /api/v1/costs/jobs`, all of them).
    pub jobs: Vec<jobs::JobCost>,
    /// Every fund's plans as of `as_of` (empty when no plan is configured).
    pub plans: Vec<plans::FundPlans>,
    /// The plans whose cover moved in the month.
    pub plan_changes: Vec<plans::PlanChange>,
    pub reconciliation: reconciliation::Reconciliation,
    pub expenses: reconciliation::ExpensesMonth,
}

/// The figures of `month` as of `at`.
pub async fn month_figures(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<MonthFigures, BooksError> {
    let start = month.start();
    let end = month.next().start();
    let as_of = std::cmp::min(at, end);
    let (funds, costs) = funds::funds_month(db, config, month, at).await?;
    let jobs = job_costs::month_job_list(db, config, month, at, &Default::default()).await?;
    let (plans, plan_changes) = if config.plans.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let now = plans::plans_at(db, config, as_of).await?;
        let before = plans::plans_at(db, config, start).await?;
        let changes = plans::plan_changes(&before, &now);
        (now, changes)
    };
    Ok(MonthFigures {
        as_of,
        complete: at >= end,
        start,
        funds,
        costs,
        jobs,
        plans,
        plan_changes,
        reconciliation: reconciliation::reconciliation(db, config, month, at).await?,
        expenses: reconciliation::expenses_of_month(db, config, month).await?,
    })
}

/// The books' part of the funding page as of `at`: the figures of the month of `at`, the
/// history of the 11 months before it (from `ledger_start`), and last month's reconciliation
/// (none when the books began this month).
#[derive(Clone, Debug)]
pub struct FundingFigures {
    pub month: Month,
    pub figures: MonthFigures,
    pub history: Vec<HistoryMonth>,
    pub last_month: Option<reconciliation::Reconciliation>,
}

/// [`FundingFigures`] as of `at`.
pub async fn funding_figures(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
) -> Result<FundingFigures, BooksError> {
    let month = Month::of(at);
    let figures = month_figures(db, config, month, at).await?;
    let (history, last_month) = if month > Month::of(config.ledger_start) {
        let prev = month.prev();
        (
            history(db, config, prev, 11, at).await?,
            Some(reconciliation::reconciliation(db, config, prev, at).await?),
        )
    } else {
        (Vec::new(), None)
    };
    Ok(FundingFigures {
        month,
        figures,
        history,
        last_month,
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
    let first_month = Month::of(config.ledger_start);
    let mut months = Vec::new();
    let mut m = last;
    while months.len() < count.max(1) && (months.is_empty() || m >= first_month) {
        months.push(m);
        m = m.prev();
    }
    months.reverse();
    let mut out = Vec::with_capacity(months.len());
    for m in months {
        let window = ledger::clip(config, m.span(), at);
        let spent = match window {
            Some(w) => costs::window_costs(db, config, w).await?.total_cents(),
            None => 0,
        };
        let raised = match window {
            Some(w) => funds::raised_by_fund(db, config, ledger::ts(w.start), ledger::ts(w.end))
                .await?
                .values()
                .map(|r| r.net_cents)
                .sum(),
            None => 0,
        };
        out.push(HistoryMonth {
            month: m,
            raised_cents: raised,
            spent_cents: spent,
        });
    }
    Ok(out)
}
