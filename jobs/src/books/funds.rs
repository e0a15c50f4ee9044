//! Funds: what came in (donations, routed by tier, then account, then the default fund), what
//! went out (cost lines), balance, burn and runway (cost-model.md, "Donations" and "Balance,
//! burn, runway").
use crate::books::costs::{clip, cost_to_date_by_fund, month_costs, span_lines, WindowCosts};
use crate::calendar::Month;
use crate::calendar::Span;
use crate::config::{Config, Fund};
use buildfund_entity::donations;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, DbErr, ExprTrait};
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub fn checked_add(self, o: Raised) -> Result<Raised, DbErr> {
        Ok(Raised {
            gross_cents: add_cents(self.gross_cents, o.gross_cents)?,
            fees_cents: add_cents(self.fees_cents, o.fees_cents)?,
            net_cents: add_cents(self.net_cents, o.net_cents)?,
        })
    }
}

/// `a + b` in cents, checked: sums of money never wrap. Records are bounded at the door
/// ([`crate::books::donations::MAX_RECORD_CENTS`]), so this fails only on figures that cannot
/// come from the books (millions of records at the bound).
pub fn add_cents(a: i64, b: i64) -> Result<i64, DbErr> {
    a.checked_add(b)
        .ok_or_else(|| DbErr::Custom(format!("a money sum overflows: {a} + {b} cents")))
}

/// Sums of the donation records dated in `[from, to)`, per fund.
pub async fn raised_by_fund(
    db: &impl ConnectionTrait,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Raised>, DbErr> {
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

/// One fund's figures for a month, as `GET /api/v1/funds` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FundMonth {
    pub slug: String,
    pub name: String,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub spent_cents: i64,
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
}

impl Standing {
    pub fn runway_days(&self, fund: &str) -> Option<i64> {
        runway_days(
            self.balance.get(fund).copied().unwrap_or(0),
            self.cost_30_days.get(fund).copied().unwrap_or(0),
        )
    }
}

pub async fn standing(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<Standing, DbErr> {
    let net = raised_by_fund(db, config, config.ledger_start, t).await?;
    let cost = cost_to_date_by_fund(db, config, t).await?;
    let mut balance = BTreeMap::new();
    for f in &config.funds {
        let raised = net.get(&f.slug).map(|r| r.net_cents).unwrap_or(0);
        let spent = cost.get(&f.slug).copied().unwrap_or(0);
        let b = add_cents(f.opening_balance_cents, raised)?;
        let b = add_cents(b, spent.checked_neg().unwrap_or(i64::MAX))?;
        balance.insert(f.slug.clone(), b);
    }
    let last_30 = Span::new((t - Duration::days(30)).timestamp(), t.timestamp());
    let mut cost_30_days: BTreeMap<String, i64> = BTreeMap::new();
    for part in span_lines(db, config, last_30, t).await? {
        for (fund, cents) in part.by_fund() {
            let sum = cost_30_days.entry(fund).or_insert(0);
            *sum = add_cents(*sum, cents)?;
        }
    }
    Ok(Standing {
        balance,
        cost_30_days,
    })
}

/// The month's figures of every fund as of `at`, with the month's cost lines they came from.
pub async fn funds_month(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<(Vec<FundMonth>, WindowCosts), DbErr> {
    let costs = month_costs(db, config, month, at).await?;
    let spent = costs.by_fund();
    let raised = match clip(config, month.span(), at) {
        Some(w) => {
            let ts = |s: i64| Utc.timestamp_opt(s, 0).single().expect("valid instant");
            raised_by_fund(db, config, ts(w.start), ts(w.end)).await?
        }
        None => BTreeMap::new(),
    };
    // Balance and runway as of the end of the month or `at`, whichever is earlier.
    let end = std::cmp::min(month.next().start(), at);
    let standing = standing(db, config, end).await?;
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
                balance_cents: standing.balance.get(&f.slug).copied().unwrap_or(0),
                goal_cents: f.monthly_goal_cents,
                runway_days: standing.runway_days(&f.slug),
            }
        })
        .collect();
    Ok((funds, costs))
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
