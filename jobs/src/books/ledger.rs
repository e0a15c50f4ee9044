//! The figures straight from the data, below the store: busy seconds and the cost lines of a
//! window from the build steps, and the donations raised per fund from the records. The store
//! ([`super::store`]) computes closed months with these; [`super::costs`] and [`super::funds`]
//! read through the store and use these for the open month.
use crate::books::attribution::{merge_parts, part_lines, Line};
use crate::books::days;
pub use crate::books::steps::busy_query;
use crate::books::terms::WindowTerms;
use crate::books::BooksError;
use crate::calendar::Span;
use crate::config::{Config, Fund, Machine, Terms};
pub use crate::money::add_cents;
use crate::money::Overflow;
use buildfund_entity::donations;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, ExprTrait};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Steps on a machine that is not configured: kept, shown, never priced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    pub(crate) fn by_fund(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for l in &self.lines {
            *out.entry(l.fund.clone()).or_insert(0) += l.cost_cents;
        }
        out
    }
}

/// `span` clipped to `[ledger_start, at)`; `None` when nothing is left.
pub fn clip(config: &Config, span: Span, at: DateTime<Utc>) -> Option<Span> {
    span.intersect(Span::new(config.ledger_start.timestamp(), at.timestamp()))
}

/// Busy seconds per (machine as stored, "project:jobset") of the steps overlapping `span`,
/// each step clipped to it, restricted to `machines` when given: the stored days inside the
/// span ([`super::days`]) and the rest from the steps ([`busy_query`]).
pub async fn busy_seconds(
    db: &impl ConnectionTrait,
    span: Span,
    machines: Option<&[&str]>,
) -> Result<Vec<(String, String, i64)>, BooksError> {
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (machine, project, jobset, seconds, _) in days::busy(db, span, machines).await? {
        *sums
            .entry((machine, format!("{project}:{jobset}")))
            .or_insert(0) += seconds;
    }
    Ok(sums
        .into_iter()
        .map(|((machine, jobset), seconds)| (machine, jobset, seconds))
        .collect())
}

/// The rounded lines of one machine in one part of a window.
#[derive(Clone, Debug)]
pub struct PartLines<'a> {
    pub machine: &'a Machine,
    pub part: Span,
    /// Where the machine is active in the part (a part without an active span has no lines).
    pub active: Span,
    pub terms: Terms,
    pub lines: Vec<Line>,
}

/// Lines of every machine in `window`, which must lie inside one calendar month and already be
/// clipped to `[ledger_start, at)`: each machine's parts rounded on their own, then summed per
/// (machine, jobset) and idle line, so a machine has one line per jobset (and one idle line)
/// however many of its changes fall in the window.
pub(crate) async fn lines_from_steps(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
) -> Result<WindowCosts, BooksError> {
    let rows = busy_seconds(db, window, None).await?;
    lines_from_rows(db, config, window, rows).await
}

/// [`lines_from_steps`] of `window` and of `tail`, a part of it that ends with it (a month and
/// its last 30 days), from one read of the window's steps: the busy seconds of `tail` and of
/// the rest of the window are read apart (each step clipped to each), and the window's are
/// their sum (busy seconds are additive; each window's lines are then rounded on their own).
pub(crate) async fn lines_with_tail(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
    tail: Span,
) -> Result<(WindowCosts, WindowCosts), BooksError> {
    let head = Span::new(window.start, tail.start);
    let tail_rows = busy_seconds(db, tail, None).await?;
    let mut rows = busy_seconds(db, head, None).await?;
    rows.extend(tail_rows.iter().cloned());
    let whole = lines_from_rows(db, config, window, rows).await?;
    let tail = lines_from_rows(db, config, tail, tail_rows).await?;
    Ok((whole, tail))
}

/// [`lines_from_steps`], given the busy seconds of `window` per (machine as stored, jobset)
/// (a key may come more than once: its seconds are summed).
async fn lines_from_rows(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
    rows: Vec<(String, String, i64)>,
) -> Result<WindowCosts, BooksError> {
    let terms = WindowTerms::prepare(config, window);
    let (parts, unpriced) = part_lines_from_rows(db, config, &terms, rows).await?;
    let mut lines = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let machine = parts[i].machine;
        let mut mine = Vec::new();
        while i < parts.len() && std::ptr::eq(parts[i].machine, machine) {
            mine.push(parts[i].lines.as_slice());
            i += 1;
        }
        lines.extend(merge_parts(&mine));
    }
    Ok(WindowCosts { lines, unpriced })
}

/// The busy seconds of a window's machines, read from the data: per machine (in the order of
/// [`WindowTerms::machines`]) and part, per jobset; and the steps of machines that are not
/// configured.
struct BusyFacts {
    parts: Vec<Vec<BTreeMap<String, i64>>>,
    unpriced: Vec<UnpricedLine>,
}

/// Reads [`BusyFacts`] given `rows`, the busy seconds of the whole window (one grouped query,
/// [`busy_seconds`]): they cover every machine active through the whole window under one set
/// of terms (the usual case); a machine that starts, stops or changes inside it gets a query
/// of its own per part over its active span.
async fn read_busy(
    db: &impl ConnectionTrait,
    terms: &WindowTerms<'_>,
    rows: Vec<(String, String, i64)>,
) -> Result<BusyFacts, BooksError> {
    let mut shared: HashMap<&str, BTreeMap<String, i64>> = HashMap::new();
    let mut unpriced: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (machine, jobset, seconds) in rows {
        match terms.machine(&machine) {
            Some(m) if m.whole() => {
                *shared
                    .entry(m.machine.name.as_str())
                    .or_default()
                    .entry(jobset)
                    .or_insert(0) += seconds;
            }
            Some(_) => {} // counted by its own queries below, part by part
            None => *unpriced.entry((machine, jobset)).or_insert(0) += seconds,
        }
    }
    let mut parts = Vec::with_capacity(terms.machines.len());
    for m in &terms.machines {
        if m.whole() {
            let busy = shared.remove(m.machine.name.as_str()).unwrap_or_default();
            parts.push(vec![busy]);
            continue;
        }
        let mut mine = Vec::with_capacity(m.parts.len());
        for part in &m.parts {
            let mut busy: BTreeMap<String, i64> = BTreeMap::new();
            if let Some(active) = part.active {
                for (_, jobset, seconds) in busy_seconds(db, active, Some(&m.names)).await? {
                    *busy.entry(jobset).or_insert(0) += seconds;
                }
            }
            mine.push(busy);
        }
        parts.push(mine);
    }
    let unpriced = unpriced
        .into_iter()
        .map(|((machine, jobset), busy_seconds)| UnpricedLine {
            machine,
            jobset,
            busy_seconds,
        })
        .collect();
    Ok(BusyFacts { parts, unpriced })
}

/// The lines of every machine in the window of `terms` (as [`lines_from_steps`]) part by part,
/// machines in config order and each machine's parts in time order (a machine with no part
/// active in the window has none), with the unpriced lines: the busy seconds are read first
/// ([`read_busy`]), then every part is attributed ([`part_lines`]).
pub(crate) async fn part_lines_from_steps<'a>(
    db: &impl ConnectionTrait,
    config: &'a Config,
    terms: &WindowTerms<'a>,
) -> Result<(Vec<PartLines<'a>>, Vec<UnpricedLine>), BooksError> {
    let rows = busy_seconds(db, terms.window, None).await?;
    part_lines_from_rows(db, config, terms, rows).await
}

/// [`part_lines_from_steps`], given the busy seconds of the whole window ([`read_busy`]).
async fn part_lines_from_rows<'a>(
    db: &impl ConnectionTrait,
    config: &'a Config,
    terms: &WindowTerms<'a>,
    rows: Vec<(String, String, i64)>,
) -> Result<(Vec<PartLines<'a>>, Vec<UnpricedLine>), BooksError> {
    let BusyFacts { parts, unpriced } = read_busy(db, terms, rows).await?;
    let mut out = Vec::new();
    for (m, busy) in terms.machines.iter().zip(parts) {
        for (part, b) in m.parts.iter().zip(busy) {
            let Some(active) = part.active else {
                continue;
            };
            out.push(PartLines {
                machine: m.machine,
                part: part.span,
                active,
                terms: part.terms,
                lines: part_lines(config, m.machine, part, &b)?,
            });
        }
    }
    Ok((out, unpriced))
}

/// The fund a donation goes to: the first fund listing its tier, else the first listing its
/// receiving account, else the default fund.
pub fn route<'a>(config: &'a Config, account: &str, tier: Option<&str>) -> &'a Fund {
    tier.and_then(|t| config.funds.iter().find(|f| f.tiers.iter().any(|x| x == t)))
        .or_else(|| {
            config
                .funds
                .iter()
                .find(|f| f.accounts.iter().any(|a| a == account))
        })
        .unwrap_or_else(|| config.default_fund())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Raised {
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
}

impl Raised {
    /// The field-wise sum, checked.
    pub fn checked_add(self, o: Raised) -> Result<Raised, Overflow> {
        Ok(Raised {
            gross_cents: add_cents(self.gross_cents, o.gross_cents)?,
            fees_cents: add_cents(self.fees_cents, o.fees_cents)?,
            net_cents: add_cents(self.net_cents, o.net_cents)?,
        })
    }
}

pub(super) fn ts(s: i64) -> DateTime<Utc> {
    crate::calendar::from_unix(s)
}

/// Sums of the donation records dated in `[from, to)`, per fund, from the records.
pub(crate) async fn raised_from_data(
    db: &impl ConnectionTrait,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Raised>, BooksError> {
    use donations::Column as D;
    let sum = |c: D| Func::cast_as(Func::sum(Expr::col(c)), Alias::new("BIGINT"));
    let q = Query::select()
        .columns([D::AccountSlug, D::TierSlug])
        .expr_as(sum(D::GrossCents), Alias::new("gross"))
        .expr_as(sum(D::FeesCents), Alias::new("fees"))
        .expr_as(sum(D::NetCents), Alias::new("net"))
        .from(donations::Entity)
        .and_where(Expr::col(D::OccurredAt).gte(from))
        .and_where(Expr::col(D::OccurredAt).lt(to))
        .group_by_columns([D::AccountSlug, D::TierSlug])
        .to_owned();
    let mut out: BTreeMap<String, Raised> = BTreeMap::new();
    if from >= to {
        return Ok(out);
    }
    for row in db.query_all(&q).await? {
        let account: String = row.try_get("", "account_slug")?;
        let tier: Option<String> = row.try_get("", "tier_slug")?;
        let fund = route(config, &account, tier.as_deref());
        let sum = out.entry(fund.slug.clone()).or_default();
        *sum = sum.checked_add(Raised {
            gross_cents: row.try_get("", "gross")?,
            fees_cents: row.try_get("", "fees")?,
            net_cents: row.try_get("", "net")?,
        })?;
    }
    Ok(out)
}
