//! Funds: what came in (donations, routed by tier, then account, then the default fund), what
//! went out (cost lines), balance, burn and runway (cost-model.md, "Donations" and "Balance,
//! burn, runway").
use crate::books::costs::{clip, window_costs, WindowCosts};
use crate::books::invoices::expense_costs;
use crate::books::ledger::raised_from_data;
use crate::books::ledger::ts;
pub use crate::books::ledger::{add_cents, route, Raised};
use crate::books::store;
use crate::books::{BooksError, HistoryMonth};
use crate::calendar::{split_months, Month, Period, Span};
use crate::config::Config;
use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use std::collections::BTreeMap;

/// Sums of the donation records dated in `[from, to)`, per fund: from the store when the
/// interval is a whole month's books window held fresh there, else from the records.
pub async fn raised_by_fund(
    db: &impl ConnectionTrait,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Raised>, BooksError> {
    if from < to {
        let month = Month::of(from);
        let whole = store::book_window(config, month)
            .is_some_and(|w| ts(w.start) == from && ts(w.end) == to);
        if whole {
            if let Some(m) = store::stored_month(db, config, month, false, false).await? {
                return Ok(stored_raised(m));
            }
        }
    }
    raised_from_data(db, config, from, to).await
}

/// What `period`'s window raised per fund and cost (its lines): read together from the store
/// when the window is the month's books window held fresh there (one read of the stored
/// month), else from the records and the build steps (the lines shared with every other
/// computation of the window, [`super::shared`]).
pub async fn period_sums(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<(BTreeMap<String, Raised>, WindowCosts), BooksError> {
    let Some(w) = period.window else {
        return Ok(Default::default());
    };
    if period.book == Some(w) {
        if let Some(mut m) = store::stored_month(db, config, period.month, false, true).await? {
            let costs = std::mem::take(&mut m.costs);
            return Ok((stored_raised(m), costs));
        }
    }
    let raised = raised_from_data(db, config, ts(w.start), ts(w.end)).await?;
    Ok((
        raised,
        super::shared::window_lines(db, config, w, None).await?,
    ))
}

/// The donation sums per fund a stored month holds (funds without any left out).
fn stored_raised(m: store::StoredMonth) -> BTreeMap<String, Raised> {
    m.funds
        .into_iter()
        .filter(|(_, b)| b.raised != Raised::default())
        .map(|(f, b)| (f, b.raised))
        .collect()
}

/// One fund's figures for a month, as `GET /api/v1/funds` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FundMonth {
    pub slug: String,
    pub name: String,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub spent_cents: i64,
    /// The fund's expense costs in the month (other expenses' totals, invoices' fees).
    pub expenses_cents: i64,
    pub balance_cents: i64,
    pub goal_cents: Option<i64>,
    pub runway_days: Option<i64>,
}

/// `runway_days`: 0 when the balance is not positive, none without burn, else
/// `floor(balance / (cost_30_days / 30))`, computed exactly as `floor(balance * 30 / cost_30_days)`.
pub fn runway_days(balance_cents: i64, cost_30_days_cents: i64) -> Option<i64> {
    if balance_cents <= 0 {
        Some(0)
    } else if cost_30_days_cents <= 0 {
        None
    } else {
        Some(((balance_cents as i128 * 30) / cost_30_days_cents as i128) as i64)
    }
}

/// Balance of every fund at `t` and its cost over the 30 days before `t`.
#[derive(Clone, Debug, Default)]
pub struct Standing {
    pub balance: BTreeMap<String, i64>,
    pub cost_30_days: BTreeMap<String, i64>,
    /// The funds nothing has moved through yet: no opening balance, no donations, no costs.
    pub untouched: std::collections::BTreeSet<String>,
}

impl Standing {
    pub fn runway_days(&self, fund: &str) -> Option<i64> {
        runway_days(
            self.balance.get(fund).copied().unwrap_or(0),
            self.cost_30_days.get(fund).copied().unwrap_or(0),
        )
    }
}

/// Balance of every fund at `t` and its cost over the 30 days before `t`: the stored figures
/// at the end of the month before `t`'s, plus `t`'s month up to `t` from the data (computed
/// once and used for both).
pub async fn standing(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<Standing, BooksError> {
    standing_with(db, config, t, None).await
}

/// [`standing`], given the lines of one window the caller has already computed (usually `t`'s
/// month up to `t`), so that no window is computed twice in one read.
pub async fn standing_with(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
    known: Option<(Span, &WindowCosts)>,
) -> Result<Standing, BooksError> {
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    let mut cost: BTreeMap<String, i64> = BTreeMap::new();
    let mut cost_30_days = BTreeMap::new();
    let known_by_fund = |part: Span| known.filter(|(w, _)| *w == part).map(|(_, c)| c.by_fund());
    if t > config.ledger_start {
        let period = Period::of(t, config.ledger_start);
        for (fund, (n, c)) in store::to_date_before(db, config, &period).await? {
            net.insert(fund.clone(), n);
            cost.insert(fund, c);
        }
        let tail_window = period.window;
        let mut tail = None;
        if let Some(w) = tail_window {
            let by_fund = match known_by_fund(w) {
                Some(b) => b,
                None => window_costs(db, config, w).await?.by_fund(),
            };
            for (fund, r) in raised_from_data(db, config, ts(w.start), ts(w.end)).await? {
                let sum = net.entry(fund).or_insert(0);
                *sum = add_cents(*sum, r.net_cents)?;
            }
            for (fund, c) in &by_fund {
                let sum = cost.entry(fund.clone()).or_insert(0);
                *sum = add_cents(*sum, *c)?;
            }
            tail = Some((w, by_fund));
        }
        // At a month's start the last 30 days are those stored with the month before.
        let stored_30 = match tail_window {
            None => store::stored_month(db, config, period.prev, false, false).await?,
            Some(_) => None,
        };
        match stored_30 {
            Some(m) => {
                for (fund, b) in m.funds {
                    if b.cost_30_days_cents != 0 {
                        cost_30_days.insert(fund, b.cost_30_days_cents);
                    }
                }
            }
            None => {
                let last_30 = Span::new((t - Duration::days(30)).timestamp(), t.timestamp());
                for part in clip(config, last_30, t)
                    .map(split_months)
                    .unwrap_or_default()
                {
                    let by_fund = match (&tail, known_by_fund(part)) {
                        (Some((w, b)), _) if *w == part => b.clone(),
                        (_, Some(b)) => b,
                        _ => window_costs(db, config, part).await?.by_fund(),
                    };
                    for (fund, cents) in by_fund {
                        let sum = cost_30_days.entry(fund).or_insert(0);
                        *sum = add_cents(*sum, cents)?;
                    }
                }
            }
        }
    }
    // Expense costs (cost-model.md, "Expenses"): summed from the records on every read.
    if t > config.ledger_start {
        for (fund, c) in expense_costs(db, config, config.ledger_start, t).await? {
            let sum = cost.entry(fund).or_insert(0);
            *sum = add_cents(*sum, c)?;
        }
        let from = std::cmp::max(t - Duration::days(30), config.ledger_start);
        for (fund, c) in expense_costs(db, config, from, t).await? {
            let sum = cost_30_days.entry(fund).or_insert(0);
            *sum = add_cents(*sum, c)?;
        }
    }
    let mut balance = BTreeMap::new();
    let mut untouched = std::collections::BTreeSet::new();
    for f in &config.funds {
        let raised = net.get(&f.slug).copied().unwrap_or(0);
        let spent = cost.get(&f.slug).copied().unwrap_or(0);
        if f.opening_balance_cents == 0 && raised == 0 && spent == 0 {
            untouched.insert(f.slug.clone());
        }
        let b = add_cents(f.opening_balance_cents, raised)?;
        let b = add_cents(b, spent.checked_neg().unwrap_or(i64::MAX))?;
        balance.insert(f.slug.clone(), b);
    }
    Ok(Standing {
        balance,
        cost_30_days,
        untouched,
    })
}

/// The month's figures of every fund as of `at`, with the month's cost lines they came from.
/// A month that is over comes whole from the store when it holds it (and every month before
/// it) fresh.
pub async fn funds_month(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<(Vec<FundMonth>, WindowCosts), BooksError> {
    let window = clip(config, month.span(), at);
    let expenses = match window {
        Some(w) => expense_costs(db, config, ts(w.start), ts(w.end)).await?,
        None => BTreeMap::new(),
    };
    let expenses_of = |f: &str| expenses.get(f).copied().unwrap_or(0);
    if at >= month.next().start() {
        if let Some(m) = store::stored_month(db, config, month, true, true).await? {
            // The stored figures hold the machine cost; the expense costs to the month's end
            // and over its last 30 days are added here.
            let end = month.next().start();
            let to_date = expense_costs(db, config, config.ledger_start, end).await?;
            let from_30 = std::cmp::max(end - Duration::days(30), config.ledger_start);
            let last_30 = expense_costs(db, config, from_30, end).await?;
            let funds = config
                .funds
                .iter()
                .map(|f| {
                    let b = m.funds.get(&f.slug).copied().unwrap_or_default();
                    let balance_cents =
                        b.balance_cents - to_date.get(&f.slug).copied().unwrap_or(0);
                    let cost_30 = b.cost_30_days_cents + last_30.get(&f.slug).copied().unwrap_or(0);
                    FundMonth {
                        slug: f.slug.clone(),
                        name: f.name.clone(),
                        gross_cents: b.raised.gross_cents,
                        fees_cents: b.raised.fees_cents,
                        net_cents: b.raised.net_cents,
                        spent_cents: b.spent_cents,
                        expenses_cents: expenses_of(&f.slug),
                        balance_cents,
                        goal_cents: f.monthly_goal_cents,
                        runway_days: runway_days(balance_cents, cost_30),
                    }
                })
                .collect();
            return Ok((funds, m.costs));
        }
    }
    let costs = match window {
        Some(w) => window_costs(db, config, w).await?,
        None => WindowCosts::default(),
    };
    let spent = costs.by_fund();
    let raised = match window {
        Some(w) => raised_by_fund(db, config, ts(w.start), ts(w.end)).await?,
        None => BTreeMap::new(),
    };
    // Balance and runway as of the end of the month or `at`, whichever is earlier, reusing
    // the month's lines.
    let end = std::cmp::min(month.next().start(), at);
    let standing = standing_with(db, config, end, window.map(|w| (w, &costs))).await?;
    let funds = config
        .funds
        .iter()
        .map(|f| {
            let r = raised.get(&f.slug).copied().unwrap_or_default();
            FundMonth {
                slug: f.slug.clone(),
                name: f.name.clone(),
                gross_cents: r.gross_cents,
                fees_cents: r.fees_cents,
                net_cents: r.net_cents,
                spent_cents: spent.get(&f.slug).copied().unwrap_or(0),
                expenses_cents: expenses_of(&f.slug),
                balance_cents: standing.balance.get(&f.slug).copied().unwrap_or(0),
                goal_cents: f.monthly_goal_cents,
                runway_days: standing.runway_days(&f.slug),
            }
        })
        .collect();
    Ok((funds, costs))
}

/// The raised-vs-spent history of the `count` months ending with `last` (oldest first), each
/// as of `at` (months before `ledger_start` left out), with the cost lines of its last month
/// (`last`, always in it).
pub(crate) async fn history(
    db: &impl ConnectionTrait,
    config: &Config,
    last: Month,
    count: usize,
    at: DateTime<Utc>,
) -> Result<(Vec<HistoryMonth>, WindowCosts), BooksError> {
    let first_month = Month::of(config.ledger_start);
    let mut months = Vec::new();
    let mut m = last;
    while months.len() < count.max(1) && (months.is_empty() || m >= first_month) {
        months.push(m);
        m = m.prev();
    }
    months.reverse();
    let mut out = Vec::with_capacity(months.len());
    let mut last_costs = WindowCosts::default();
    for m in months {
        let period = Period::new(m, at, config.ledger_start);
        let (raised, costs) = period_sums(db, config, &period).await?;
        out.push(HistoryMonth {
            month: m,
            raised_cents: raised.values().map(|r| r.net_cents).sum(),
            spent_cents: costs.total_cents(),
        });
        last_costs = costs;
    }
    Ok((out, last_costs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runway_follows_the_contract() {
        assert_eq!(runway_days(0, 100), Some(0));
        assert_eq!(runway_days(-5, 0), Some(0));
        assert_eq!(runway_days(100, 0), None);
        // burn = 3000/30 = 100 a day; 4199 / 100 = 41.99 -> 41
        assert_eq!(runway_days(4199, 3000), Some(41));
        // burn = 1/30 cent a day: exact, no rounding of the burn
        assert_eq!(runway_days(1, 1), Some(30));
    }

    #[test]
    fn routing_is_tier_then_account_then_default() {
        let c = Config::parse(
            r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
default = true
[[funds]]
slug = "cuda"
tiers = ["gpu-sponsor"]
accounts = ["nix-cuda"]
[[funds]]
slug = "jetson"
accounts = ["nix-jetson"]
"#,
            "t",
        )
        .unwrap();
        assert_eq!(route(&c, "nix-jetson", Some("gpu-sponsor")).slug, "cuda");
        assert_eq!(route(&c, "nix-jetson", Some("backer")).slug, "jetson");
        assert_eq!(route(&c, "nix-cuda", None).slug, "cuda");
        assert_eq!(route(&c, "elsewhere", None).slug, "general");
    }
}
