//! The OpenCollective check (cost-model.md, "Reconciliation", "The OpenCollective check"):
//! after each sync, OpenCollective's own balance of the collective with its projects against
//! the ledger, for the instant `t` up to which the sync has read:
//!
//! `drift = (balance_oc(t) - balance_oc(ledger_start)) - (sum net of the OpenCollective
//! donation records - sum total of the OpenCollective expense records, both dated in
//! [ledger_start, t))`.
//!
//! A drift other than 0 means the ledger misses or miscounts a transaction: it is stored
//! (`opencollective_checks`), logged, shown as a gauge and in `books status`, never corrected.
//! When the collective's currency is not the ledger currency the check is `skipped` and says
//! why (OpenCollective's balance in another currency cannot be compared to the cent).
use buildfund_entity::{donations, expenses, opencollective_checks};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryOrder, QuerySelect, Set};
use serde::Serialize;

/// The source the sync stores its records under (`sources::opencollective::SOURCE`).
const SOURCE: &str = "opencollective";

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// No drift.
    Ok,
    /// OpenCollective's balance moved by another amount than the ledger.
    Drift,
    /// Not comparable (see the reason).
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Drift => "drift",
            CheckStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "ok" => Some(CheckStatus::Ok),
            "drift" => Some(CheckStatus::Drift),
            "skipped" => Some(CheckStatus::Skipped),
            _ => None,
        }
    }
}

/// One check, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub collective: String,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    /// The instant `t` the sync had read up to.
    pub through: DateTime<Utc>,
    pub status: CheckStatus,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// OpenCollective's balance before `through`, ledger cents.
    pub balance_oc_cents: Option<i64>,
    /// OpenCollective's balance before `ledger_start`, ledger cents.
    pub balance_oc_start_cents: Option<i64>,
    /// Net donations minus total expenses of the OpenCollective records in
    /// `[ledger_start, through)`.
    pub ledger_cents: Option<i64>,
    pub drift_cents: Option<i64>,
}

/// OpenCollective's balance as the API gives it: whole cents of a currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcBalance {
    pub cents: i64,
    pub currency: String,
}

/// The ledger's side: net of the OpenCollective donation records dated in `[from, to)` minus
/// the total of the OpenCollective expense records paid in it.
pub async fn ledger_cents(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, DbErr> {
    if from >= to {
        return Ok(0);
    }
    let sum = |e: Expr| Func::cast_as(Func::sum(e), Alias::new("BIGINT"));
    use donations::Column as D;
    use expenses::Column as E;
    let q = Query::select()
        .expr_as(sum(Expr::col(D::NetCents)), Alias::new("total"))
        .from(donations::Entity)
        .and_where(Expr::col(D::Source).eq(SOURCE))
        .and_where(Expr::col(D::OccurredAt).gte(from))
        .and_where(Expr::col(D::OccurredAt).lt(to))
        .to_owned();
    let raised: Option<i64> = match db.query_one(&q).await? {
        Some(row) => row.try_get("", "total")?,
        None => None,
    };
    let q = Query::select()
        .expr_as(
            sum(Expr::col(E::AmountCents).add(Expr::col(E::FeesCents))),
            Alias::new("total"),
        )
        .from(expenses::Entity)
        .and_where(Expr::col(E::Source).eq(SOURCE))
        .and_where(Expr::col(E::PaidAt).gte(from))
        .and_where(Expr::col(E::PaidAt).lt(to))
        .to_owned();
    let spent: Option<i64> = match db.query_one(&q).await? {
        Some(row) => row.try_get("", "total")?,
        None => None,
    };
    raised
        .unwrap_or(0)
        .checked_sub(spent.unwrap_or(0))
        .ok_or_else(|| DbErr::Type("the ledger's OpenCollective sum overflows".into()))
}

/// The check of these balances against `ledger` (see the module doc), pure.
pub fn evaluate(
    collective: &str,
    ledger_currency: &str,
    checked_at: DateTime<Utc>,
    through: DateTime<Utc>,
    at: &OcBalance,
    at_start: &OcBalance,
    ledger: i64,
) -> Check {
    let mut check = Check {
        collective: collective.to_string(),
        checked_at,
        through,
        status: CheckStatus::Skipped,
        reason: None,
        balance_oc_cents: None,
        balance_oc_start_cents: None,
        ledger_cents: Some(ledger),
        drift_cents: None,
    };
    for b in [at, at_start] {
        if b.currency != ledger_currency {
            check.reason = Some(format!(
                "the collective's balance is in {}, not in the ledger currency {ledger_currency}: OpenCollective's balance cannot be compared to the cent",
                b.currency
            ));
            return check;
        }
    }
    check.balance_oc_cents = Some(at.cents);
    check.balance_oc_start_cents = Some(at_start.cents);
    let drift = (at.cents - at_start.cents) - ledger;
    check.drift_cents = Some(drift);
    check.status = if drift == 0 {
        CheckStatus::Ok
    } else {
        CheckStatus::Drift
    };
    check
}

/// A skipped check with its reason.
pub fn skipped(
    collective: &str,
    checked_at: DateTime<Utc>,
    through: DateTime<Utc>,
    reason: String,
) -> Check {
    Check {
        collective: collective.to_string(),
        checked_at,
        through,
        status: CheckStatus::Skipped,
        reason: Some(reason),
        balance_oc_cents: None,
        balance_oc_start_cents: None,
        ledger_cents: None,
        drift_cents: None,
    }
}

/// Stores a check.
pub async fn record(db: &impl ConnectionTrait, check: &Check) -> Result<(), DbErr> {
    opencollective_checks::Entity::insert(opencollective_checks::ActiveModel {
        collective: Set(check.collective.clone()),
        checked_at: Set(check.checked_at),
        through: Set(check.through),
        status: Set(check.status.as_str().into()),
        reason: Set(check.reason.clone()),
        balance_oc_cents: Set(check.balance_oc_cents),
        balance_oc_start_cents: Set(check.balance_oc_start_cents),
        ledger_cents: Set(check.ledger_cents),
        drift_cents: Set(check.drift_cents),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The latest check (by `checked_at`, then id), if any: `None` is "never" (no sync yet). One
/// indexed lookup, however many checks are stored.
pub async fn latest_check(db: &impl ConnectionTrait) -> Result<Option<Check>, DbErr> {
    use opencollective_checks::Column as C;
    let Some(m) = opencollective_checks::Entity::find()
        .order_by_desc(C::CheckedAt)
        .order_by_desc(C::Id)
        .limit(1)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let status = CheckStatus::parse(&m.status).ok_or_else(|| {
        DbErr::Type(format!(
            "opencollective_checks row {} has the status {:?}",
            m.id, m.status
        ))
    })?;
    Ok(Some(Check {
        collective: m.collective,
        checked_at: m.checked_at,
        through: m.through,
        status,
        reason: m.reason,
        balance_oc_cents: m.balance_oc_cents,
        balance_oc_start_cents: m.balance_oc_start_cents,
        ledger_cents: m.ledger_cents,
        drift_cents: m.drift_cents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn eur(cents: i64) -> OcBalance {
        OcBalance {
            cents,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn the_drift_is_the_balance_change_minus_the_ledger() {
        let now = t("2026-12-01T00:00:00Z");
        // Balance 5,000.00 before the ledger start, 5,812.34 now; the ledger has 812.34.
        let ok = evaluate(
            "nixfund",
            "EUR",
            now,
            now,
            &eur(581234),
            &eur(500000),
            81234,
        );
        assert_eq!((ok.status, ok.drift_cents), (CheckStatus::Ok, Some(0)));
        // An expense of 166.10 the listing missed: OpenCollective's balance is lower.
        let drift = evaluate(
            "nixfund",
            "EUR",
            now,
            now,
            &eur(581234 - 16610),
            &eur(500000),
            81234,
        );
        assert_eq!(
            (drift.status, drift.drift_cents),
            (CheckStatus::Drift, Some(-16610))
        );
        // A donation the ledger missed makes it positive.
        let missed = evaluate(
            "nixfund",
            "EUR",
            now,
            now,
            &eur(600000),
            &eur(500000),
            90000,
        );
        assert_eq!(missed.drift_cents, Some(10000));
    }

    #[test]
    fn another_currency_is_skipped_and_says_why() {
        let now = t("2026-12-01T00:00:00Z");
        let usd = OcBalance {
            cents: 100,
            currency: "USD".into(),
        };
        let c = evaluate("nixfund", "EUR", now, now, &usd, &usd, 0);
        assert_eq!(c.status, CheckStatus::Skipped);
        assert_eq!(c.drift_cents, None);
        assert!(
            c.reason
                .as_deref()
                .unwrap()
                .contains("in USD, not in the ledger currency EUR"),
            "{c:?}"
        );
    }
}
