//! The month's cost per job as `GET /api/v1/costs/jobs` and `buildfund costs --jobs` give it:
//! a closed month's jobs from the store when it holds them fresh, the open month (or a month
//! up to `at`) from the build steps ([`super::jobs::window_jobs`]).
use crate::books::jobs::{filtered_window_jobs, load_rows, window_jobs, JobCost};
use crate::books::store::stored_month;
use crate::books::terms::WindowTerms;
use crate::books::BooksError;
use crate::calendar::{rfc3339, Month, Period};
use crate::config::Config;
use buildfund_entity::book_months;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde::Serialize;

use crate::bounds::{At, Limit};
pub use crate::bounds::{DEFAULT_LIMIT, MAX_LIMIT};

/// Which jobs to list: of one jobset (`project:jobset`), of one pool, at most `limit`
/// (`None`: all).
#[derive(Clone, Debug, Default)]
pub struct JobsFilter {
    pub jobset: Option<String>,
    pub pool: Option<String>,
    pub limit: Option<Limit>,
}

/// The answer of `GET /api/v1/costs/jobs`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct JobsReport {
    pub month: String,
    pub currency: String,
    pub as_of: String,
    /// The sum over every matching job, whatever the limit.
    pub total_cents: i64,
    /// How many jobs match (the list may be cut by the limit).
    pub matched: usize,
    pub jobs: Vec<JobCost>,
}

/// Every (jobset, job) of the month as of `at` matching `filter`'s jobset and pool, by cost
/// descending, then jobset and job ascending (all of them, whatever the limit). `terms` are
/// the machines' terms prepared for `period`'s window (`None` when it has none).
pub async fn month_job_list(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
    terms: Option<&WindowTerms<'_>>,
    filter: &JobsFilter,
) -> Result<Vec<JobCost>, BooksError> {
    let (Some(window), Some(terms)) = (period.window, terms) else {
        return Ok(Vec::new());
    };
    let (jobset, pool) = (filter.jobset.as_deref(), filter.pool.as_deref());
    let mut jobs = None;
    if period.book == Some(window) {
        if let Some(m) = stored_month(db, config, period.month, false, false).await? {
            let rows = load_rows(db, m.id, jobset, pool).await?;
            // Replaced meanwhile (its jobs went with it): compute instead.
            if book_months::Entity::find_by_id(m.id)
                .one(db)
                .await?
                .is_some()
            {
                jobs = Some(rows);
            }
        }
    }
    let mut jobs = match jobs {
        Some(j) => j,
        None if jobset.is_none() && pool.is_none() => window_jobs(db, config, terms)
            .await?
            .into_values()
            .collect(),
        // The filter goes into the queries: the other jobsets' jobs are not computed.
        None => filtered_window_jobs(db, config, terms, jobset, pool)
            .await?
            .into_values()
            .collect(),
    };
    jobs.sort_by(|a, b| {
        b.cost_cents
            .cmp(&a.cost_cents)
            .then_with(|| a.jobset.cmp(&b.jobset))
            .then_with(|| a.job.cmp(&b.job))
    });
    Ok(jobs)
}

/// [`month_job_list`] with its total, cut to the filter's limit.
pub async fn month_jobs(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: At,
    filter: &JobsFilter,
) -> Result<JobsReport, BooksError> {
    let at = at.instant();
    let period = Period::new(month, at, config.ledger_start);
    let terms = period.window.map(|w| WindowTerms::prepare(config, w));
    let mut jobs = month_job_list(db, config, &period, terms.as_ref(), filter).await?;
    let total_cents = jobs.iter().map(|j| j.cost_cents).sum();
    let matched = jobs.len();
    if let Some(limit) = filter.limit {
        jobs.truncate(limit.get());
    }
    Ok(JobsReport {
        month: month.to_string(),
        currency: config.currency.clone(),
        as_of: rfc3339(at),
        total_cents,
        matched,
        jobs,
    })
}
