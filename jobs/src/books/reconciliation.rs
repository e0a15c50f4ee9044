//! A month's reconciliation (cost-model.md, "Reconciliation"): every machine's modeled cost
//! against the invoices paying for the month, the other expenses by fund, and cash.
//!
//! [`reconcile`] is the rule as a plain function over figures; [`reconciliation`] reads them:
//! the machines' cost lines from the same source as `GET /api/v1/costs` (a closed month's
//! stored lines), the invoices paying for the month on the `incurred_at` index (an invoice
//! paying for M was incurred in M or in the month after), the other expenses of the month on
//! the `paid_at` index, and cash from the stored donation sums plus one sum of the expenses.
//!
//! As of `at`, an invoice counts as paying for M when it is recorded with `paid_at` before
//! `at` (a later record was not yet paid at `at`); the other expenses are those paid in
//! `[start of M, min(end of M, at))`.
use crate::books::expenses::{from_model, ExpenseKind, ExpenseRecord};
use crate::books::invoices::{classify, total_out, Class};
use crate::books::ledger::{raised_from_data, ts, WindowCosts};
use crate::books::opencollective_check::{latest_check, Check, CheckStatus};
use crate::books::BooksError;
use crate::books::{costs, store};
use crate::calendar::{rfc3339, Month, Period};
use crate::config::{Billing, Config};
use crate::money::round_half_away_from_zero;
use buildfund_entity::expenses;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use std::collections::BTreeMap;

/// A machine's status for a month, the first that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    NotBilled,
    Open,
    Unbilled,
    Matched,
    Over,
    Under,
}

impl MachineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::NotBilled => "not_billed",
            MachineStatus::Open => "open",
            MachineStatus::Unbilled => "unbilled",
            MachineStatus::Matched => "matched",
            MachineStatus::Over => "over",
            MachineStatus::Under => "under",
        }
    }
}

/// One machine's line of a reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MachineReconciliation {
    pub machine: String,
    pub billing: Billing,
    pub modeled_cents: i64,
    pub billed_cents: i64,
    pub difference_cents: i64,
    pub tolerance_cents: i64,
    pub status: MachineStatus,
    /// The ids of the invoice records paying for the month (reversals included).
    pub invoices: Vec<String>,
}

/// A fund's other expenses paid in the month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OtherExpenses {
    pub fund: String,
    pub total_cents: i64,
}

/// The latest OpenCollective check as the reconciliation shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OcCheckSummary {
    /// `ok`, `drift`, `skipped` or `never`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_cents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl OcCheckSummary {
    pub fn of(check: Option<&Check>) -> OcCheckSummary {
        match check {
            None => OcCheckSummary {
                status: "never".into(),
                checked_at: None,
                drift_cents: None,
                reason: None,
            },
            Some(c) => OcCheckSummary {
                status: c.status.as_str().into(),
                checked_at: Some(rfc3339(c.checked_at)),
                drift_cents: match c.status {
                    CheckStatus::Skipped => None,
                    _ => c.drift_cents,
                },
                reason: c.reason.clone(),
            },
        }
    }
}

/// A month's reconciliation: a plain domain value (the API, the CLI and later the report view
/// model take it as it is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reconciliation {
    pub month: String,
    pub currency: String,
    pub as_of: String,
    pub modeled_cents: i64,
    pub billed_cents: i64,
    pub difference_cents: i64,
    /// Cash at the end of the month or `at`, whichever is earlier.
    pub cash_cents: i64,
    pub machines: Vec<MachineReconciliation>,
    pub other_expenses: Vec<OtherExpenses>,
    pub opencollective: OcCheckSummary,
}

/// 1 % of `|modeled|`, rounded half away from zero to the cent.
pub(crate) fn default_tolerance(modeled_cents: i64) -> i64 {
    round_half_away_from_zero(i128::from(modeled_cents).abs(), 100) as i64
}

/// The rule: `modeled` per machine (its cost lines for the month as of `at`), the invoice
/// records paying for the month recorded before `at` and the other expenses paid in the month
/// before `at`; cash and the check come in as they are.
#[allow(clippy::too_many_arguments)]
pub fn reconcile(
    config: &Config,
    period: &Period,
    modeled: &BTreeMap<String, i64>,
    invoices: &[ExpenseRecord],
    others: &[ExpenseRecord],
    cash_cents: i64,
    check: Option<&Check>,
) -> Reconciliation {
    let (month, at) = (period.month, period.at);
    let open = !period.complete();
    let mut machines = Vec::new();
    for m in &config.machines {
        let modeled_cents = modeled.get(&m.name).copied().unwrap_or(0);
        let mine: Vec<&ExpenseRecord> = invoices
            .iter()
            .filter(|e| {
                matches!(classify(config, e), Class::Invoice { machine, pays_for }
                    if machine.name == m.name && pays_for == month)
            })
            .collect();
        if modeled_cents <= 0 && mine.is_empty() {
            continue;
        }
        let billed_cents: i64 = mine.iter().map(|e| e.amount_cents).sum();
        let difference_cents = billed_cents - modeled_cents;
        let tolerance_cents = m
            .billing_tolerance_cents
            .unwrap_or_else(|| default_tolerance(modeled_cents));
        let status = if m.billing == Billing::None {
            MachineStatus::NotBilled
        } else if open {
            MachineStatus::Open
        } else if mine.is_empty()
            || (billed_cents == 0 && mine.iter().any(|e| e.kind == ExpenseKind::Reversal))
        {
            // No record pays for the month, or the invoices were reversed in full.
            MachineStatus::Unbilled
        } else if difference_cents.abs() <= tolerance_cents {
            MachineStatus::Matched
        } else if difference_cents > tolerance_cents {
            MachineStatus::Over
        } else {
            MachineStatus::Under
        };
        machines.push(MachineReconciliation {
            machine: m.name.clone(),
            billing: m.billing,
            modeled_cents,
            billed_cents,
            difference_cents,
            tolerance_cents,
            status,
            invoices: mine.iter().map(|e| e.external_id.clone()).collect(),
        });
    }
    let mut by_fund: BTreeMap<&str, i64> = BTreeMap::new();
    for e in others {
        if let Class::Other { fund } = classify(config, e) {
            *by_fund.entry(fund.slug.as_str()).or_insert(0) += e.total_cents();
        }
    }
    // Funds in config order.
    let other_expenses = config
        .funds
        .iter()
        .filter_map(|f| {
            by_fund.get(f.slug.as_str()).map(|t| OtherExpenses {
                fund: f.slug.clone(),
                total_cents: *t,
            })
        })
        .collect();
    let modeled_cents = machines.iter().map(|m| m.modeled_cents).sum();
    let billed_cents = machines.iter().map(|m| m.billed_cents).sum();
    Reconciliation {
        month: month.to_string(),
        currency: config.currency.clone(),
        as_of: rfc3339(at),
        modeled_cents,
        billed_cents,
        difference_cents: billed_cents - modeled_cents,
        cash_cents,
        machines,
        other_expenses,
        opencollective: OcCheckSummary::of(check),
    }
}

/// The expense records with `incurred_at` in `[from, to)` and `paid_at` before `paid_before`.
async fn incurred_in(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    paid_before: DateTime<Utc>,
) -> Result<Vec<ExpenseRecord>, BooksError> {
    use expenses::Column as E;
    Ok(expenses::Entity::find()
        .filter(Expr::col(E::IncurredAt).gte(from))
        .filter(Expr::col(E::IncurredAt).lt(to))
        .filter(Expr::col(E::PaidAt).lt(paid_before))
        .order_by_asc(E::PaidAt)
        .order_by_asc(E::Source)
        .order_by_asc(E::ExternalId)
        .all(db)
        .await?
        .iter()
        .map(from_model)
        .collect::<Result<_, _>>()?)
}

/// `cash(t)`: the funds' opening balances, plus the net donations in `[ledger_start, t)`
/// (stored sums to the end of the month before `t`'s, the rest from the records), minus the
/// total of the expenses paid in `[ledger_start, t)`.
pub async fn cash(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<i64, BooksError> {
    let t = period.at;
    let mut cash: i64 = config.funds.iter().map(|f| f.opening_balance_cents).sum();
    if t <= config.ledger_start {
        return Ok(cash);
    }
    for (net, _) in store::to_date_before(db, config, period).await?.values() {
        cash += net;
    }
    let from = std::cmp::max(period.start, config.ledger_start);
    for r in raised_from_data(db, config, from, t).await?.values() {
        cash += r.net_cents;
    }
    cash -= total_out(db, config.ledger_start, t).await?;
    Ok(cash)
}

/// The reconciliation of `period`'s month as of its instant.
pub async fn reconciliation(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<Reconciliation, BooksError> {
    let lines = costs::month_costs(db, config, period).await?;
    reconciliation_of(db, config, period, &lines).await
}

/// The reconciliation of `period`'s month from its cost lines as of the period's instant (the
/// caller holds them).
pub async fn reconciliation_of(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
    lines: &WindowCosts,
) -> Result<Reconciliation, BooksError> {
    let others = crate::books::expenses::paid_in(db, period.start, period.as_of).await?;
    reconciliation_with(db, config, period, lines, &others).await
}

/// The reconciliation of `period`'s month from its cost lines as of the period's instant (the
/// caller holds them), and the listing of the expenses paid in the month: the month's records
/// are read once.
pub async fn reconciliation_and_expenses(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
    lines: &WindowCosts,
) -> Result<(Reconciliation, ExpensesMonth), BooksError> {
    let records = crate::books::expenses::paid_in(db, period.start, period.end).await?;
    let others: Vec<ExpenseRecord> = records
        .iter()
        .filter(|e| e.paid_at < period.as_of)
        .cloned()
        .collect();
    let r = reconciliation_with(db, config, period, lines, &others).await?;
    Ok((r, expenses_month(config, period.month, &records)))
}

/// [`reconcile`] over the month's `lines` and the `others` expenses paid in the month before
/// the period's instant, with the invoices, cash and check read here.
async fn reconciliation_with(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
    lines: &WindowCosts,
    others: &[ExpenseRecord],
) -> Result<Reconciliation, BooksError> {
    let mut modeled: BTreeMap<String, i64> = BTreeMap::new();
    for l in &lines.lines {
        *modeled.entry(l.machine.clone()).or_insert(0) += l.cost_cents;
    }
    // Arrears invoices paying for M were incurred in M + 1, advance ones in M.
    let invoices = incurred_in(db, period.start, period.after_next, period.at).await?;
    let end = period.as_of;
    let cash = cash(db, config, &Period::of(end, config.ledger_start)).await?;
    let check = latest_check(db).await?;
    Ok(reconcile(
        config,
        period,
        &modeled,
        &invoices,
        others,
        cash,
        check.as_ref(),
    ))
}

/// One expense record of a month as `GET /api/v1/expenses` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExpenseLine {
    pub source: String,
    pub id: String,
    pub kind: String,
    pub paid_at: String,
    pub incurred_at: String,
    pub account: String,
    pub payee: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub fees_cents: i64,
    pub total_cents: i64,
    /// The amount as the source gave it, in its currency.
    pub original_amount: String,
    pub original_currency: String,
    pub machine: Option<String>,
    pub pays_for: Option<String>,
    pub fund: Option<String>,
}

/// Every expense record paid in a month, classified, with the sums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExpensesMonth {
    pub month: String,
    pub currency: String,
    pub amount_cents: i64,
    pub fees_cents: i64,
    pub total_cents: i64,
    pub expenses: Vec<ExpenseLine>,
}

/// The listing of `records` (paid in `month`).
pub(crate) fn expenses_month(
    config: &Config,
    month: Month,
    records: &[ExpenseRecord],
) -> ExpensesMonth {
    let expenses: Vec<ExpenseLine> = records
        .iter()
        .map(|e| {
            let (machine, pays_for, fund) = match classify(config, e) {
                Class::Invoice { machine, pays_for } => {
                    (Some(machine.name.clone()), Some(pays_for.to_string()), None)
                }
                Class::Other { fund } => (None, None, Some(fund.slug.clone())),
            };
            ExpenseLine {
                source: e.source.clone(),
                id: e.external_id.clone(),
                kind: e.kind.as_str().into(),
                paid_at: rfc3339(e.paid_at),
                incurred_at: rfc3339(e.incurred_at),
                account: e.account_slug.clone(),
                payee: e.payee.clone(),
                tags: e.tags.clone(),
                description: e.description.clone(),
                amount_cents: e.amount_cents,
                fees_cents: e.fees_cents,
                total_cents: e.total_cents(),
                original_amount: e.original_amount.clone(),
                original_currency: e.original_currency.clone(),
                machine,
                pays_for,
                fund,
            }
        })
        .collect();
    ExpensesMonth {
        month: month.to_string(),
        currency: config.currency.clone(),
        amount_cents: expenses.iter().map(|e| e.amount_cents).sum(),
        fees_cents: expenses.iter().map(|e| e.fees_cents).sum(),
        total_cents: expenses.iter().map(|e| e.total_cents).sum(),
        expenses,
    }
}

/// The expense records paid in `month`, classified.
pub async fn expenses_of_month(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<ExpensesMonth, BooksError> {
    let records = crate::books::expenses::paid_in(db, period.start, period.end).await?;
    Ok(expenses_month(config, period.month, &records))
}

/// The instant of unix seconds `s` (for callers holding spans).
pub fn instant(s: i64) -> DateTime<Utc> {
    ts(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn config() -> Config {
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
invoice_tags = ["build01"]
[[machines]]
name = "gpu01"
monthly = "300.00"
idle_fund = "cuda"
billing = "advance"
invoice_tags = ["gpu01"]
billing_tolerance = "2.50"
[[machines]]
name = "donated"
monthly = "50.00"
billing = "none"
invoice_tags = ["donated"]
"#,
            "t",
        )
        .unwrap()
    }

    fn invoice(
        id: &str,
        tag: &str,
        incurred: DateTime<Utc>,
        paid: DateTime<Utc>,
        amount: i64,
    ) -> ExpenseRecord {
        ExpenseRecord {
            source: "opencollective".into(),
            external_id: id.into(),
            kind: if amount < 0 {
                ExpenseKind::Reversal
            } else {
                ExpenseKind::Expense
            },
            paid_at: paid,
            account_slug: "nix-community".into(),
            payee: None,
            tags: vec![tag.into()],
            description: None,
            incurred_at: incurred,
            amount_cents: amount,
            fees_cents: 0,
            original_amount: "0".into(),
            original_currency: "EUR".into(),
            expense_ref: None,
            reversal_of: None,
        }
    }

    fn modeled() -> BTreeMap<String, i64> {
        BTreeMap::from([
            ("build01".to_string(), 16500),
            ("gpu01".to_string(), 30000),
            ("donated".to_string(), 5000),
        ])
    }

    fn october() -> Month {
        Month::parse("2026-10").unwrap()
    }

    fn status(r: &Reconciliation, machine: &str) -> MachineStatus {
        r.machines
            .iter()
            .find(|m| m.machine == machine)
            .unwrap()
            .status
    }

    #[test]
    fn an_arrears_and_an_advance_invoice_pay_for_october() {
        let c = config();
        // build01 (arrears): the invoice of 3 November pays for October; 16490 against 16500
        // is 10 under, within 1 % (165).
        let b = invoice("b", "build01", at(2026, 11, 3), at(2026, 11, 10), 16490);
        // gpu01 (advance): the invoice of 1 October pays for October; 30300 is 300 over,
        // beyond its tolerance of 2.50.
        let g = invoice("g", "gpu01", at(2026, 10, 1), at(2026, 10, 2), 30300);
        // gpu01's November invoice pays for November: not counted.
        let g2 = invoice("g2", "gpu01", at(2026, 11, 1), at(2026, 11, 2), 30000);
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &modeled(),
            &[b, g, g2],
            &[],
            0,
            None,
        );
        let b = &r.machines[0];
        assert_eq!(
            (
                b.billed_cents,
                b.difference_cents,
                b.tolerance_cents,
                b.status
            ),
            (16490, -10, 165, MachineStatus::Matched)
        );
        let g = &r.machines[1];
        assert_eq!(
            (
                g.billed_cents,
                g.difference_cents,
                g.tolerance_cents,
                g.status
            ),
            (30300, 300, 250, MachineStatus::Over)
        );
        assert_eq!(g.invoices, vec!["g".to_string()]);
        assert_eq!(status(&r, "donated"), MachineStatus::NotBilled);
        assert_eq!(r.modeled_cents, 16500 + 30000 + 5000);
        assert_eq!(r.billed_cents, 16490 + 30300);
        assert_eq!(r.difference_cents, 16490 + 30300 - 51500);
        assert_eq!(r.opencollective.status, "never");
        // Before October is over every billed machine is open.
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 10, 20), c.ledger_start),
            &modeled(),
            &[],
            &[],
            0,
            None,
        );
        assert_eq!(status(&r, "build01"), MachineStatus::Open);
        assert_eq!(status(&r, "donated"), MachineStatus::NotBilled);
    }

    #[test]
    fn a_reversal_turns_matched_into_unbilled() {
        let c = config();
        let b = invoice("b", "build01", at(2026, 11, 3), at(2026, 11, 10), 16500);
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &modeled(),
            std::slice::from_ref(&b),
            &[],
            0,
            None,
        );
        assert_eq!(status(&r, "build01"), MachineStatus::Matched);
        // The reversal carries the invoice's tags and incurred_at: it pays for October too,
        // and the invoice reversed in full leaves October unbilled, both records listed.
        let mut rev = invoice(
            "b-rev",
            "build01",
            at(2026, 11, 3),
            at(2026, 11, 20),
            -16500,
        );
        rev.reversal_of = Some("b".into());
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &modeled(),
            &[b.clone(), rev.clone()],
            &[],
            0,
            None,
        );
        let m = &r.machines[0];
        assert_eq!(
            (m.billed_cents, m.difference_cents, m.status),
            (0, -16500, MachineStatus::Unbilled)
        );
        assert_eq!(m.invoices, vec!["b".to_string(), "b-rev".to_string()]);
        // As of before the reversal was recorded the caller passes only the invoice: matched.
        // A partial refund is no full reversal: under.
        rev.amount_cents = -1000;
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &modeled(),
            &[b, rev],
            &[],
            0,
            None,
        );
        assert_eq!(status(&r, "build01"), MachineStatus::Under);
    }

    #[test]
    fn exactly_at_the_tolerance_is_matched_one_cent_beyond_is_not() {
        let c = config();
        // 1 % of 16500 is 165.
        for (billed, want) in [
            (16665, MachineStatus::Matched),
            (16335, MachineStatus::Matched),
            (16666, MachineStatus::Over),
            (16334, MachineStatus::Under),
        ] {
            let b = invoice("b", "build01", at(2026, 11, 3), at(2026, 11, 10), billed);
            let r = reconcile(
                &c,
                &Period::new(october(), at(2026, 12, 1), c.ledger_start),
                &modeled(),
                &[b],
                &[],
                0,
                None,
            );
            assert_eq!(status(&r, "build01"), want, "{billed}");
        }
        // Half a cent rounds away from zero: 1 % of 16550 is 165.5 -> 166.
        assert_eq!(default_tolerance(16550), 166);
        assert_eq!(default_tolerance(-16550), 166);
        assert_eq!(default_tolerance(16549), 165);
    }

    #[test]
    fn an_unbilled_machine_and_an_invoice_without_modeled_cost_are_listed() {
        let c = config();
        let mut m = modeled();
        m.remove("gpu01");
        let g = invoice("g", "gpu01", at(2026, 10, 5), at(2026, 10, 6), 1000);
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &m,
            &[g],
            &[],
            0,
            None,
        );
        assert_eq!(status(&r, "build01"), MachineStatus::Unbilled);
        let g = r.machines.iter().find(|x| x.machine == "gpu01").unwrap();
        // Tolerance 2.50 configured: 1000 over.
        assert_eq!((g.modeled_cents, g.status), (0, MachineStatus::Over));
        // No modeled cost and no invoice: not listed.
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &BTreeMap::new(),
            &[],
            &[],
            0,
            None,
        );
        assert!(r.machines.is_empty());
    }

    #[test]
    fn other_expenses_are_summed_by_fund_in_config_order() {
        let c = config();
        let mut cuda = invoice("c", "ci", at(2026, 10, 1), at(2026, 10, 2), 700);
        cuda.account_slug = "nix-cuda".into();
        cuda.fees_cents = 30;
        let domain = invoice("d", "domain", at(2026, 10, 1), at(2026, 10, 2), 1500);
        let tagged_donated = invoice("x", "donated", at(2026, 10, 1), at(2026, 10, 2), 100);
        let r = reconcile(
            &c,
            &Period::new(october(), at(2026, 12, 1), c.ledger_start),
            &BTreeMap::new(),
            &[],
            &[cuda, domain, tagged_donated],
            0,
            None,
        );
        assert_eq!(
            r.other_expenses,
            vec![
                OtherExpenses {
                    fund: "general".into(),
                    total_cents: 1600
                },
                OtherExpenses {
                    fund: "cuda".into(),
                    total_cents: 730
                }
            ]
        );
    }
}
