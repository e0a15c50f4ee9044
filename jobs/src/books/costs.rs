//! Cost of a window over the stored build steps: the database sums busy seconds per
//! (machine, jobset) in one grouped query, and [`crate::books::attribution`] turns them into lines.
//!
//! The evaluation instant (`at`, default now) plays the part of cost-model.md's "now": every
//! window is clipped to `[ledger_start, at)`.
use crate::books::attribution::Line;
pub use crate::books::ledger::{busy_query, busy_seconds, clip, UnpricedLine, WindowCosts};
use crate::books::store;
use crate::books::BooksError;
use crate::calendar::{split_months, Month, Period, Span};
use crate::config::Config;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use std::collections::BTreeMap;

/// The month's cost report as `GET /api/v1/costs` and `buildfund costs --json` give it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CostsReport {
    pub month: String,
    pub currency: String,
    pub as_of: String,
    pub total_cents: i64,
    pub lines: Vec<Line>,
    pub unpriced: Vec<UnpricedLine>,
}

pub async fn costs_report(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: crate::bounds::At,
) -> Result<CostsReport, BooksError> {
    let at = at.instant();
    let c = month_costs(db, config, &Period::new(month, at, config.ledger_start)).await?;
    Ok(CostsReport {
        month: month.to_string(),
        currency: config.currency.clone(),
        as_of: crate::calendar::rfc3339(at),
        total_cents: c.total_cents(),
        lines: c.lines,
        unpriced: c.unpriced,
    })
}

/// Lines of `window` (inside one month, clipped to `[ledger_start, at)`): a whole month that is
/// over comes from the store when it holds it fresh, anything else from the build steps.
pub async fn window_costs(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
) -> Result<WindowCosts, BooksError> {
    let month = Month::of(DateTime::from_timestamp(window.start, 0).expect("valid instant"));
    stored_or_steps(db, config, month, store::book_window(config, month), window).await
}

/// The lines of `window` in `month`: from the store when the window is the month's `book`
/// window and the store holds the month fresh, else from the build steps.
async fn stored_or_steps(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    book: Option<Span>,
    window: Span,
) -> Result<WindowCosts, BooksError> {
    if book == Some(window) {
        if let Some(m) = store::stored_month(db, config, month, false, true).await? {
            return Ok(m.costs);
        }
    }
    // A window is computed once for every read of it at the same instant (books::shared).
    crate::books::shared::window_lines(db, config, window, None).await
}

/// Lines of any interval: split at month boundaries, clipped to `[ledger_start, at)`, each part
/// computed and rounded on its own (cost-model.md), the parts' lines concatenated.
pub async fn span_lines(
    db: &impl ConnectionTrait,
    config: &Config,
    span: Span,
    at: DateTime<Utc>,
) -> Result<Vec<WindowCosts>, BooksError> {
    let Some(clipped) = clip(config, span, at) else {
        return Ok(Vec::new());
    };
    let mut parts = Vec::new();
    for part in split_months(clipped) {
        parts.push(window_costs(db, config, part).await?);
    }
    Ok(parts)
}

/// The lines of `period`'s month as of its instant: month to date when the instant falls inside
/// the month.
pub async fn month_costs(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<WindowCosts, BooksError> {
    let Some(window) = period.window else {
        return Ok(WindowCosts::default());
    };
    stored_or_steps(db, config, period.month, period.book, window).await
}

/// Cost per fund over `[ledger_start, t)`: the sum of each month's lines (each rounded per
/// machine and month as the contract says): the stored sums to the end of the month before
/// `t`'s, plus `t`'s month to `t`; funds with no cost left out.
pub async fn cost_to_date_by_fund(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<BTreeMap<String, i64>, BooksError> {
    let mut totals = BTreeMap::new();
    if t <= config.ledger_start {
        return Ok(totals);
    }
    let period = Period::of(t, config.ledger_start);
    for (fund, (_, spent)) in store::to_date_before(db, config, &period).await? {
        totals.insert(fund, spent);
    }
    for (fund, cents) in month_costs(db, config, &period).await?.by_fund() {
        *totals.entry(fund).or_insert(0) += cents;
    }
    // Funds with no cost are left out, whether the sums came stored or from the data.
    totals.retain(|_, cents| *cents != 0);
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(
            Month::parse("2026-10"),
            Ok(Month::of(
                crate::calendar::parse_rfc3339("2026-10-15T00:00:00Z").unwrap()
            ))
        );
        assert_eq!(
            Month::parse("2026-10").map(|m| (m.year(), m.number())),
            Ok((2026, 10))
        );
        assert_eq!(Month::parse("2026-10").unwrap().to_string(), "2026-10");
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", "", "2026-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Month::parse("2026-12").unwrap().next(),
            Month::parse("2027-01").unwrap()
        );
    }
}
