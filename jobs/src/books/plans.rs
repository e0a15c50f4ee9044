//! Plans: what more money would build, and how close each fund's recent income comes to paying
//! for it (cost-model.md, "Plans"; `GET /api/v1/plans`).
//!
//! At instant t, for fund f: `income30 = net(f, [t - 90 days, t)) / 3` and
//! `burn30 = cost(f, [t - 30 days, t))` (both windows clipped to `[ledger_start, t)`, as every
//! window of the books), `headroom_0 = income30 - burn30`; plan i of f (file order) is
//! `covered_i = min(1, max(0, headroom_{i-1} / monthly_i))` covered, `headroom_i =
//! headroom_{i-1} - monthly_i`. Everything here is exact: income30 is kept as the fraction
//! `net / 3`, so the headroom in thirds of a cent is `net - 3 * burn30 - 3 * (monthly_1 + …)`
//! and no figure is rounded before the floor the contract asks for.
use crate::books::funds::{raised_by_fund, standing};
use crate::books::BooksError;
use crate::calendar::rfc3339;
use crate::config::{Config, Plan};
use crate::money::round_half_away_from_zero;
use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use serde::Serialize;

/// The figures of one fund a plan computation needs, all exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FundInputs {
    /// Net donations routed to the fund in `[t - 90 days, t)` (income30 is a third of it).
    pub net_90_days_cents: i64,
    /// The fund's cost in `[t - 30 days, t)`.
    pub burn30_cents: i64,
    /// `balance(f, t)`.
    pub balance_cents: i64,
}

/// One plan at an instant, as `GET /api/v1/plans` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlanFigures {
    pub slug: String,
    pub name: String,
    pub url: Option<String>,
    pub monthly_cents: i64,
    /// `floor(100 * covered)`, 0..=100.
    pub covered_percent: i64,
    /// `covered = 1`: the fund's recent income already pays for it, after the plans before it.
    pub funded: bool,
    /// The fund's runway with this plan and every plan before it adopted.
    pub runway_if_adopted_days: i64,
}

/// One fund's plans at an instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FundPlans {
    pub fund: String,
    pub name: String,
    /// income30 rounded half away from zero to the cent (display only).
    pub income30_cents: i64,
    pub burn30_cents: i64,
    pub balance_cents: i64,
    pub plans: Vec<PlanFigures>,
}

/// `GET /api/v1/plans` and `buildfund plans --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlansReport {
    pub currency: String,
    pub as_of: String,
    pub funds: Vec<FundPlans>,
}

// The arithmetic below is on i64 amounts widened to i128 and multiplied by small constants
// (3, 30, 100): it cannot leave i128.

/// `floor(100 * min(1, max(0, headroom / monthly)))` with the headroom given in thirds of a
/// cent: `floor(100 * headroom_thirds / (3 * monthly))`, clamped to 0..=100.
pub fn covered_percent(headroom_thirds: i128, monthly_cents: i64) -> i64 {
    assert!(monthly_cents > 0, "a plan's monthly cost is positive");
    let den = 3 * i128::from(monthly_cents);
    let pct = (100 * headroom_thirds).div_euclid(den);
    pct.clamp(0, 100) as i64
}

/// `runway_if_adopted`: 0 when the balance is not positive, else
/// `floor(balance / ((burn30 + added) / 30))`, computed exactly as
/// `floor(30 * balance / (burn30 + added))`. `added > 0`, so the burn is never zero.
pub(crate) fn runway_if_adopted(balance_cents: i64, burn30_cents: i64, added_cents: i64) -> i64 {
    if balance_cents <= 0 {
        return 0;
    }
    let burn = i128::from(burn30_cents) + i128::from(added_cents);
    assert!(burn > 0, "a plan adds a positive cost");
    (30 * i128::from(balance_cents)).div_euclid(burn) as i64
}

/// A fund's plans (in order) over its figures.
pub(crate) fn fund_plans<'a>(
    inputs: FundInputs,
    plans: impl IntoIterator<Item = &'a Plan>,
) -> Vec<PlanFigures> {
    // headroom_0 = net/3 - burn30, in thirds of a cent.
    let mut headroom_thirds =
        i128::from(inputs.net_90_days_cents) - 3 * i128::from(inputs.burn30_cents);
    let mut added = 0i64;
    let mut out = Vec::new();
    for p in plans {
        let covered_percent = covered_percent(headroom_thirds, p.monthly_cents);
        // covered = 1 exactly when the headroom is at least the plan's cost.
        let funded = headroom_thirds >= 3 * i128::from(p.monthly_cents);
        headroom_thirds -= 3 * i128::from(p.monthly_cents);
        added += p.monthly_cents;
        out.push(PlanFigures {
            slug: p.slug.clone(),
            name: p.name.clone(),
            url: p.url.clone(),
            monthly_cents: p.monthly_cents,
            covered_percent,
            funded,
            runway_if_adopted_days: runway_if_adopted(
                inputs.balance_cents,
                inputs.burn30_cents,
                added,
            ),
        });
    }
    out
}

/// Every configured fund's plans at `t` (funds in config order; a fund without plans has an
/// empty list).
pub(crate) async fn plans_at(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<Vec<FundPlans>, BooksError> {
    let from = std::cmp::max(t - Duration::days(90), config.ledger_start);
    let net = raised_by_fund(db, config, from, t).await?;
    let standing = standing(db, config, t).await?;
    Ok(config
        .funds
        .iter()
        .map(|f| {
            let inputs = FundInputs {
                net_90_days_cents: net.get(&f.slug).map_or(0, |r| r.net_cents),
                burn30_cents: standing.cost_30_days.get(&f.slug).copied().unwrap_or(0),
                balance_cents: standing.balance.get(&f.slug).copied().unwrap_or(0),
            };
            FundPlans {
                fund: f.slug.clone(),
                name: f.name.clone(),
                income30_cents: round_half_away_from_zero(i128::from(inputs.net_90_days_cents), 3)
                    as i64,
                burn30_cents: inputs.burn30_cents,
                balance_cents: inputs.balance_cents,
                plans: fund_plans(inputs, config.plans.iter().filter(|p| p.fund == f.slug)),
            }
        })
        .collect())
}

pub async fn plans_report(
    db: &impl ConnectionTrait,
    config: &Config,
    t: crate::bounds::At,
) -> Result<PlansReport, BooksError> {
    let t = t.instant();
    Ok(PlansReport {
        currency: config.currency.clone(),
        as_of: rfc3339(t),
        funds: plans_at(db, config, t).await?,
    })
}

/// How a plan's cover changed between two instants (the report's "plans that moved").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanChange {
    pub fund: String,
    pub slug: String,
    pub name: String,
    pub url: Option<String>,
    pub monthly_cents: i64,
    pub before_percent: i64,
    pub after_percent: i64,
    /// Not funded before, funded after.
    pub became_funded: bool,
    /// Funded before, not after.
    pub no_longer_funded: bool,
}

impl PlanChange {
    /// `after - before`, in percentage points.
    pub fn moved_points(&self) -> i64 {
        self.after_percent - self.before_percent
    }
}

/// The plans whose `covered_percent` differs between `before` and `after` (both from
/// [`plans_at`] over the same config), in config order.
pub fn plan_changes(before: &[FundPlans], after: &[FundPlans]) -> Vec<PlanChange> {
    let mut out = Vec::new();
    for fa in after {
        let fb = before.iter().find(|f| f.fund == fa.fund);
        for pa in &fa.plans {
            let pb = fb.and_then(|f| f.plans.iter().find(|p| p.slug == pa.slug));
            let (before_percent, before_funded) =
                pb.map_or((0, false), |p| (p.covered_percent, p.funded));
            if before_percent == pa.covered_percent {
                continue;
            }
            out.push(PlanChange {
                fund: fa.fund.clone(),
                slug: pa.slug.clone(),
                name: pa.name.clone(),
                url: pa.url.clone(),
                monthly_cents: pa.monthly_cents,
                before_percent,
                after_percent: pa.covered_percent,
                became_funded: pa.funded && !before_funded,
                no_longer_funded: before_funded && !pa.funded,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(slug: &str, monthly_cents: i64) -> Plan {
        Plan {
            slug: slug.into(),
            name: slug.to_uppercase(),
            fund: "cuda".into(),
            monthly_cents,
            url: None,
        }
    }

    #[test]
    fn a_plan_exactly_covered_is_funded() {
        // net 90 days 1,500.00 -> income30 500.00; burn30 320.00 -> headroom 180.00 = monthly.
        let inputs = FundInputs {
            net_90_days_cents: 150_000,
            burn30_cents: 32_000,
            balance_cents: 100_000,
        };
        let f = fund_plans(inputs, &[plan("gpu", 18_000)]);
        assert_eq!(f[0].covered_percent, 100);
        assert!(f[0].funded);
        // 30 * 1,000.00 / (320.00 + 180.00) = 60 days.
        assert_eq!(f[0].runway_if_adopted_days, 60);
        // One third of a cent short is no longer funded, though it floors to 99 %.
        let short = FundInputs {
            net_90_days_cents: 149_999,
            ..inputs
        };
        let f = fund_plans(short, &[plan("gpu", 18_000)]);
        assert_eq!((f[0].covered_percent, f[0].funded), (99, false));
    }

    #[test]
    fn a_second_plan_is_covered_by_what_the_first_leaves() {
        // income30 = 41,000.01 / 3 ... : net 123,001 cents -> 41,000.333… ; burn30 31,024.
        // headroom_0 = 9,976.333…; plan 1 (5,000.00) funded; headroom_1 = 4,976.333…
        // plan 2 (18,000): covered = 4,976.333… / 18,000 = 0.27646… -> 27 %.
        let inputs = FundInputs {
            net_90_days_cents: 123_001,
            burn30_cents: 31_024,
            balance_cents: 250_000,
        };
        let f = fund_plans(inputs, &[plan("cache", 5_000), plan("gpu", 18_000)]);
        assert_eq!((f[0].covered_percent, f[0].funded), (100, true));
        assert_eq!((f[1].covered_percent, f[1].funded), (27, false));
        // 30 * 250,000 / (31,024 + 5,000) = 208.19… -> 208; with both: / 54,024 = 138.83… -> 138.
        assert_eq!(f[0].runway_if_adopted_days, 208);
        assert_eq!(f[1].runway_if_adopted_days, 138);
        // A third plan after an uncovered one gets nothing.
        let f = fund_plans(
            inputs,
            &[plan("cache", 5_000), plan("gpu", 18_000), plan("more", 100)],
        );
        assert_eq!((f[2].covered_percent, f[2].funded), (0, false));
    }

    #[test]
    fn a_fund_burning_more_than_it_raises_covers_nothing() {
        let inputs = FundInputs {
            net_90_days_cents: 30_000, // income30 100.00
            burn30_cents: 10_001,      // burn30 100.01
            balance_cents: 5_000,
        };
        let f = fund_plans(inputs, &[plan("gpu", 18_000), plan("cache", 1)]);
        assert_eq!((f[0].covered_percent, f[0].funded), (0, false));
        assert_eq!((f[1].covered_percent, f[1].funded), (0, false));
        // 30 * 5,000 / (10,001 + 18,000) = 5.35… -> 5.
        assert_eq!(f[0].runway_if_adopted_days, 5);
    }

    #[test]
    fn a_fund_without_balance_has_no_runway_whatever_it_adopts() {
        for balance in [0, -1, -50_000] {
            let inputs = FundInputs {
                net_90_days_cents: 900_000,
                burn30_cents: 0,
                balance_cents: balance,
            };
            let f = fund_plans(inputs, &[plan("gpu", 18_000)]);
            assert_eq!(f[0].runway_if_adopted_days, 0, "balance {balance}");
            assert!(f[0].funded);
        }
        // Without burn, the plan's own cost is the burn: 30 * 1.00 / 0.01 = 3,000 days.
        assert_eq!(runway_if_adopted(100, 0, 1), 3000);
    }

    #[test]
    fn cover_floors_exact_thirds() {
        // headroom 1/3 cent of a 1-cent plan: 33.33… % -> 33.
        assert_eq!(covered_percent(1, 1), 33);
        assert_eq!(covered_percent(2, 1), 66);
        assert_eq!(covered_percent(3, 1), 100);
        assert_eq!(covered_percent(300, 1), 100);
        assert_eq!(covered_percent(-1, 1), 0);
        assert!(fund_plans(FundInputs::default(), &[]).is_empty());
    }

    #[test]
    fn changes_are_the_plans_whose_cover_moved() {
        let fp = |pcts: &[(i64, bool)]| {
            vec![FundPlans {
                fund: "cuda".into(),
                name: "CUDA".into(),
                income30_cents: 0,
                burn30_cents: 0,
                balance_cents: 0,
                plans: pcts
                    .iter()
                    .enumerate()
                    .map(|(i, (p, funded))| PlanFigures {
                        slug: format!("p{i}"),
                        name: format!("P{i}"),
                        url: None,
                        monthly_cents: 100,
                        covered_percent: *p,
                        funded: *funded,
                        runway_if_adopted_days: 0,
                    })
                    .collect(),
            }]
        };
        let before = fp(&[(100, true), (40, false), (0, false), (100, true)]);
        let after = fp(&[(100, true), (100, true), (12, false), (80, false)]);
        let c = plan_changes(&before, &after);
        let got: Vec<(&str, i64, bool, bool)> = c
            .iter()
            .map(|c| {
                (
                    c.slug.as_str(),
                    c.moved_points(),
                    c.became_funded,
                    c.no_longer_funded,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("p1", 60, true, false),
                ("p2", 12, false, false),
                ("p3", -20, false, true)
            ]
        );
    }
}
