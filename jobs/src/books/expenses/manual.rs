//! Manual expenses (`POST /api/v1/expenses`, `buildfund expenses add`): money a farm paid
//! outside OpenCollective (a bank transfer to the hosting provider, a card payment), stored
//! under source `manual` with the idempotency key as the external id, with the rules of manual
//! donations: the same key and content again is a replay (nothing written, the same answer),
//! the same key with other content a conflict, and every invalid field is named.
//!
//! **Money.** `amount_cents` (> 0) and `fees_cents` (>= 0, default 0) are cents of the ledger
//! currency, what left the bank: an admin reads them off the statement, so no rate is applied.
//! `original_amount` and `original_currency` (both or neither) record what the invoice asked
//! in its own currency, for the record only; without them the original is the ledger amount.
//!
//! **Bounds.** Every field is bounded where it enters: the key 1–128 characters, the account
//! 1–255, the payee 1–255, at most [`MAX_TAGS`] tags of 1–[`MAX_TAG_LEN`] characters, the
//! description at most [`MAX_DESCRIPTION`] characters, the amounts within the record bound
//! ([`crate::books::donations::MAX_RECORD_CENTS`]), `paid_at` from 2000 to a day after now
//! (money that has left), `incurred_at` from 2000 to a year after now (an invoice may be
//! dated ahead of the period it pays for). No control characters (but newlines and tabs in
//! the description).
use super::{by_key, insert_new_with_hash, tags_json, ExpenseError, ExpenseKind, ExpenseRecord};
use crate::books::donations::{cents_text, check_bound, FieldError};
use crate::config::Config;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// The source manual expenses are stored under.
pub const SOURCE: &str = "manual";
/// The most tags an expense may carry.
pub const MAX_TAGS: usize = 32;
/// The longest tag, in characters.
pub const MAX_TAG_LEN: usize = 64;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;

/// A manual expense as `POST /api/v1/expenses` takes it (unknown fields are refused).
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualExpense {
    /// Required: a resend with the same key stores nothing new.
    pub idempotency_key: Option<String>,
    /// When the money left (RFC 3339).
    pub paid_at: Option<String>,
    /// The invoice's date (`YYYY-MM-DD`, taken at 00:00:00 UTC) or an RFC 3339 instant.
    pub incurred_at: Option<String>,
    /// The paying account slug (routes like an OpenCollective account); default: the
    /// configured collective, else `manual`.
    pub account: Option<String>,
    pub payee: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// Ledger cents paid to the payee (> 0).
    pub amount_cents: Option<i64>,
    /// Ledger cents paying it cost on top (>= 0).
    #[serde(default)]
    pub fees_cents: i64,
    /// What the invoice asked, a decimal in `original_currency` (with it, or neither).
    pub original_amount: Option<String>,
    pub original_currency: Option<String>,
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// The earliest instant a manual expense may carry.
fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("valid")
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")));
    }
    crate::calendar::parse_rfc3339(text)
        .map_err(|_| format!("{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

impl ManualExpense {
    /// The record to store under source `manual` with the idempotency key as its id, or every
    /// problem found, by field. `now` bounds the instants.
    pub fn validate(
        &self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<ExpenseRecord, Vec<FieldError>> {
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
        let mut when = |field: &str, text: &Option<String>, latest: DateTime<Utc>, rfc: bool| {
            let Some(text) = text else {
                err(field, "missing".into());
                return None;
            };
            let parsed = if rfc {
                crate::calendar::parse_rfc3339(text)
            } else {
                instant(text)
            };
            match parsed {
                Err(e) => {
                    err(field, e);
                    None
                }
                Ok(t) if t < earliest() || t > latest => {
                    err(
                        field,
                        format!(
                            "{text:?} is out of bounds: from 2000-01-01 to {}",
                            crate::calendar::rfc3339(latest)
                        ),
                    );
                    None
                }
                Ok(t) => Some(t),
            }
        };
        let paid_at = when("paid_at", &self.paid_at, now + Duration::days(1), true);
        let incurred_at = when(
            "incurred_at",
            &self.incurred_at,
            now + Duration::days(366),
            false,
        );
        let account = self
            .account
            .clone()
            .or_else(|| config.opencollective.as_ref().map(|o| o.collective.clone()))
            .unwrap_or_else(|| "manual".into());
        if !text_ok(&account, 255) {
            err(
                "account",
                "must be 1 to 255 characters without control characters".into(),
            );
        }
        if let Some(p) = &self.payee {
            if !text_ok(p, 255) {
                err(
                    "payee",
                    "must be 1 to 255 characters without control characters".into(),
                );
            }
        }
        if self.tags.len() > MAX_TAGS {
            err(
                "tags",
                format!("{} tags: at most {MAX_TAGS}", self.tags.len()),
            );
        } else if let Some((i, _)) = self
            .tags
            .iter()
            .enumerate()
            .find(|(_, t)| !text_ok(t, MAX_TAG_LEN))
        {
            err(
                "tags",
                format!("tag {i} must be 1 to {MAX_TAG_LEN} characters without control characters"),
            );
        }
        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION
                || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                err(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters without control characters (newlines and tabs allowed)"),
                );
            }
        }
        match self.amount_cents {
            None => err("amount_cents", "missing".into()),
            Some(a) if a <= 0 => err(
                "amount_cents",
                "must be more than 0 (what the invoice asked, in cents of the ledger currency)"
                    .into(),
            ),
            Some(a) => {
                if let Err(e) = check_bound(a) {
                    err("amount_cents", e);
                }
            }
        }
        if self.fees_cents < 0 {
            err("fees_cents", "must not be negative".into());
        } else if let Err(e) = check_bound(self.fees_cents) {
            err("fees_cents", e);
        }
        let original = match (&self.original_amount, &self.original_currency) {
            (None, None) => None,
            (Some(_), None) => {
                err(
                    "original_currency",
                    "missing: give it with original_amount".into(),
                );
                None
            }
            (None, Some(_)) => {
                err(
                    "original_amount",
                    "missing: give it with original_currency".into(),
                );
                None
            }
            (Some(a), Some(c)) => {
                let amount = match rust_decimal::Decimal::from_str(a.trim()) {
                    Ok(d) if a.len() <= 32 && d > rust_decimal::Decimal::ZERO && d.scale() <= 4 => {
                        // Kept as given (the invoice's own figure).
                        Some(a.trim().to_string())
                    }
                    _ => {
                        err(
                            "original_amount",
                            format!("{a:?} is not a positive decimal (at most 4 decimal places)"),
                        );
                        None
                    }
                };
                let currency_ok = c.len() == 3 && c.chars().all(|x| x.is_ascii_uppercase());
                if !currency_ok {
                    err(
                        "original_currency",
                        format!("{c:?} is not an ISO 4217 code"),
                    );
                }
                amount.filter(|_| currency_ok).map(|a| (a, c.clone()))
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let amount = self.amount_cents.expect("checked");
        let (original_amount, original_currency) =
            original.unwrap_or_else(|| (cents_text(amount), config.currency.clone()));
        Ok(ExpenseRecord {
            source: SOURCE.into(),
            external_id: key.expect("checked"),
            kind: ExpenseKind::Manual,
            paid_at: paid_at.expect("checked"),
            account_slug: account,
            payee: self.payee.clone(),
            tags: self.tags.clone(),
            description: self.description.clone(),
            incurred_at: incurred_at.expect("checked"),
            amount_cents: amount,
            fees_cents: self.fees_cents,
            original_amount,
            original_currency,
            expense_ref: None,
            reversal_of: None,
        })
    }
}

/// The request's fingerprint: SHA-256 of the validated record's every field, so a resend that
/// differs only in form (spacing, field order, a date for its midnight) is a replay.
pub fn request_hash(r: &ExpenseRecord) -> String {
    let canonical = serde_json::json!([
        r.external_id,
        r.kind.as_str(),
        crate::calendar::rfc3339(r.paid_at),
        r.account_slug,
        r.payee,
        tags_json(&r.tags),
        r.description,
        crate::calendar::rfc3339(r.incurred_at),
        r.amount_cents,
        r.fees_cents,
        r.original_amount,
        r.original_currency,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// What a manual expense did.
#[derive(Debug)]
pub enum ManualOutcome {
    /// Stored now.
    Created(ExpenseRecord),
    /// The same key was stored before with the same content: nothing changed.
    Replayed(ExpenseRecord),
    /// The same key was stored before with other content: refused.
    Conflict(ExpenseRecord),
}

/// Stores a validated manual expense under its idempotency key, at `now`.
pub async fn store_manual<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    record: &ExpenseRecord,
    now: DateTime<Utc>,
) -> Result<ManualOutcome, ExpenseError> {
    let hash = request_hash(record);
    let judge = |stored: ExpenseRecord, stored_hash: Option<String>| {
        if stored_hash.as_deref() == Some(hash.as_str()) {
            ManualOutcome::Replayed(stored)
        } else {
            ManualOutcome::Conflict(stored)
        }
    };
    if let Some((stored, h)) = by_key(db, SOURCE, &record.external_id).await? {
        return Ok(judge(stored, h));
    }
    let inserted = insert_new_with_hash(db, record, &hash, now).await?;
    let (stored, h) = by_key(db, SOURCE, &record.external_id)
        .await?
        .ok_or_else(|| {
            ExpenseError::Db(sea_orm::DbErr::RecordNotFound(
                "the manual expense just stored".into(),
            ))
        })?;
    // Two concurrent requests with one key: the unique index lets one insert; the other finds
    // the row of the same content (a replay) or of another (a conflict).
    Ok(if inserted {
        ManualOutcome::Created(stored)
    } else {
        judge(stored, h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse("currency = \"EUR\"\nledger_start = \"2026-01-01\"\n", "t").unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    fn fields(e: &ManualExpense) -> Vec<String> {
        e.validate(&config(), now())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn good() -> ManualExpense {
        ManualExpense {
            idempotency_key: Some("bank-2026-11-03".into()),
            paid_at: Some("2026-11-03T10:00:00Z".into()),
            incurred_at: Some("2026-11-01".into()),
            payee: Some("Hetzner Online GmbH".into()),
            tags: vec!["Hetzner".into(), "build01".into()],
            amount_cents: Some(16490),
            fees_cents: 0,
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_expense_becomes_its_record() {
        let r = good().validate(&config(), now()).unwrap();
        assert_eq!(r.kind, ExpenseKind::Manual);
        assert_eq!(r.account_slug, "manual");
        assert_eq!(
            r.incurred_at,
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            (r.original_amount.as_str(), r.original_currency.as_str()),
            ("164.90", "EUR")
        );
        assert_eq!(r.total_cents(), 16490);
        let usd = ManualExpense {
            original_amount: Some("179.00".into()),
            original_currency: Some("USD".into()),
            ..good()
        };
        let r = usd.validate(&config(), now()).unwrap();
        assert_eq!(
            (r.original_amount.as_str(), r.original_currency.as_str()),
            ("179.00", "USD")
        );
        assert_eq!(r.amount_cents, 16490);
    }

    #[test]
    fn every_problem_is_named_by_field() {
        let bad = ManualExpense {
            idempotency_key: Some("  ".into()),
            paid_at: Some("2026-12-08T00:00:00Z".into()),
            incurred_at: Some("yesterday".into()),
            account: Some("a\u{7}b".into()),
            payee: Some("x".repeat(256)),
            tags: vec!["ok".into(), "".into()],
            description: Some("\u{1b}[31m".into()),
            amount_cents: Some(0),
            fees_cents: -1,
            original_amount: Some("12.5".into()),
            original_currency: None,
        };
        assert_eq!(
            fields(&bad),
            [
                "idempotency_key",
                "paid_at",
                "incurred_at",
                "account",
                "payee",
                "tags",
                "description",
                "amount_cents",
                "fees_cents",
                "original_currency"
            ]
        );
        assert_eq!(
            fields(&ManualExpense::default()),
            ["idempotency_key", "paid_at", "incurred_at", "amount_cents"]
        );
    }

    #[test]
    fn bounds_hold_at_their_edges() {
        let at = |paid: &str| ManualExpense {
            paid_at: Some(paid.into()),
            ..good()
        };
        // A day after now is accepted (clock skew), a second more is not.
        assert!(at("2026-12-07T12:00:00Z")
            .validate(&config(), now())
            .is_ok());
        assert_eq!(fields(&at("2026-12-07T12:00:01Z")), ["paid_at"]);
        assert_eq!(fields(&at("1999-12-31T23:59:59Z")), ["paid_at"]);
        let tags = |n: usize, len: usize| ManualExpense {
            tags: vec!["t".repeat(len); n],
            ..good()
        };
        assert!(tags(MAX_TAGS, MAX_TAG_LEN)
            .validate(&config(), now())
            .is_ok());
        assert_eq!(fields(&tags(MAX_TAGS + 1, 1)), ["tags"]);
        assert_eq!(fields(&tags(1, MAX_TAG_LEN + 1)), ["tags"]);
        let money = |a: i64, f: i64| ManualExpense {
            amount_cents: Some(a),
            fees_cents: f,
            ..good()
        };
        let max = crate::books::donations::MAX_RECORD_CENTS;
        assert!(money(max, max).validate(&config(), now()).is_ok());
        assert_eq!(fields(&money(max + 1, 0)), ["amount_cents"]);
        assert_eq!(fields(&money(1, max + 1)), ["fees_cents"]);
        assert_eq!(fields(&money(-5, 0)), ["amount_cents"]);
    }

    #[test]
    fn the_hash_ignores_form_but_not_content() {
        let a = good().validate(&config(), now()).unwrap();
        let same = ManualExpense {
            incurred_at: Some("2026-11-01T00:00:00+00:00".into()),
            ..good()
        }
        .validate(&config(), now())
        .unwrap();
        assert_eq!(request_hash(&a), request_hash(&same));
        let other = ManualExpense {
            fees_cents: 1,
            ..good()
        }
        .validate(&config(), now())
        .unwrap();
        assert_ne!(request_hash(&a), request_hash(&other));
    }
}
