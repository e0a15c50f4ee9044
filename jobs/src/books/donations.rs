//! Donation records (cost-model.md, "Donations"): what the OpenCollective sync and manual entries
//! store, the currency rule, the idempotent upsert by `(source, external_id)`, and the public
//! month listing.
//!
//! **Currency.** Amounts are stored in ledger cents. A source amount already in the ledger
//! currency is taken as it is; one in another currency is converted with the configured
//! `[rates]` entry (each amount rounded half away from zero to a cent on its own, and
//! `net = gross - fees` after rounding); a currency with no rate is refused with a message naming
//! it, never guessed.
use crate::books::funds::route;
use crate::books::BooksError;
use crate::calendar::Month;
use crate::config::Config;
use buildfund_entity::donations;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, Set,
    TransactionSession, TransactionTrait,
};
use serde::Serialize;
use std::collections::HashMap;

/// What is shown for an anonymous or incognito contributor.
pub const ANONYMOUS: &str = "Anonymous";

/// Who gave, as the source shows it publicly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Contributor {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub url: Option<String>,
    /// Incognito or anonymous: shown as [`ANONYMOUS`], without slug or URL.
    pub anonymous: bool,
}

impl Contributor {
    pub fn anonymous() -> Contributor {
        Contributor {
            anonymous: true,
            ..Contributor::default()
        }
    }
}

/// One donation, refund or manual entry, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationRecord {
    pub source: String,
    pub external_id: String,
    /// `contribution`, `added_funds`, `refund` or `manual`.
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub account_slug: String,
    pub tier_slug: Option<String>,
    pub contributor: Contributor,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    /// The amount as the source gave it: a decimal string in `original_currency`.
    pub original_amount: String,
    pub original_currency: String,
    /// The external id of the record a refund refunds.
    pub refund_of: Option<String>,
    pub description: Option<String>,
}

/// The most any money field of one donation record may hold, of either sign: 10^12 cents
/// (ten billion in the ledger currency). Bounded records keep every sum of them far inside `i64`.
pub const MAX_RECORD_CENTS: i64 = 1_000_000_000_000;

/// `Err` with a sentence when `cents` is beyond [`MAX_RECORD_CENTS`].
pub fn check_bound(cents: i64) -> Result<i64, String> {
    if cents.checked_abs().is_some_and(|a| a <= MAX_RECORD_CENTS) {
        Ok(cents)
    } else {
        Err(format!(
            "{cents} cents is beyond the bound of ±{MAX_RECORD_CENTS} cents a record"
        ))
    }
}

impl DonationRecord {
    /// The first money field beyond [`MAX_RECORD_CENTS`], named, with why.
    pub fn out_of_bounds(&self) -> Option<String> {
        [
            ("gross_cents", self.gross_cents),
            ("fees_cents", self.fees_cents),
            ("net_cents", self.net_cents),
        ]
        .into_iter()
        .find_map(|(name, c)| check_bound(c).err().map(|e| format!("{name}: {e}")))
    }
}

/// Converts `cents` of `currency` into ledger cents: as they are in the ledger currency, else
/// with the configured rate (half away from zero), else an error naming the currency.
pub fn to_ledger_cents(config: &Config, cents: i64, currency: &str) -> Result<i64, String> {
    if currency == config.currency {
        return Ok(cents);
    }
    let Some(rate) = config.rates.get(currency) else {
        return Err(format!(
            "the currency {currency} cannot be converted into the ledger currency {}: add a rate under [rates] ({currency} = \"…\")",
            config.currency
        ));
    };
    (Decimal::from(cents) * rate)
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .ok_or_else(|| format!("{cents} cents of {currency} overflow the ledger"))
}

/// `cents` as a decimal string (`-12.5` cents never happen: sources give whole cents).
pub fn cents_text(cents: i64) -> String {
    crate::money::format_cents(cents)
}

/// Counts of an upsert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for Stored {
    fn add_assign(&mut self, o: Stored) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

fn same(m: &donations::Model, r: &DonationRecord) -> bool {
    m.kind == r.kind
        && m.occurred_at == r.occurred_at
        && m.account_slug == r.account_slug
        && m.tier_slug == r.tier_slug
        && m.contributor_name == r.contributor.name
        && m.contributor_slug == r.contributor.slug
        && m.contributor_url == r.contributor.url
        && m.anonymous == r.contributor.anonymous
        && m.gross_cents == r.gross_cents
        && m.fees_cents == r.fees_cents
        && m.net_cents == r.net_cents
        && m.original_amount == r.original_amount
        && m.original_currency == r.original_currency
        && m.refund_of == r.refund_of
        && m.description == r.description
}

fn active(r: &DonationRecord, now: DateTime<Utc>) -> donations::ActiveModel {
    donations::ActiveModel {
        source: Set(r.source.clone()),
        external_id: Set(r.external_id.clone()),
        kind: Set(r.kind.clone()),
        occurred_at: Set(r.occurred_at),
        account_slug: Set(r.account_slug.clone()),
        tier_slug: Set(r.tier_slug.clone()),
        contributor_name: Set(r.contributor.name.clone()),
        contributor_slug: Set(r.contributor.slug.clone()),
        contributor_url: Set(r.contributor.url.clone()),
        anonymous: Set(r.contributor.anonymous),
        gross_cents: Set(r.gross_cents),
        fees_cents: Set(r.fees_cents),
        net_cents: Set(r.net_cents),
        original_amount: Set(r.original_amount.clone()),
        original_currency: Set(r.original_currency.clone()),
        refund_of: Set(r.refund_of.clone()),
        description: Set(r.description.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Stores `records` in one transaction (all or nothing): new keys are inserted, changed ones
/// updated, identical ones left alone. A key that appears twice keeps its last record. What
/// is stored is read with one query per 500 keys; new and changed records are written with
/// one multi-row `INSERT … ON CONFLICT DO UPDATE` per 1000 (an update keeps the row's id and
/// `created_at`).
pub async fn upsert<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    records: &[DonationRecord],
    now: DateTime<Utc>,
) -> Result<Stored, BooksError> {
    if records.is_empty() {
        return Ok(Stored::default());
    }
    let txn = crate::db::begin_write(db).await?;
    let stored = upsert_in(&txn, records, now).await?;
    txn.commit().await?;
    Ok(stored)
}

/// [`upsert`] in the caller's transaction (the OpenCollective sync stores a page's donations
/// and expenses together), written at `now`.
pub async fn upsert_in(
    txn: &impl ConnectionTrait,
    records: &[DonationRecord],
    now: DateTime<Utc>,
) -> Result<Stored, BooksError> {
    let mut stored = Stored::default();
    if records.is_empty() {
        return Ok(stored);
    }
    let mut latest: HashMap<(&str, &str), &DonationRecord> = HashMap::new();
    let mut order = Vec::new();
    for r in records {
        if latest
            .insert((r.source.as_str(), r.external_id.as_str()), r)
            .is_none()
        {
            order.push((r.source.as_str(), r.external_id.as_str()));
        }
    }
    if let Some((r, why)) = records
        .iter()
        .find_map(|r| r.out_of_bounds().map(|why| (r, why)))
    {
        return Err(BooksError::DonationRefused {
            source_name: r.source.clone(),
            external_id: r.external_id.clone(),
            why,
        });
    }
    let mut by_source: HashMap<&str, Vec<&str>> = HashMap::new();
    for (s, id) in &order {
        by_source.entry(s).or_default().push(id);
    }
    let mut existing: HashMap<(String, String), donations::Model> = HashMap::new();
    for (source, ids) in by_source {
        for m in crate::db::rows_by_source_keys::<donations::Entity>(txn, source, &ids).await? {
            existing.insert((m.source.clone(), m.external_id.clone()), m);
        }
    }
    // New and changed records, written together: one multi-row upsert per chunk.
    let mut writes = Vec::new();
    // The dates whose months' stored books this changes (before and after).
    let mut dates = Vec::new();
    for key in &order {
        let r = latest[key];
        match existing.get(&(key.0.to_string(), key.1.to_string())) {
            None => {
                dates.push(r.occurred_at);
                stored.inserted += 1;
                writes.push(active(r, now));
            }
            Some(m) if same(m, r) => stored.unchanged += 1,
            Some(m) => {
                dates.extend([m.occurred_at, r.occurred_at]);
                stored.updated += 1;
                writes.push(active(r, now));
            }
        }
    }
    use donations::Column as D;
    let on_conflict = OnConflict::columns([D::Source, D::ExternalId])
        .update_columns([
            D::Kind,
            D::OccurredAt,
            D::AccountSlug,
            D::TierSlug,
            D::ContributorName,
            D::ContributorSlug,
            D::ContributorUrl,
            D::Anonymous,
            D::GrossCents,
            D::FeesCents,
            D::NetCents,
            D::OriginalAmount,
            D::OriginalCurrency,
            D::RefundOf,
            D::Description,
            D::UpdatedAt,
        ])
        .to_owned();
    // 19 values a record: 1000 records stay under SQLite's parameter limit (32766).
    for chunk in writes.chunks(1000) {
        donations::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(txn)
            .await?;
    }
    crate::books::stale::mark_instants(txn, dates, now).await?;
    Ok(stored)
}

/// A donation as `GET /api/v1/donations` shows it: what OpenCollective shows publicly, no more
/// (no description, nothing of an anonymous contributor but "Anonymous").
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PublicDonation {
    pub source: String,
    pub id: String,
    pub kind: String,
    pub occurred_at: String,
    pub account: String,
    pub tier: Option<String>,
    pub fund: String,
    pub contributor: PublicContributor,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub original_amount: String,
    pub original_currency: String,
    pub refund_of: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PublicContributor {
    pub name: String,
    pub slug: Option<String>,
    pub url: Option<String>,
    pub anonymous: bool,
}

pub fn public(config: &Config, m: &donations::Model) -> PublicDonation {
    let contributor = if m.anonymous {
        PublicContributor {
            name: ANONYMOUS.into(),
            slug: None,
            url: None,
            anonymous: true,
        }
    } else {
        PublicContributor {
            name: m
                .contributor_name
                .clone()
                .or_else(|| m.contributor_slug.clone())
                .unwrap_or_else(|| "Unknown".into()),
            slug: m.contributor_slug.clone(),
            url: m.contributor_url.clone(),
            anonymous: false,
        }
    };
    PublicDonation {
        source: m.source.clone(),
        id: m.external_id.clone(),
        kind: m.kind.clone(),
        occurred_at: crate::calendar::rfc3339(m.occurred_at),
        account: m.account_slug.clone(),
        tier: m.tier_slug.clone(),
        fund: route(config, &m.account_slug, m.tier_slug.as_deref())
            .slug
            .clone(),
        contributor,
        gross_cents: m.gross_cents,
        fees_cents: m.fees_cents,
        net_cents: m.net_cents,
        original_amount: m.original_amount.clone(),
        original_currency: m.original_currency.clone(),
        refund_of: m.refund_of.clone(),
    }
}

/// The records dated in `month`, oldest first, as the public API shows them.
pub async fn month_records(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
) -> Result<Vec<PublicDonation>, BooksError> {
    use donations::Column as D;
    Ok(donations::Entity::find()
        .filter(Expr::col(D::OccurredAt).gte(month.start()))
        .filter(Expr::col(D::OccurredAt).lt(month.next().start()))
        .order_by_asc(D::OccurredAt)
        .order_by_asc(D::Id)
        .all(db)
        .await?
        .iter()
        .map(|m| public(config, m))
        .collect())
}

/// One problem of a manual donation, by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A donation that did not pass through OpenCollective (bank transfer, in-kind sponsorship),
/// as `POST /api/v1/donations` takes it.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualDonation {
    /// Required: a resend with the same key stores nothing new.
    pub idempotency_key: Option<String>,
    pub occurred_at: Option<String>,
    /// The receiving account slug (routes like an OpenCollective account); default: the
    /// configured collective, else `manual`.
    pub account: Option<String>,
    pub tier: Option<String>,
    pub contributor_name: Option<String>,
    pub contributor_url: Option<String>,
    #[serde(default)]
    pub anonymous: bool,
    /// Whole cents of `currency` (negative for a refund).
    pub amount_cents: Option<i64>,
    #[serde(default)]
    pub fees_cents: i64,
    /// ISO 4217, default the ledger currency.
    pub currency: Option<String>,
    pub refund_of: Option<String>,
    pub description: Option<String>,
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

impl ManualDonation {
    /// The record to store under source `manual` with the idempotency key as its id, or every
    /// problem found.
    pub fn validate(&self, config: &Config) -> Result<DonationRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        let key = match &self.idempotency_key {
            Some(k) if text_ok(k, 128) => Some(k.trim().to_string()),
            Some(_) => {
                err(
                    "idempotency_key",
                    "must be 1 to 128 characters without control characters".into(),
                );
                None
            }
            None => {
                err("idempotency_key", "missing".into());
                None
            }
        };
        let occurred_at = match &self.occurred_at {
            Some(s) => match crate::calendar::parse_rfc3339(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    err("occurred_at", e);
                    None
                }
            },
            None => {
                err("occurred_at", "missing".into());
                None
            }
        };
        let account = self
            .account
            .clone()
            .or_else(|| config.opencollective.as_ref().map(|o| o.collective.clone()))
            .unwrap_or_else(|| "manual".into());
        if !text_ok(&account, 255) {
            err("account", "must be a non-empty slug".into());
        }
        for (field, v) in [
            ("tier", &self.tier),
            ("contributor_name", &self.contributor_name),
            ("refund_of", &self.refund_of),
        ] {
            if let Some(v) = v {
                if !text_ok(v, 255) {
                    err(
                        field,
                        "must be 1 to 255 characters without control characters".into(),
                    );
                }
            }
        }
        if let Some(u) = &self.contributor_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || !text_ok(u, 255) {
                err("contributor_url", format!("{u:?} is not an http(s) URL"));
            }
        }
        let currency = self
            .currency
            .clone()
            .unwrap_or_else(|| config.currency.clone());
        let mut converted = None;
        match self.amount_cents {
            None => err("amount_cents", "missing".into()),
            Some(0) => err("amount_cents", "must not be 0".into()),
            Some(a) if check_bound(a).is_err() || check_bound(self.fees_cents).is_err() => {
                for (field, c) in [("amount_cents", a), ("fees_cents", self.fees_cents)] {
                    if let Err(e) = check_bound(c) {
                        err(field, e);
                    }
                }
            }
            Some(a) => {
                if self.fees_cents != 0 && self.fees_cents.signum() != a.signum() {
                    err(
                        "fees_cents",
                        "must have the sign of amount_cents (or be 0)".into(),
                    );
                } else if self.fees_cents.abs() > a.abs() {
                    err("fees_cents", "must not exceed amount_cents".into());
                }
                if !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase())) {
                    err("currency", format!("{currency:?} is not an ISO 4217 code"));
                } else {
                    match (
                        to_ledger_cents(config, a, &currency),
                        to_ledger_cents(config, self.fees_cents, &currency),
                    ) {
                        (Ok(g), Ok(f)) => match check_bound(g).and(check_bound(f)) {
                            Ok(_) => converted = Some((g, f)),
                            Err(e) => err(
                                "amount_cents",
                                format!("converted into {}: {e}", config.currency),
                            ),
                        },
                        (Err(e), _) | (_, Err(e)) => err("currency", e),
                    }
                }
                if a < 0 && self.refund_of.is_none() {
                    err(
                        "refund_of",
                        "a negative amount is a refund: name the idempotency key it refunds".into(),
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (gross, fees) = converted.expect("checked");
        let amount = self.amount_cents.expect("checked");
        let contributor = if self.anonymous {
            Contributor::anonymous()
        } else {
            Contributor {
                name: self.contributor_name.clone(),
                slug: None,
                url: self.contributor_url.clone(),
                anonymous: false,
            }
        };
        Ok(DonationRecord {
            source: "manual".into(),
            external_id: key.expect("checked"),
            kind: if amount < 0 { "refund" } else { "manual" }.into(),
            occurred_at: occurred_at.expect("checked"),
            account_slug: account,
            tier_slug: self.tier.clone(),
            contributor,
            gross_cents: gross,
            fees_cents: fees,
            net_cents: gross - fees,
            original_amount: cents_text(amount),
            original_currency: currency,
            refund_of: self.refund_of.clone(),
            description: self.description.clone(),
        })
    }
}

/// What a manual donation did.
#[derive(Debug)]
pub enum ManualOutcome {
    /// Stored now.
    Created(PublicDonation),
    /// The same key was stored before with the same content: nothing changed.
    Replayed(PublicDonation),
    /// The same key was stored before with other content: refused.
    Conflict(PublicDonation),
}

/// Stores a validated manual donation under its idempotency key.
pub async fn store_manual<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    config: &Config,
    record: &DonationRecord,
    now: DateTime<Utc>,
) -> Result<ManualOutcome, BooksError> {
    let find = || {
        donations::Entity::find()
            .filter(donations::Column::Source.eq(record.source.as_str()))
            .filter(donations::Column::ExternalId.eq(record.external_id.as_str()))
    };
    if let Some(m) = find().one(db).await? {
        return Ok(if same(&m, record) {
            ManualOutcome::Replayed(public(config, &m))
        } else {
            ManualOutcome::Conflict(public(config, &m))
        });
    }
    let stored = upsert(db, std::slice::from_ref(record), now).await?;
    let m = find()
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the manual donation just stored".into()))?;
    // Two concurrent requests with one key: the unique index lets one insert; the other finds
    // the row unchanged (a replay) or different (a conflict).
    Ok(if stored.inserted == 1 {
        ManualOutcome::Created(public(config, &m))
    } else if same(&m, record) {
        ManualOutcome::Replayed(public(config, &m))
    } else {
        ManualOutcome::Conflict(public(config, &m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "currency = \"EUR\"\nledger_start = \"2026-01-01\"\n[rates]\nUSD = \"0.92\"\n",
            "t",
        )
        .unwrap()
    }

    #[test]
    fn conversion_uses_the_rate_or_names_the_currency() {
        let c = config();
        assert_eq!(to_ledger_cents(&c, 1234, "EUR"), Ok(1234));
        // 1000 * 0.92 = 920; 1 * 0.92 = 0.92 -> 1; -1 -> -1 (half away from zero)
        assert_eq!(to_ledger_cents(&c, 1000, "USD"), Ok(920));
        assert_eq!(to_ledger_cents(&c, 1, "USD"), Ok(1));
        assert_eq!(to_ledger_cents(&c, -1, "USD"), Ok(-1));
        let e = to_ledger_cents(&c, 500, "GBP").unwrap_err();
        assert!(e.starts_with("the currency GBP cannot be converted into the ledger currency EUR"));
    }

    #[test]
    fn money_beyond_the_record_bound_is_refused() {
        let c = config();
        let donation = |amount: i64, fees: i64, currency: &str| ManualDonation {
            idempotency_key: Some("k".into()),
            occurred_at: Some("2026-10-07T00:00:00Z".into()),
            amount_cents: Some(amount),
            fees_cents: fees,
            currency: Some(currency.into()),
            refund_of: Some("r".into()),
            ..Default::default()
        };
        let fields = |d: ManualDonation| -> Vec<String> {
            d.validate(&c)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(donation(i64::MAX, 0, "EUR")), ["amount_cents"]);
        assert_eq!(fields(donation(-5, i64::MIN, "EUR")), ["fees_cents"]);
        assert_eq!(
            fields(donation(i64::MIN, i64::MIN, "EUR")),
            ["amount_cents", "fees_cents"]
        );
        assert!(donation(MAX_RECORD_CENTS, 0, "EUR").validate(&c).is_ok());
        assert!(donation(-MAX_RECORD_CENTS, 0, "EUR").validate(&c).is_ok());
        assert_eq!(
            fields(donation(MAX_RECORD_CENTS + 1, 0, "EUR")),
            ["amount_cents"]
        );
        let c = Config::parse(
            "currency = \"EUR\"\nledger_start = \"2026-01-01\"\n[rates]\nUSD = \"2\"\n",
            "t",
        )
        .unwrap();
        let e = donation(MAX_RECORD_CENTS, 0, "USD")
            .validate(&c)
            .unwrap_err();
        assert_eq!(e[0].field, "amount_cents");
        assert!(e[0].message.starts_with("converted into EUR"), "{e:?}");
    }

    #[test]
    fn a_manual_donation_reports_every_problem() {
        let c = config();
        let bad = ManualDonation {
            amount_cents: Some(-500),
            currency: Some("GBP".into()),
            contributor_url: Some("ftp://x".into()),
            ..Default::default()
        };
        let errors = bad.validate(&c).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "idempotency_key",
                "occurred_at",
                "contributor_url",
                "currency",
                "refund_of"
            ]
        );
        let ok = ManualDonation {
            idempotency_key: Some("bank-2026-10-07".into()),
            occurred_at: Some("2026-10-07T00:00:00Z".into()),
            amount_cents: Some(10000),
            fees_cents: 0,
            currency: Some("USD".into()),
            ..Default::default()
        };
        let r = ok.validate(&c).unwrap();
        assert_eq!((r.gross_cents, r.fees_cents, r.net_cents), (9200, 0, 9200));
        assert_eq!(
            (r.original_amount.as_str(), r.original_currency.as_str()),
            ("100.00", "USD")
        );
        assert_eq!(r.account_slug, "manual");
    }
}
