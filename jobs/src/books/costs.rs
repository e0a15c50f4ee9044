//! Cost of a window over the stored build steps: the database sums busy seconds per
//! (machine, jobset) in one grouped query, and [`crate::books::attribution`] turns them into lines.
//!
//! The evaluation instant (`at`, default now) plays the part of cost-model.md's "now": every
//! window is clipped to `[ledger_start, at)`.
use crate::books::attribution::{active_span, machine_lines, Line};
use crate::books::store;
use crate::calendar::{split_months, Month, Span};
use crate::config::{Config, Machine};
use buildfund_entity::build_steps;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, Func, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, ExprTrait};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Steps on a machine that is not configured: kept, shown, never priced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnpricedLine {
    pub machine: String,
    pub jobset: String,
    pub busy_seconds: i64,
}

/// Every line of a window: priced lines, rounded per (machine, month part), and unpriced ones.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowCosts {
    pub lines: Vec<Line>,
    pub unpriced: Vec<UnpricedLine>,
}

impl WindowCosts {
    pub fn total_cents(&self) -> i64 {
        self.lines.iter().map(|l| l.cost_cents).sum()
    }

    /// Cost per fund.
    pub fn by_fund(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for l in &self.lines {
            *out.entry(l.fund.clone()).or_insert(0) += l.cost_cents;
        }
        out
    }
}

/// The month's cost report as `GET /api/v1/costs` and `buildfund costs --json` give it.
#[derive(Clone, Debug, Serialize)]
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
    at: DateTime<Utc>,
) -> Result<CostsReport, DbErr> {
    let c = month_costs(db, config, month, at).await?;
    Ok(CostsReport {
        month: month.to_string(),
        currency: config.currency.clone(),
        as_of: crate::calendar::rfc3339(at),
        total_cents: c.total_cents(),
        lines: c.lines,
        unpriced: c.unpriced,
    })
}

/// `span` clipped to `[ledger_start, at)`; `None` when nothing is left.
pub fn clip(config: &Config, span: Span, at: DateTime<Utc>) -> Option<Span> {
    span.intersect(Span::new(config.ledger_start.timestamp(), at.timestamp()))
}

/// The grouped query: busy seconds per (machine, project, jobset) of the steps overlapping
/// `span`, each step clipped to it; restricted to `machines` when given.
pub fn busy_query(span: Span, machines: Option<&[&str]>) -> SelectStatement {
    use build_steps::Column as C;
    let clipped_stop = CaseStatement::new()
        .case(Expr::col(C::StopTs).lt(span.end), Expr::col(C::StopTs))
        .finally(Expr::val(span.end));
    let clipped_start = CaseStatement::new()
        .case(Expr::col(C::StartTs).gt(span.start), Expr::col(C::StartTs))
        .finally(Expr::val(span.start));
    let busy = Func::cast_as(
        Func::sum(Expr::expr(clipped_stop).sub(Expr::expr(clipped_start))),
        Alias::new("BIGINT"),
    );
    let mut q = Query::select();
    q.columns([C::Machine, C::Project, C::Jobset])
        .expr_as(busy, Alias::new("busy"))
        .from(build_steps::Entity)
        .and_where(Expr::col(C::StartTs).lt(span.end))
        .and_where(Expr::col(C::StopTs).gt(span.start))
        .group_by_columns([C::Machine, C::Project, C::Jobset]);
    if let Some(names) = machines {
        q.and_where(Expr::col(C::Machine).is_in(names.iter().copied()));
    }
    q
}

/// Runs [`busy_query`]: `(machine as stored, "project:jobset", busy seconds)`.
pub async fn busy_seconds(
    db: &impl ConnectionTrait,
    span: Span,
    machines: Option<&[&str]>,
) -> Result<Vec<(String, String, i64)>, DbErr> {
    let rows = db.query_all(&busy_query(span, machines)).await?;
    rows.into_iter()
        .map(|row| {
            let project: String = row.try_get("", "project")?;
            let jobset: String = row.try_get("", "jobset")?;
            Ok((
                row.try_get("", "machine")?,
                format!("{project}:{jobset}"),
                row.try_get("", "busy")?,
            ))
        })
        .collect()
}

/// Lines of every machine in `window`, which must lie inside one calendar month and already be
/// clipped to `[ledger_start, at)`. One grouped query covers every machine active through the
/// whole window (the usual case); a machine that starts or stops inside it gets a query of its
/// own over its active part.
pub async fn window_lines(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
) -> Result<WindowCosts, DbErr> {
    let by_name = config.machine_by_name();
    // Active part of each machine; machines sharing the whole window share the main query.
    let mut partial: Vec<(&Machine, Span)> = Vec::new();
    for m in &config.machines {
        match active_span(m, window) {
            Some(a) if a == window => {}
            Some(a) => partial.push((m, a)),
            None => {}
        }
    }
    let mut busy: HashMap<&str, BTreeMap<String, i64>> = HashMap::new();
    let mut unpriced: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (machine, jobset, seconds) in busy_seconds(db, window, None).await? {
        match by_name.get(machine.as_str()) {
            Some(m) if active_span(m, window) == Some(window) => {
                *busy
                    .entry(m.name.as_str())
                    .or_default()
                    .entry(jobset)
                    .or_insert(0) += seconds;
            }
            Some(_) => {} // counted by its own query below, over its active part only
            None => *unpriced.entry((machine, jobset)).or_insert(0) += seconds,
        }
    }
    for (m, active) in &partial {
        let mut names: Vec<&str> = vec![m.name.as_str()];
        names.extend(m.aliases.iter().map(String::as_str));
        let entry = busy.entry(m.name.as_str()).or_default();
        for (_, jobset, seconds) in busy_seconds(db, *active, Some(&names)).await? {
            *entry.entry(jobset).or_insert(0) += seconds;
        }
    }
    let mut lines = Vec::new();
    let empty = BTreeMap::new();
    for m in &config.machines {
        lines.extend(machine_lines(
            config,
            m,
            window,
            busy.get(m.name.as_str()).unwrap_or(&empty),
        ));
    }
    Ok(WindowCosts {
        lines,
        unpriced: unpriced
            .into_iter()
            .map(|((machine, jobset), busy_seconds)| UnpricedLine {
                machine,
                jobset,
                busy_seconds,
            })
            .collect(),
    })
}

/// Lines of `window` (inside one month, clipped to `[ledger_start, at)`): a whole month that is
/// over comes from the store when it holds it fresh, anything else from the build steps.
pub async fn window_costs(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
) -> Result<WindowCosts, DbErr> {
    let month = Month::of(DateTime::from_timestamp(window.start, 0).expect("valid instant"));
    if store::book_window(config, month) == Some(window) {
        if let Some(m) = store::stored_month(db, config, month, false, true).await? {
            return Ok(m.costs);
        }
    }
    window_lines(db, config, window).await
}

/// Lines of any interval: split at month boundaries, clipped to `[ledger_start, at)`, each part
/// computed and rounded on its own (cost-model.md), the parts' lines concatenated.
pub async fn span_lines(
    db: &impl ConnectionTrait,
    config: &Config,
    span: Span,
    at: DateTime<Utc>,
) -> Result<Vec<WindowCosts>, DbErr> {
    let Some(clipped) = clip(config, span, at) else {
        return Ok(Vec::new());
    };
    let mut parts = Vec::new();
    for part in split_months(clipped) {
        parts.push(window_costs(db, config, part).await?);
    }
    Ok(parts)
}

/// The month's lines as of `at`: month to date when `at` falls inside the month.
pub async fn month_costs(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<WindowCosts, DbErr> {
    Ok(match clip(config, month.span(), at) {
        Some(window) => window_costs(db, config, window).await?,
        None => WindowCosts::default(),
    })
}

/// Cost per fund over `[ledger_start, t)`: the sum of each month's lines (each rounded per
/// machine and month as the contract says): the stored sums to the end of the month before
/// `t`'s, plus `t`'s month to `t`.
pub async fn cost_to_date_by_fund(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<BTreeMap<String, i64>, DbErr> {
    let mut totals = BTreeMap::new();
    if t <= config.ledger_start {
        return Ok(totals);
    }
    let month = Month::of(t);
    for (fund, (_, spent)) in store::to_date_before(db, config, month).await? {
        totals.insert(fund, spent);
    }
    for (fund, cents) in month_costs(db, config, month, t).await?.by_fund() {
        *totals.entry(fund).or_insert(0) += cents;
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(
            Month::parse("2026-10"),
            Ok(Month {
                year: 2026,
                month: 10
            })
        );
        assert_eq!(Month::parse("2026-10").unwrap().to_string(), "2026-10");
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", "", "2026-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Month {
                year: 2026,
                month: 12
            }
            .next(),
            Month {
                year: 2027,
                month: 1
            }
        );
    }

    #[test]
    fn the_busy_query_is_one_grouped_statement_on_both_backends() {
        use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
        let q = busy_query(Span::new(100, 200), None);
        let pg = q.to_string(PostgresQueryBuilder);
        let lite = q.to_string(SqliteQueryBuilder);
        for sql in [&pg, &lite] {
            assert!(sql.contains("GROUP BY"), "{sql}");
            assert!(sql.contains("CAST(SUM("), "{sql}");
        }
    }
}
