//! Expense records (cost-model.md, "Expenses (money out)"): what the OpenCollective sync and
//! manual entries store, and the store that keeps them, idempotent by `(source, external_id)`.
//!
//! An expense is money that left the collective: a paid OpenCollective expense (its EXPENSE
//! DEBIT transaction), a reversal of one (its own record, negative, dated when reversed), or a
//! manual expense paid outside OpenCollective. Amounts are ledger cents, converted like
//! donations ([`crate::books::donations::to_ledger_cents`]); `amount_cents` is what was paid to
//! the payee and `fees_cents` what paying it cost on top (payout and processor fees), so the
//! collective's balance falls by [`ExpenseRecord::total_cents`].
//!
//! **Stored books stay exact:** a write marks the months of every `paid_at` it adds, changes
//! (before and after) in the same transaction, like a donation write.
use crate::books::donations::{check_bound, Stored};
use buildfund_entity::expenses;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, Set,
    TransactionSession, TransactionTrait,
};
use std::collections::HashMap;

pub mod manual;

/// What an expense record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpenseKind {
    /// A paid OpenCollective expense.
    Expense,
    /// The reversal (refund) of a paid OpenCollective expense: negative amount and fees.
    Reversal,
    /// An expense paid outside OpenCollective, entered by an admin.
    Manual,
}

impl ExpenseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpenseKind::Expense => "expense",
            ExpenseKind::Reversal => "reversal",
            ExpenseKind::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<ExpenseKind> {
        match s {
            "expense" => Some(ExpenseKind::Expense),
            "reversal" => Some(ExpenseKind::Reversal),
            "manual" => Some(ExpenseKind::Manual),
            _ => None,
        }
    }
}

/// One expense, reversal or manual expense, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpenseRecord {
    /// `opencollective` or `manual`.
    pub source: String,
    /// OpenCollective: the id of the EXPENSE transaction (the DEBIT of a payment, the CREDIT of
    /// a reversal); manual: the idempotency key.
    pub external_id: String,
    pub kind: ExpenseKind,
    /// When the money left (or came back, for a reversal): the instant the expense is a cost.
    pub paid_at: DateTime<Utc>,
    /// The collective or project that paid.
    pub account_slug: String,
    pub payee: Option<String>,
    /// The expense's tags as the source gave them (matching is the books' business).
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// The invoice's date (00:00:00 UTC of it), or the instant given.
    pub incurred_at: DateTime<Utc>,
    /// Paid to the payee, ledger cents (negative for a reversal).
    pub amount_cents: i64,
    /// What paying it cost on top (payout/processor fees), ledger cents (negative for a
    /// reversal).
    pub fees_cents: i64,
    /// The amount as the source gave it: a decimal string in `original_currency`.
    pub original_amount: String,
    pub original_currency: String,
    /// OpenCollective's expense id (a reversal carries its expense's).
    pub expense_ref: Option<String>,
    /// The `external_id` of the record a reversal reverses.
    pub reversal_of: Option<String>,
}

impl ExpenseRecord {
    /// What the collective's balance fell by: amount plus fees.
    pub fn total_cents(&self) -> i64 {
        self.amount_cents + self.fees_cents
    }

    /// The first money field beyond the record bound
    /// ([`crate::books::donations::MAX_RECORD_CENTS`]), named, with why.
    pub fn out_of_bounds(&self) -> Option<String> {
        [
            ("amount_cents", self.amount_cents),
            ("fees_cents", self.fees_cents),
        ]
        .into_iter()
        .find_map(|(name, c)| check_bound(c).err().map(|e| format!("{name}: {e}")))
    }
}

/// Why expenses could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ExpenseError {
    #[error("expense {source_name}/{external_id} refused: {why}")]
    Refused {
        source_name: String,
        external_id: String,
        why: String,
    },
    #[error("the stored expense {source_name}/{external_id} is unreadable: {why}")]
    Corrupt {
        source_name: String,
        external_id: String,
        why: String,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The stored `tags` column: a JSON array of strings.
pub(crate) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// The domain record of a stored row.
pub(crate) fn from_model(m: &expenses::Model) -> Result<ExpenseRecord, ExpenseError> {
    let corrupt = |why: String| ExpenseError::Corrupt {
        source_name: m.source.clone(),
        external_id: m.external_id.clone(),
        why,
    };
    let tags: Vec<String> =
        serde_json::from_str(&m.tags).map_err(|e| corrupt(format!("tags: {e}")))?;
    let kind = ExpenseKind::parse(&m.kind).ok_or_else(|| corrupt(format!("kind {:?}", m.kind)))?;
    Ok(ExpenseRecord {
        source: m.source.clone(),
        external_id: m.external_id.clone(),
        kind,
        paid_at: m.paid_at,
        account_slug: m.account_slug.clone(),
        payee: m.payee.clone(),
        tags,
        description: m.description.clone(),
        incurred_at: m.incurred_at,
        amount_cents: m.amount_cents,
        fees_cents: m.fees_cents,
        original_amount: m.original_amount.clone(),
        original_currency: m.original_currency.clone(),
        expense_ref: m.expense_ref.clone(),
        reversal_of: m.reversal_of.clone(),
    })
}

fn same(m: &expenses::Model, r: &ExpenseRecord, hash: Option<&str>) -> bool {
    m.kind == r.kind.as_str()
        && m.paid_at == r.paid_at
        && m.account_slug == r.account_slug
        && m.payee == r.payee
        && m.tags == tags_json(&r.tags)
        && m.description == r.description
        && m.incurred_at == r.incurred_at
        && m.amount_cents == r.amount_cents
        && m.fees_cents == r.fees_cents
        && m.original_amount == r.original_amount
        && m.original_currency == r.original_currency
        && m.expense_ref == r.expense_ref
        && m.reversal_of == r.reversal_of
        && m.request_hash.as_deref() == hash
}

fn active(r: &ExpenseRecord, hash: Option<&str>, now: DateTime<Utc>) -> expenses::ActiveModel {
    expenses::ActiveModel {
        source: Set(r.source.clone()),
        external_id: Set(r.external_id.clone()),
        kind: Set(r.kind.as_str().into()),
        paid_at: Set(r.paid_at),
        account_slug: Set(r.account_slug.clone()),
        payee: Set(r.payee.clone()),
        tags: Set(tags_json(&r.tags)),
        description: Set(r.description.clone()),
        incurred_at: Set(r.incurred_at),
        amount_cents: Set(r.amount_cents),
        fees_cents: Set(r.fees_cents),
        original_amount: Set(r.original_amount.clone()),
        original_currency: Set(r.original_currency.clone()),
        expense_ref: Set(r.expense_ref.clone()),
        reversal_of: Set(r.reversal_of.clone()),
        request_hash: Set(hash.map(str::to_string)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Stores `records` in one transaction of its own (all or nothing); see [`upsert_in`].
pub async fn upsert<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    records: &[ExpenseRecord],
    now: DateTime<Utc>,
) -> Result<Stored, ExpenseError> {
    if records.is_empty() {
        return Ok(Stored::default());
    }
    let txn = crate::db::begin_write(db).await?;
    let stored = upsert_in(&txn, records, now).await?;
    txn.commit().await?;
    Ok(stored)
}

/// Stores `records` in the caller's transaction: new keys are inserted, changed ones updated
/// (keeping the row's id and `created_at`), identical ones left alone; a key that appears
/// twice keeps its last record. The months of every `paid_at` written (before and after a
/// change) are marked stale in the same transaction. A record beyond the bound refuses the
/// whole batch before anything is written.
pub async fn upsert_in(
    txn: &impl ConnectionTrait,
    records: &[ExpenseRecord],
    now: DateTime<Utc>,
) -> Result<Stored, ExpenseError> {
    let pairs: Vec<(&ExpenseRecord, Option<&str>)> = records.iter().map(|r| (r, None)).collect();
    write(txn, &pairs, now).await
}

async fn write(
    txn: &impl ConnectionTrait,
    records: &[(&ExpenseRecord, Option<&str>)],
    now: DateTime<Utc>,
) -> Result<Stored, ExpenseError> {
    let mut stored = Stored::default();
    if records.is_empty() {
        return Ok(stored);
    }
    if let Some((r, why)) = records
        .iter()
        .find_map(|(r, _)| r.out_of_bounds().map(|why| (r, why)))
    {
        return Err(ExpenseError::Refused {
            source_name: r.source.clone(),
            external_id: r.external_id.clone(),
            why,
        });
    }
    let mut latest: HashMap<(&str, &str), (&ExpenseRecord, Option<&str>)> = HashMap::new();
    let mut order = Vec::new();
    for (r, h) in records {
        if latest
            .insert((r.source.as_str(), r.external_id.as_str()), (r, *h))
            .is_none()
        {
            order.push((r.source.as_str(), r.external_id.as_str()));
        }
    }
    let mut by_source: HashMap<&str, Vec<&str>> = HashMap::new();
    for (s, id) in &order {
        by_source.entry(s).or_default().push(id);
    }
    let mut existing: HashMap<(String, String), expenses::Model> = HashMap::new();
    for (source, ids) in by_source {
        for chunk in ids.chunks(500) {
            for m in crate::db::rows_by_source_keys::<expenses::Entity>(txn, source, chunk).await? {
                existing.insert((m.source.clone(), m.external_id.clone()), m);
            }
        }
    }
    let mut writes = Vec::new();
    let mut dates = Vec::new();
    for key in &order {
        let (r, hash) = latest[key];
        match existing.get(&(key.0.to_string(), key.1.to_string())) {
            None => {
                dates.push(r.paid_at);
                stored.inserted += 1;
                writes.push(active(r, hash, now));
            }
            Some(m) if same(m, r, hash) => stored.unchanged += 1,
            Some(m) => {
                dates.extend([m.paid_at, r.paid_at]);
                stored.updated += 1;
                writes.push(active(r, hash, now));
            }
        }
    }
    use expenses::Column as E;
    let on_conflict = OnConflict::columns([E::Source, E::ExternalId])
        .update_columns([
            E::Kind,
            E::PaidAt,
            E::AccountSlug,
            E::Payee,
            E::Tags,
            E::Description,
            E::IncurredAt,
            E::AmountCents,
            E::FeesCents,
            E::OriginalAmount,
            E::OriginalCurrency,
            E::ExpenseRef,
            E::ReversalOf,
            E::RequestHash,
            E::UpdatedAt,
        ])
        .to_owned();
    // 18 values a record: 1000 records stay under SQLite's parameter limit (32766).
    for chunk in writes.chunks(1000) {
        expenses::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(txn)
            .await?;
    }
    crate::books::stale::mark_instants(txn, dates, now).await?;
    Ok(stored)
}

/// The records paid in `[from, to)`, ordered by `paid_at`, source, external id.
pub async fn paid_in(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ExpenseRecord>, ExpenseError> {
    use expenses::Column as E;
    expenses::Entity::find()
        .filter(Expr::col(E::PaidAt).gte(from))
        .filter(Expr::col(E::PaidAt).lt(to))
        .order_by_asc(E::PaidAt)
        .order_by_asc(E::Source)
        .order_by_asc(E::ExternalId)
        .all(db)
        .await?
        .iter()
        .map(from_model)
        .collect()
}

/// The stored record of a key, if any, with its request hash.
pub async fn by_key(
    db: &impl ConnectionTrait,
    source: &str,
    external_id: &str,
) -> Result<Option<(ExpenseRecord, Option<String>)>, ExpenseError> {
    use expenses::Column as E;
    match expenses::Entity::find()
        .filter(E::Source.eq(source))
        .filter(E::ExternalId.eq(external_id))
        .one(db)
        .await?
    {
        Some(m) => Ok(Some((from_model(&m)?, m.request_hash.clone()))),
        None => Ok(None),
    }
}

/// Inserts one record with its request hash (manual expenses) unless its key is stored
/// already (then nothing is written: a concurrent request with the same key never overwrites
/// the first), marking its month stale in the same transaction. Whether it was inserted.
pub(crate) async fn insert_new_with_hash<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    record: &ExpenseRecord,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, ExpenseError> {
    if let Some(why) = record.out_of_bounds() {
        return Err(ExpenseError::Refused {
            source_name: record.source.clone(),
            external_id: record.external_id.clone(),
            why,
        });
    }
    use expenses::Column as E;
    let txn = crate::db::begin_write(db).await?;
    let inserted = expenses::Entity::insert(active(record, Some(hash), now))
        .on_conflict(
            OnConflict::columns([E::Source, E::ExternalId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    if inserted == 1 {
        crate::books::stale::mark_instants(&txn, [record.paid_at], now).await?;
    }
    txn.commit().await?;
    Ok(inserted == 1)
}
