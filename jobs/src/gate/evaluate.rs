//! Every pool's gate exactly at an instant: the month's spending, its projection, the fund's
//! balance against its reserve, and the admin controls in force (cost-model.md, "Gate").
use crate::books::costs::{clip, window_costs, WindowCosts};
use crate::books::funds::standing_with;
use crate::books::BooksError;
use crate::calendar::{rfc3339, Month};
use crate::config::{Config, OTHER_POOL};
use crate::gate::states::{Control, FundStanding, PoolGate, Snapshot, State};
use crate::gate::store::controls_at;
use crate::money::format_cents;
use crate::money::round_half_away_from_zero;
use buildfund_entity::pool_controls::ControlKind;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::ConnectionTrait;
use std::collections::{BTreeMap, HashMap};

/// The smallest `elapsed` of the projection: one hour (cost-model.md).
pub const MIN_ELAPSED_SECONDS: i64 = 3600;

/// `projected = spent * seconds_in_month / max(elapsed, 3600)`, rounded half away from zero.
pub fn projected_cents(spent_cents: i64, seconds_in_month: i64, elapsed: i64) -> i64 {
    let elapsed = elapsed.max(MIN_ELAPSED_SECONDS);
    round_half_away_from_zero(
        spent_cents as i128 * seconds_in_month as i128,
        elapsed as i128,
    ) as i64
}

/// The figures a state is decided from.
#[derive(Clone, Debug)]
pub struct Figures {
    pub spent: i64,
    pub budget: Option<i64>,
    pub warn_at: Decimal,
    pub projected: i64,
    pub balance: i64,
    pub reserve: i64,
    /// Nothing has moved through the fund yet (no opening balance, donations or costs) and
    /// it keeps no reserve: the balance rules do not apply (the book's "Decisions": a fresh
    /// install's gate).
    pub untouched: bool,
}

/// Why a pool is in its state, each cause a short phrase.
pub fn causes(f: &Figures, paused: bool) -> (State, Vec<String>) {
    let mut closed = Vec::new();
    if paused {
        closed.push("paused by an admin".to_string());
    }
    if let Some(b) = f.budget {
        if f.spent >= b {
            closed.push("the budget is spent".to_string());
        }
    }
    if f.balance <= f.reserve && !f.untouched {
        closed.push(format!(
            "the fund's balance {} is at or below its reserve {}",
            format_cents(f.balance),
            format_cents(f.reserve)
        ));
    }
    if !closed.is_empty() {
        return (State::Closed, closed);
    }
    let mut warn = Vec::new();
    if let Some(b) = f.budget {
        if Decimal::from(f.spent) >= f.warn_at * Decimal::from(b) {
            warn.push(format!(
                "{}% of the budget is spent",
                (f.warn_at * Decimal::ONE_HUNDRED).normalize()
            ));
        }
        if f.projected > b {
            warn.push("the projection exceeds the budget".to_string());
        }
    }
    if !f.untouched
        && (f.balance as i128) - (f.projected as i128 - f.spent as i128) <= f.reserve as i128
    {
        warn.push(format!(
            "the projected spending would take the fund's balance {} to its reserve {}",
            format_cents(f.balance),
            format_cents(f.reserve)
        ));
    }
    if !warn.is_empty() {
        return (State::Warn, warn);
    }
    (State::Open, Vec::new())
}

/// Every pool's gate exactly at `t`.
pub async fn evaluate(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<Snapshot, BooksError> {
    let month = Month::of(t);
    let span = month.span();
    let seconds_in_month = span.end - span.start;
    let elapsed = t.timestamp() - span.start;
    // The month to date, computed once: for the pools' spending and for the funds' standing.
    let window = clip(config, span, t);
    let costs = match window {
        Some(w) => window_costs(db, config, w).await?,
        None => WindowCosts::default(),
    };
    let mut spent: HashMap<&str, i64> = HashMap::new();
    for line in &costs.lines {
        if let Some(pool) = &line.pool {
            *spent.entry(pool.as_str()).or_insert(0) += line.cost_cents;
        }
    }
    let standing = standing_with(db, config, t, window.map(|w| (w, &costs))).await?;
    let controls = controls_at(db, t).await?;
    let default_fund = config.default_fund();
    let mut pools: Vec<(&str, &str, Option<i64>, Decimal)> = config
        .pools
        .iter()
        .map(|p| {
            (
                p.slug.as_str(),
                p.fund.as_str(),
                p.monthly_budget_cents,
                p.warn_at,
            )
        })
        .collect();
    pools.push((
        OTHER_POOL,
        default_fund.slug.as_str(),
        None,
        Decimal::new(8, 1),
    ));
    let mut out = BTreeMap::new();
    for (slug, fund_slug, budget, warn_at) in pools {
        let fund = config
            .funds
            .iter()
            .find(|f| f.slug == fund_slug)
            .unwrap_or(default_fund);
        let spent_cents = spent.get(slug).copied().unwrap_or(0);
        let figures = Figures {
            spent: spent_cents,
            budget,
            warn_at,
            projected: projected_cents(spent_cents, seconds_in_month, elapsed),
            balance: standing.balance.get(fund_slug).copied().unwrap_or(0),
            reserve: fund.reserve_cents,
            untouched: fund.reserve_cents == 0 && standing.untouched.contains(fund_slug),
        };
        // The latest pause and the latest override in force.
        let paused = controls
            .iter()
            .rev()
            .find(|c| c.pool == slug && c.kind == ControlKind::Pause)
            .map(Control::from);
        let override_ = controls
            .iter()
            .rev()
            .find(|c| c.pool == slug && c.kind == ControlKind::Override)
            .map(Control::from);
        let (state, why) = causes(&figures, paused.is_some());
        let allow = state != State::Closed || override_.is_some();
        out.insert(
            slug.to_string(),
            PoolGate {
                pool: slug.to_string(),
                fund: fund_slug.to_string(),
                allow,
                state,
                reason: reason(
                    slug,
                    &config.currency,
                    &figures,
                    &why,
                    paused.as_ref(),
                    override_.as_ref(),
                ),
                spent_cents,
                budget_cents: budget,
                projected_cents: figures.projected,
                fund_balance_cents: figures.balance,
                runway_days: standing.runway_days(fund_slug),
                reserve_cents: figures.reserve,
                warn_at,
                paused,
                override_,
                as_of: rfc3339(t),
            },
        );
    }
    let funds = config
        .funds
        .iter()
        .map(|f| {
            let standing = FundStanding {
                balance_cents: standing.balance.get(&f.slug).copied().unwrap_or(0),
                runway_days: standing.runway_days(&f.slug),
            };
            (f.slug.clone(), standing)
        })
        .collect();
    Ok(Snapshot {
        at: t,
        pools: out,
        funds,
    })
}

/// "gpu-tests spent 57.33 of 60.00 EUR this month; projected 91.14", then the causes. Public:
/// an admin's pause or override reads "an admin" (the audit keeps who it was).
fn reason(
    pool: &str,
    currency: &str,
    f: &Figures,
    causes: &[String],
    paused: Option<&Control>,
    override_: Option<&Control>,
) -> String {
    let mut s = match f.budget {
        Some(b) => format!(
            "{pool} spent {} of {} {currency} this month; projected {}",
            format_cents(f.spent),
            format_cents(b),
            format_cents(f.projected)
        ),
        None => format!(
            "{pool} spent {} {currency} this month (no budget); projected {}",
            format_cents(f.spent),
            format_cents(f.projected)
        ),
    };
    for c in causes {
        s.push_str("; ");
        match (c.as_str(), paused) {
            ("paused by an admin", Some(p)) => {
                s.push_str(&format!("paused by an admin: {}", p.reason))
            }
            _ => s.push_str(c),
        }
    }
    if let Some(o) = override_ {
        s.push_str(&format!(
            "; allowed by an admin's override until {}: {}",
            o.until.as_deref().unwrap_or("?"),
            o.reason
        ));
    }
    s
}

/// The pool a jobset belongs to: the first configured pool matching `project:jobset`, else
/// the implicit pool `other`.
pub fn pool_slug<'a>(config: &'a Config, jobset_key: &str) -> &'a str {
    config
        .pool_of(jobset_key)
        .map(|p| p.slug.as_str())
        .unwrap_or(OTHER_POOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(spent: i64, budget: Option<i64>, projected: i64, balance: i64, reserve: i64) -> Figures {
        Figures {
            spent,
            budget,
            warn_at: Decimal::new(8, 1),
            projected,
            balance,
            reserve,
            untouched: false,
        }
    }

    #[test]
    fn a_fund_nothing_has_moved_through_does_not_close_its_pools() {
        // Zero balance, zero reserve, nothing spent: closed by the balance rule while the fund
        // has had money or costs, open while nothing has moved through it.
        assert_eq!(causes(&f(0, None, 0, 0, 0), false).0, State::Closed);
        let fresh = Figures {
            untouched: true,
            ..f(0, None, 0, 0, 0)
        };
        assert_eq!(causes(&fresh, false), (State::Open, Vec::new()));
        // The budget and an admin's pause still apply.
        assert_eq!(causes(&fresh, true).0, State::Closed);
        let budget_spent = Figures {
            untouched: true,
            ..f(0, Some(0), 0, 0, 0)
        };
        assert_eq!(causes(&budget_spent, false).0, State::Closed);
    }

    #[test]
    fn projection_rounds_half_away_from_zero_with_an_hour_floor() {
        // 5733 * 2592000 / 1630800 = 9112.05... -> 9112
        assert_eq!(projected_cents(5733, 2_592_000, 1_630_800), 9112);
        // elapsed below an hour counts as an hour: 100 * 2592000 / 3600 = 72000
        assert_eq!(projected_cents(100, 2_592_000, 60), 72000);
        // exactly half: 1 * 3 / 2 = 1.5 -> 2
        assert_eq!(projected_cents(1, 3 * 3600, 2 * 3600), 2);
    }

    #[test]
    fn states_follow_the_contract_order() {
        assert_eq!(causes(&f(0, Some(100), 0, 1000, 0), false).0, State::Open);
        // warn_at: 80 >= 0.8 * 100
        assert_eq!(causes(&f(80, Some(100), 80, 1000, 0), false).0, State::Warn);
        assert_eq!(causes(&f(79, Some(100), 79, 1000, 0), false).0, State::Open);
        // projection over budget
        assert_eq!(
            causes(&f(10, Some(100), 101, 1000, 0), false).0,
            State::Warn
        );
        // spent reaches budget
        assert_eq!(
            causes(&f(100, Some(100), 100, 1000, 0), false).0,
            State::Closed
        );
        // balance at the reserve
        assert_eq!(causes(&f(0, None, 0, 50, 50), false).0, State::Closed);
        // balance minus the projected rest at the reserve: 150 - (110 - 10) = 50
        assert_eq!(causes(&f(10, None, 110, 150, 50), false).0, State::Warn);
        assert_eq!(causes(&f(10, None, 109, 150, 50), false).0, State::Open);
        // a pause closes whatever the figures
        assert_eq!(causes(&f(0, None, 0, 1000, 0), true).0, State::Closed);
    }
}
