//! Which expense is a machine's invoice and which an other expense, and what each costs which
//! fund (cost-model.md, "Expenses (money out)" and "Reconciliation").
//!
//! - An expense is an **invoice** of the first machine in config order that lists one of its
//!   tags in `invoice_tags` (compared case-insensitively). When that machine's `billing` is
//!   `"none"` the expense is an **other expense**: the search does not go on to a later machine
//!   with the same tag (the first matching machine takes it, whatever its billing).
//! - An invoice pays for a month: `arrears` the month before the month of `incurred_at`,
//!   `advance` the month of `incurred_at`.
//! - An invoice's `fees` are a cost of the machine's `idle_fund` (its `amount` is already in the
//!   books through the modeled cost); an other expense's `total` is a cost of the fund its
//!   paying account routes to (the funds' `accounts`, else the default fund; tiers do not
//!   apply), both at `paid_at`.
//!
//! Expense costs are never stored: every read sums them from the `expenses` table by
//! `paid_at` range (one query on its `paid_at` index, grouped by paying account and tags, so
//! the rows returned are as many as the distinct (account, tags) pairs), and adds them to the
//! machine cost. They are therefore exact in every path (stored month, stored days, data)
//! without any fingerprint of `invoice_tags`/`billing`.
use crate::books::expenses::ExpenseRecord;
use crate::books::BooksError;
use crate::calendar::Month;
use crate::config::{Billing, Config, Fund, Machine};
use buildfund_entity::expenses;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, DbErr, ExprTrait};
use std::collections::BTreeMap;

/// What an expense is in the books.
#[derive(Clone, Copy, Debug)]
pub enum Class<'a> {
    /// An invoice of `machine`, paying for `pays_for`.
    Invoice {
        machine: &'a Machine,
        pays_for: Month,
    },
    /// An other expense, a cost of `fund`.
    Other { fund: &'a Fund },
}

/// The first machine in config order with one of `tags` among its `invoice_tags`
/// (case-insensitively), whatever its billing.
pub(crate) fn tagged_machine<'a>(config: &'a Config, tags: &[String]) -> Option<&'a Machine> {
    let tags: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    config.machines.iter().find(|m| {
        m.invoice_tags
            .iter()
            .any(|it| tags.iter().any(|t| *t == it.to_lowercase()))
    })
}

/// The month an invoice of a machine billed `billing` pays for; `None` for `"none"`.
pub fn pays_for(billing: Billing, incurred_at: DateTime<Utc>) -> Option<Month> {
    match billing {
        Billing::Arrears => Some(Month::of(incurred_at).prev()),
        Billing::Advance => Some(Month::of(incurred_at)),
        Billing::None => None,
    }
}

/// The fund an other expense paid from `account` is a cost of: the first fund listing the
/// account, else the default fund.
pub(crate) fn expense_fund<'a>(config: &'a Config, account: &str) -> &'a Fund {
    config
        .funds
        .iter()
        .find(|f| f.accounts.iter().any(|a| a == account))
        .unwrap_or_else(|| config.default_fund())
}

/// What an expense with these tags, paid from `account`, incurred at `incurred_at`, is.
pub(crate) fn classify_parts<'a>(
    config: &'a Config,
    account: &str,
    tags: &[String],
    incurred_at: DateTime<Utc>,
) -> Class<'a> {
    if let Some(machine) = tagged_machine(config, tags) {
        if let Some(pays_for) = pays_for(machine.billing, incurred_at) {
            return Class::Invoice { machine, pays_for };
        }
    }
    Class::Other {
        fund: expense_fund(config, account),
    }
}

/// What an expense record is.
pub fn classify<'a>(config: &'a Config, e: &ExpenseRecord) -> Class<'a> {
    classify_parts(config, &e.account_slug, &e.tags, e.incurred_at)
}

/// The fund an expense is a cost of and how much: `(idle fund, fees)` for an invoice,
/// `(fund, total)` for an other expense.
pub(crate) fn cost_of(class: Class<'_>, amount: i64, fees: i64) -> (&str, i64) {
    match class {
        Class::Invoice { machine, .. } => (machine.idle_fund.as_str(), fees),
        Class::Other { fund } => (fund.slug.as_str(), amount + fees),
    }
}

/// Expense costs per fund of `records` (all of them, whatever their `paid_at`); funds
/// without any left out.
pub fn costs_by_fund(config: &Config, records: &[ExpenseRecord]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in records {
        let (fund, cents) = cost_of(classify(config, e), e.amount_cents, e.fees_cents);
        *out.entry(fund.to_string()).or_insert(0) += cents;
    }
    out.retain(|_, c| *c != 0);
    out
}

/// Expense costs per fund of the records paid in `[from, to)`, summed in the database per
/// (paying account, tags); funds without any left out.
pub(crate) async fn expense_costs(
    db: &impl ConnectionTrait,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, i64>, BooksError> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    if from >= to {
        return Ok(out);
    }
    use expenses::Column as E;
    let sum = |c: E| Func::cast_as(Func::sum(Expr::col(c)), Alias::new("BIGINT"));
    let q = Query::select()
        .columns([E::AccountSlug, E::Tags])
        .expr_as(sum(E::AmountCents), Alias::new("amount"))
        .expr_as(sum(E::FeesCents), Alias::new("fees"))
        .from(expenses::Entity)
        .and_where(Expr::col(E::PaidAt).gte(from))
        .and_where(Expr::col(E::PaidAt).lt(to))
        .group_by_columns([E::AccountSlug, E::Tags])
        .to_owned();
    for row in db.query_all(&q).await? {
        let account: String = row.try_get("", "account_slug")?;
        let tags: String = row.try_get("", "tags")?;
        let tags: Vec<String> = serde_json::from_str(&tags)
            .map_err(|e| DbErr::Json(format!("expenses.tags {tags:?}: {e}")))?;
        let amount: i64 = row.try_get("", "amount")?;
        let fees: i64 = row.try_get("", "fees")?;
        // The class of a group never depends on incurred_at: only whether it is an invoice.
        let class = classify_parts(config, &account, &tags, from);
        let (fund, cents) = cost_of(class, amount, fees);
        let sum = out.entry(fund.to_string()).or_insert(0);
        *sum = crate::books::ledger::add_cents(*sum, cents)?;
    }
    out.retain(|_, c| *c != 0);
    Ok(out)
}

/// `total` (amount + fees) of every expense record paid in `[from, to)`: what left the
/// collective (cash).
pub(crate) async fn total_out(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, BooksError> {
    if from >= to {
        return Ok(0);
    }
    use expenses::Column as E;
    let q = Query::select()
        .expr_as(
            Func::cast_as(
                Func::sum(Expr::col(E::AmountCents).add(Expr::col(E::FeesCents))),
                Alias::new("BIGINT"),
            ),
            Alias::new("total"),
        )
        .from(expenses::Entity)
        .and_where(Expr::col(E::PaidAt).gte(from))
        .and_where(Expr::col(E::PaidAt).lt(to))
        .to_owned();
    Ok(match db.query_one(&q).await? {
        Some(row) => row.try_get::<Option<i64>>("", "total")?.unwrap_or(0),
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::expenses::ExpenseKind;
    use chrono::TimeZone;

    pub(crate) fn config() -> Config {
        Config::parse(
            r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
default = true
[[funds]]
slug = "cuda"
accounts = ["nix-cuda"]
[[machines]]
name = "build01"
monthly = "165.00"
invoice_tags = ["build01", "Hetzner"]
[[machines]]
name = "gpu01"
monthly = "300.00"
idle_fund = "cuda"
billing = "advance"
invoice_tags = ["GPU01", "hetzner"]
[[machines]]
name = "donated"
monthly = "50.00"
billing = "none"
invoice_tags = ["donated", "gpu-extra"]
[[machines]]
name = "gpu02"
monthly = "10.00"
invoice_tags = ["gpu-extra"]
"#,
            "t",
        )
        .unwrap()
    }

    pub(crate) fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    pub(crate) fn expense(tags: &[&str], account: &str, amount: i64, fees: i64) -> ExpenseRecord {
        ExpenseRecord {
            source: "opencollective".into(),
            external_id: format!("e{amount}"),
            kind: ExpenseKind::Expense,
            paid_at: at(2026, 11, 10),
            account_slug: account.into(),
            payee: Some("Jane".into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            description: None,
            incurred_at: at(2026, 11, 3),
            amount_cents: amount,
            fees_cents: fees,
            original_amount: "0".into(),
            original_currency: "EUR".into(),
            expense_ref: None,
            reversal_of: None,
        }
    }

    fn machine_of(c: Class<'_>) -> Option<(&str, Month)> {
        match c {
            Class::Invoice { machine, pays_for } => Some((machine.name.as_str(), pays_for)),
            Class::Other { .. } => None,
        }
    }

    #[test]
    fn an_arrears_invoice_pays_for_the_month_before_and_an_advance_one_for_its_own() {
        let c = config();
        let e = expense(&["hosting", "BUILD01"], "nix-community", 16490, 120);
        assert_eq!(
            machine_of(classify(&c, &e)),
            Some(("build01", Month::parse("2026-10").unwrap()))
        );
        let e = expense(&["gpu01"], "nix-community", 30000, 0);
        assert_eq!(
            machine_of(classify(&c, &e)),
            Some(("gpu01", Month::parse("2026-11").unwrap()))
        );
        // January's arrears invoice pays for December of the year before.
        let mut e = expense(&["build01"], "nix-community", 1, 0);
        e.incurred_at = at(2027, 1, 1);
        assert_eq!(
            machine_of(classify(&c, &e)),
            Some(("build01", Month::parse("2026-12").unwrap()))
        );
    }

    #[test]
    fn a_tag_two_machines_list_goes_to_the_first_in_config_order() {
        let c = config();
        // "hetzner" is listed by build01 (as "Hetzner") and gpu01: build01 comes first.
        let e = expense(&["HETZNER"], "nix-community", 100, 0);
        assert_eq!(machine_of(classify(&c, &e)).unwrap().0, "build01");
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("machines[1].invoice_tags[1]"), "{w:?}");
        assert!(w[0].contains("build01") && w[0].contains("gpu01"), "{w:?}");
    }

    #[test]
    fn a_tag_of_a_machine_billed_none_makes_an_other_expense_even_if_a_later_machine_lists_it() {
        let c = config();
        let e = expense(&["gpu-extra"], "nix-cuda", 700, 30);
        assert!(matches!(classify(&c, &e), Class::Other { fund } if fund.slug == "cuda"));
        assert_eq!(
            costs_by_fund(&c, &[e]),
            BTreeMap::from([("cuda".to_string(), 730)])
        );
    }

    #[test]
    fn a_fee_on_an_invoice_is_a_cost_of_the_idle_fund_and_an_other_expense_costs_its_total() {
        let c = config();
        let invoice = expense(&["gpu01"], "nix-community", 30000, 250);
        let domain = expense(&["domain"], "elsewhere", 1500, 45);
        let cuda = expense(&[], "nix-cuda", 1000, 0);
        assert_eq!(
            costs_by_fund(&c, &[invoice, domain, cuda]),
            BTreeMap::from([("cuda".to_string(), 1250), ("general".to_string(), 1545)])
        );
        // A reversal of the invoice gives the fee back.
        let mut reversal = expense(&["gpu01"], "nix-community", -30000, -250);
        reversal.kind = ExpenseKind::Reversal;
        let invoice = expense(&["gpu01"], "nix-community", 30000, 250);
        assert_eq!(costs_by_fund(&c, &[invoice, reversal]), BTreeMap::new());
    }
}
