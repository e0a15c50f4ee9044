//! The OpenCollective sync: the collective's ledger (and its projects' and events') read
//! through the public GraphQL API v2 with typed `graphql_client` queries (`jobs/graphql/`),
//! stored as donation and expense records, plus the active recurring contributions; then the
//! OpenCollective check of its own balance against the ledger.
//!
//! **What counts as a donation** (docs/src/donations.md, "Donations"): transactions of kind `CONTRIBUTION` or
//! `ADDED_FUNDS`. A CREDIT that is not a refund is money received by the collective or a child
//! (`account`); a DEBIT that is a refund gives money back: it is stored as its own negative
//! record, dated when refunded, with `refund_of` = the transaction it refunds. Other lines (a
//! DEBIT the collective paid to someone else, a refund of such a payment) are not income and
//! are skipped, and so are internal moves (the sender, or a refund's receiver, is the collective
//! itself or one of its own projects or events).
//!
//! **What counts as an expense** (docs/src/donations.md, "Expenses"): transactions of kind `EXPENSE`. A DEBIT
//! that is not a refund is a paid expense of the collective or a child; a CREDIT that is a
//! refund is its reversal, stored as its own record with negative amount and fees, dated when
//! reversed, with `reversal_of` = the transaction it reverses. Both carry the linked expense's
//! id, tags, payee, description and `incurredAt` (its UTC date). An expense whose payee is the
//! collective itself or one of its own projects or events is an internal move and is skipped;
//! `BALANCE_TRANSFER` lines are not read at all.
//!
//! **Money.** `gross` is `amountInHostCurrency`; `fees` is minus the sum of the transaction's own
//! `platformFee`, `hostFee(fetchHostFee: true)` and `paymentProcessorFee(fetchPaymentProcessorFee:
//! true)` (negative numbers in the host currency: the fetch flags read the separate fee
//! transactions of the newer ledger, which are not read as lines of their own, so no fee counts
//! twice); `net = gross - fees`. A refund's reversed host fee is positive, so its fees are
//! negative and its net is minus what the collective really gave back. An expense's `amount` is
//! minus `amountInHostCurrency` (a DEBIT is negative: a payment is stored positive) and its
//! `fees` minus the same three fee fields (the payout and processor fees of paying it), so its
//! total is what left the collective. Host-currency cents are taken as they are when the host
//! currency is the ledger currency, else converted with `[rates]`; a record whose host currency
//! has no rate stops the sync with a message naming the transaction and the currency (nothing
//! of its page is stored, the cursor does not move).
//!
//! **Incremental.** Pages of [`PAGE_SIZE`] (the API's documented maximum), ordered by creation
//! time ascending from `dateFrom` = the stored cursor minus `opencollective.overlap_seconds`
//! (the first sync: `ledger_start`). Each page's donations and expenses are upserted by
//! transaction id in one transaction, and only then does the cursor — the latest `createdAt`
//! stored — move forward in `sync_cursors` under `opencollective:<collective>`. Reruns re-read
//! the overlap and find it unchanged; an interrupted sync resumes after its last stored page.
//!
//! **The check.** After the pages and the recurring contributions, OpenCollective's balance of
//! the collective with its children before the sync's start (`now`, the instant up to which it
//! has read) and before `ledger_start` is compared with the ledger
//! ([`crate::books::opencollective_check`]); the check is stored, logged (a warning naming the
//! drift) and reported.
//!
//! **HTTP.** `POST` of `{"query","variables","operationName"}`, the token (when `token_env`
//! names one) in the `Personal-Token` header, a per-request timeout, and up to
//! [`SyncOptions::max_attempts`] tries: network errors, timeouts and 5xx answers are retried
//! after an exponential backoff, a 429 after its `Retry-After` (else the backoff). Redirects
//! are followed only within the endpoint's origin ([`crate::http`]), so the token never leaves
//! it. The ledger and the recurring contributions are read by one [`Pager`] (`limit`/`offset`
//! until a short page or the total).
use super::error::{Cause, CursorFormat, SourceError};
use crate::books::donations::{
    self, cents_text, to_ledger_cents, Contributor, DonationRecord, Stored,
};
use crate::books::expenses::{self, ExpenseKind, ExpenseRecord};
use crate::books::opencollective_check::{self, Check, CheckStatus, OcBalance};
use crate::config::{Config, OpenCollectiveConfig, Secrets};
use buildfund_entity::recurring_contributions;
use chrono::{SecondsFormat, TimeZone, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use std::collections::HashSet;

pub use super::opencollective_client::{
    active_recurring_orders, collective_balance, donation_transactions, ActiveRecurringOrders,
    Client, CollectiveBalance, DateTime, DonationTransactions, Page, Paged, Pager, SyncOptions,
    PAGE_SIZE,
};

/// The source the donation and expense records of this sync are stored under.
pub const SOURCE: &str = "opencollective";

/// One stored page, as reported to the progress callback.
#[derive(Clone, Debug, Serialize)]
pub struct PageReport {
    pub page: u64,
    /// Transactions in the page.
    pub records: u64,
    /// The total the API reports for this run's query.
    pub total: Option<i64>,
    /// Donation records.
    pub stored: Stored,
    /// Expense records.
    pub expenses: Stored,
    /// Lines that are neither donations nor expenses (see the module doc).
    pub skipped: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    pub collective: String,
    pub cursor_name: String,
    pub pages: u64,
    pub records: u64,
    /// Donation records.
    pub stored: Stored,
    /// Expense records.
    pub expenses: Stored,
    pub skipped: u64,
    pub read_from: String,
    pub cursor_before: Option<String>,
    pub cursor_after: Option<String>,
    /// Active recurring contributions read (stored or unchanged).
    pub recurring: u64,
    /// Requests retried (5xx, 429, network errors).
    pub retries: u64,
    /// The OpenCollective check run after the sync.
    pub check: Option<Check>,
}

/// The `sync_cursors` name of a collective's cursor.
pub fn cursor_name(collective: &str) -> String {
    format!("opencollective:{collective}")
}

/// Whole cents from the API's float `valueInCents` (always integral in practice).
fn cents(v: Option<f64>, what: &str) -> Result<i64, String> {
    let v = v.ok_or_else(|| format!("{what} has no valueInCents"))?;
    let r = v.round();
    if !v.is_finite() || (v - r).abs() > 1e-6 || r.abs() > 9e15 {
        return Err(format!("{what} is {v}, not a whole number of cents"));
    }
    crate::books::donations::check_bound(r as i64).map_err(|e| format!("{what}: {e}"))
}

fn currency_code<T: std::fmt::Debug>(c: &Option<T>) -> Option<String> {
    // Generated enum variants print as their GraphQL names (`EUR`, `Other("XYZ")`).
    c.as_ref().map(|c| {
        let s = format!("{c:?}");
        s.strip_prefix("Other(\"")
            .and_then(|s| s.strip_suffix("\")"))
            .map(str::to_string)
            .unwrap_or(s)
    })
}

/// What a contributor account shows publicly.
fn contributor(website: &str, slug: &str, name: Option<&str>, incognito: bool) -> Contributor {
    if incognito || slug.starts_with("incognito") {
        return Contributor::anonymous();
    }
    if slug.starts_with("guest-") {
        // Guest contributions have a name but no profile page worth linking.
        return Contributor {
            name: name.map(str::to_string),
            slug: None,
            url: None,
            anonymous: false,
        };
    }
    Contributor {
        name: name.map(str::to_string),
        slug: Some(slug.to_string()),
        url: Some(format!("{website}/{slug}")),
        anonymous: false,
    }
}

use donation_transactions::{
    DonationTransactionsTransactionsNodes as Node,
    DonationTransactionsTransactionsNodesFromAccount as FromAccount,
    DonationTransactionsTransactionsNodesFromAccountOn as FromOn,
    DonationTransactionsTransactionsNodesToAccount as ToAccount,
    DonationTransactionsTransactionsNodesToAccountOn as ToOn, TransactionKind, TransactionType,
};

/// (slug, name, incognito, parent slug) of a side of a transaction.
fn from_side(a: &FromAccount) -> (String, Option<String>, bool, Option<String>) {
    let parent = match &a.on {
        FromOn::Project(p) => p.parent.as_ref().map(|p| p.slug.clone()),
        FromOn::Event(p) => p.parent.as_ref().map(|p| p.slug.clone()),
        _ => None,
    };
    (a.slug.clone(), a.name.clone(), a.is_incognito, parent)
}

fn to_side(a: &ToAccount) -> (String, Option<String>, bool, Option<String>) {
    let parent = match &a.on {
        ToOn::Project(p) => p.parent.as_ref().map(|p| p.slug.clone()),
        ToOn::Event(p) => p.parent.as_ref().map(|p| p.slug.clone()),
        _ => None,
    };
    (a.slug.clone(), a.name.clone(), a.is_incognito, parent)
}

/// What a transaction of the ledger query is.
#[derive(Debug)]
enum Line {
    Donation(DonationRecord),
    Expense(ExpenseRecord),
    /// Neither (see the module doc).
    Skipped,
}

/// The transaction's line, or an error naming the transaction (a currency with no rate, a
/// malformed amount).
fn line(config: &Config, oc: &OpenCollectiveConfig, n: &Node) -> Result<Line, String> {
    match n.kind {
        Some(TransactionKind::CONTRIBUTION) | Some(TransactionKind::ADDED_FUNDS) => {
            Ok(record(config, oc, n)?.map_or(Line::Skipped, Line::Donation))
        }
        Some(TransactionKind::EXPENSE) => {
            Ok(expense_record(config, oc, n)?.map_or(Line::Skipped, Line::Expense))
        }
        _ => Ok(Line::Skipped),
    }
}

/// `(amountInHostCurrency, minus the sum of the fee fields, host currency)` of a transaction,
/// in host-currency cents.
fn host_money(n: &Node) -> Result<(i64, i64, String), String> {
    let what = |f: &str| format!("transaction {} {f}", n.id);
    let host = &n.amount_in_host_currency;
    let host_currency = currency_code(&host.currency)
        .ok_or_else(|| format!("transaction {} has no host currency", n.id))?;
    let gross_host = cents(host.value_in_cents, &what("amountInHostCurrency"))?;
    let mut fees_host = 0i64;
    for (name, value, currency) in [
        (
            "platformFee",
            n.platform_fee.value_in_cents,
            currency_code(&n.platform_fee.currency),
        ),
        (
            "hostFee",
            n.host_fee.as_ref().and_then(|f| f.value_in_cents),
            n.host_fee.as_ref().and_then(|f| currency_code(&f.currency)),
        ),
        (
            "paymentProcessorFee",
            n.payment_processor_fee
                .as_ref()
                .and_then(|f| f.value_in_cents),
            n.payment_processor_fee
                .as_ref()
                .and_then(|f| currency_code(&f.currency)),
        ),
    ] {
        if value.is_none() {
            continue;
        }
        let c = cents(value, &what(name))?;
        if c != 0 {
            if let Some(cur) = currency {
                if cur != host_currency {
                    return Err(format!(
                        "transaction {}: {name} is in {cur}, not in the host currency {host_currency}",
                        n.id
                    ));
                }
            }
        }
        fees_host -= c;
    }
    Ok((gross_host, fees_host, host_currency))
}

/// Host-currency cents of a transaction in ledger cents, or an error naming it.
fn convert(
    config: &Config,
    n: &Node,
    at: DateTime,
    cents: i64,
    currency: &str,
) -> Result<i64, String> {
    to_ledger_cents(config, cents, currency)
        .map_err(|e| format!("transaction {} ({}): {e}", n.id, at.to_rfc3339()))
}

/// The donation record of a transaction, `Ok(None)` for a line that is not a donation, or an
/// error naming the transaction (a currency with no rate, a malformed amount).
fn record(
    config: &Config,
    oc: &OpenCollectiveConfig,
    n: &Node,
) -> Result<Option<DonationRecord>, String> {
    let kind = match n.kind {
        Some(TransactionKind::CONTRIBUTION) => "contribution",
        Some(TransactionKind::ADDED_FUNDS) => "added_funds",
        _ => return Ok(None),
    };
    let refund = n.is_refund == Some(true);
    let other = match (&n.type_, refund) {
        (TransactionType::CREDIT, false) => n.from_account.as_ref().map(from_side),
        (TransactionType::DEBIT, true) => n.to_account.as_ref().map(to_side),
        _ => return Ok(None),
    };
    let Some(account) = n.account.as_ref().map(|a| a.slug.clone()) else {
        return Err(format!("transaction {} has no account", n.id));
    };
    let collective = oc.collective.as_str();
    let contributor = match &other {
        // Money moved between the collective and its own projects or events is not income.
        Some((slug, _, _, parent))
            if slug == collective || parent.as_deref() == Some(collective) =>
        {
            return Ok(None)
        }
        Some((slug, name, incognito, _)) => {
            contributor(&oc.website, slug, name.as_deref(), *incognito)
        }
        None => Contributor::anonymous(),
    };
    let at = n
        .created_at
        .ok_or_else(|| format!("transaction {} has no createdAt", n.id))?;
    let (gross_host, fees_host, host_currency) = host_money(n)?;
    let gross = convert(config, n, at, gross_host, &host_currency)?;
    let fees = convert(config, n, at, fees_host, &host_currency)?;
    let original_cents = cents(
        n.amount.value_in_cents,
        &format!("transaction {} amount", n.id),
    )?;
    let original_currency = currency_code(&n.amount.currency).unwrap_or(host_currency.clone());
    let record = DonationRecord {
        source: SOURCE.into(),
        external_id: n.id.clone(),
        kind: if refund { "refund" } else { kind }.into(),
        occurred_at: at,
        account_slug: account,
        tier_slug: n
            .order
            .as_ref()
            .and_then(|o| o.tier.as_ref())
            .and_then(|t| t.slug.clone()),
        contributor,
        gross_cents: gross,
        fees_cents: fees,
        net_cents: gross - fees,
        original_amount: cents_text(original_cents),
        original_currency,
        refund_of: if refund {
            n.refund_transaction.as_ref().map(|r| r.id.clone())
        } else {
            None
        },
        description: n.description.clone(),
    };
    match record.out_of_bounds() {
        Some(why) => Err(format!("transaction {}: {why}", n.id)),
        None => Ok(Some(record)),
    }
}

use donation_transactions::DonationTransactionsTransactionsNodesExpensePayeeOn as PayeeOn;

/// The expense record of an `EXPENSE` transaction, `Ok(None)` for a line that is not a paid
/// expense or its reversal (or is an internal move), or an error naming the transaction.
fn expense_record(
    config: &Config,
    oc: &OpenCollectiveConfig,
    n: &Node,
) -> Result<Option<ExpenseRecord>, String> {
    let refund = n.is_refund == Some(true);
    // The payee's side of the transaction: the receiver of a payment, the sender of a reversal.
    let other = match (&n.type_, refund) {
        (TransactionType::DEBIT, false) => n.to_account.as_ref().map(to_side),
        (TransactionType::CREDIT, true) => n.from_account.as_ref().map(from_side),
        _ => return Ok(None),
    };
    let Some(account) = n.account.as_ref().map(|a| a.slug.clone()) else {
        return Err(format!("transaction {} has no account", n.id));
    };
    let collective = oc.collective.as_str();
    let ours = |slug: &str, parent: Option<&str>| slug == collective || parent == Some(collective);
    let expense = n.expense.as_ref();
    // Money paid to the collective itself or one of its own projects or events is an internal
    // move, whichever side says so.
    if let Some((slug, _, _, parent)) = &other {
        if ours(slug, parent.as_deref()) {
            return Ok(None);
        }
    }
    if let Some(p) = expense.map(|e| &e.payee) {
        let parent = match &p.on {
            PayeeOn::Project(x) => x.parent.as_ref().map(|a| a.slug.clone()),
            PayeeOn::Event(x) => x.parent.as_ref().map(|a| a.slug.clone()),
            _ => None,
        };
        if ours(&p.slug, parent.as_deref()) {
            return Ok(None);
        }
    }
    let at = n
        .created_at
        .ok_or_else(|| format!("transaction {} has no createdAt", n.id))?;
    let (gross_host, fees_host, host_currency) = host_money(n)?;
    // A payment is a DEBIT (negative): stored positive; a reversal comes out negative.
    let amount = convert(config, n, at, -gross_host, &host_currency)?;
    let fees = convert(config, n, at, fees_host, &host_currency)?;
    let original_cents = cents(
        n.amount.value_in_cents,
        &format!("transaction {} amount", n.id),
    )?;
    let original_currency = currency_code(&n.amount.currency).unwrap_or(host_currency.clone());
    let payee = match expense {
        Some(e) => e.payee.name.clone().or_else(|| Some(e.payee.slug.clone())),
        None => other
            .as_ref()
            .map(|(slug, name, _, _)| name.clone().unwrap_or_else(|| slug.clone())),
    };
    // The invoice's date: the UTC date of `incurredAt` (without a linked expense, of the
    // payment).
    let incurred = expense.map_or(at, |e| e.incurred_at);
    let incurred_at = Utc.from_utc_datetime(
        &incurred
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists"),
    );
    let record = ExpenseRecord {
        source: SOURCE.into(),
        external_id: n.id.clone(),
        kind: if refund {
            ExpenseKind::Reversal
        } else {
            ExpenseKind::Expense
        },
        paid_at: at,
        account_slug: account,
        payee,
        tags: expense
            .map(|e| e.tags.iter().flatten().cloned().collect())
            .unwrap_or_default(),
        description: expense
            .map(|e| e.description.clone())
            .or_else(|| n.description.clone()),
        incurred_at,
        amount_cents: amount,
        fees_cents: fees,
        original_amount: cents_text(-original_cents),
        original_currency,
        expense_ref: expense.map(|e| e.id.clone()),
        reversal_of: if refund {
            n.refund_transaction.as_ref().map(|r| r.id.clone())
        } else {
            None
        },
    };
    match record
        .out_of_bounds()
        .or_else(|| text_out_of_bounds(&record))
    {
        Some(why) => Err(format!("transaction {}: {why}", n.id)),
        None => Ok(Some(record)),
    }
}

/// The most tags an OpenCollective expense record may carry, and the longest tag, payee and
/// description (in characters): far above what OpenCollective's own forms allow, so only a
/// broken or hostile answer meets them, and it stops the sync naming the transaction rather
/// than filling the database.
pub const MAX_EXPENSE_TAGS: usize = 100;
pub const MAX_EXPENSE_TEXT: usize = 255;
pub const MAX_EXPENSE_DESCRIPTION: usize = 10_000;

fn text_out_of_bounds(r: &ExpenseRecord) -> Option<String> {
    let long = |s: &str, max: usize| s.chars().count() > max;
    if r.tags.len() > MAX_EXPENSE_TAGS {
        return Some(format!(
            "{} tags: at most {MAX_EXPENSE_TAGS} are taken",
            r.tags.len()
        ));
    }
    if let Some(t) = r.tags.iter().find(|t| long(t, MAX_EXPENSE_TEXT)) {
        return Some(format!(
            "a tag of {} characters: at most {MAX_EXPENSE_TEXT}",
            t.chars().count()
        ));
    }
    if r.payee
        .as_deref()
        .is_some_and(|p| long(p, MAX_EXPENSE_TEXT))
    {
        return Some(format!("a payee name over {MAX_EXPENSE_TEXT} characters"));
    }
    if r.description
        .as_deref()
        .is_some_and(|d| long(d, MAX_EXPENSE_DESCRIPTION))
    {
        return Some(format!(
            "a description over {MAX_EXPENSE_DESCRIPTION} characters"
        ));
    }
    None
}

async fn read_cursor(db: &DatabaseConnection, name: &str) -> Result<Option<DateTime>, SourceError> {
    let Some(value) = crate::sources::cursors::read(db, name).await? else {
        return Ok(None);
    };
    match chrono::DateTime::parse_from_rfc3339(&value) {
        Ok(t) => Ok(Some(t.with_timezone(&Utc))),
        Err(_) => Err(SourceError::CursorUnreadable {
            name: name.to_string(),
            value,
            expected: CursorFormat::Rfc3339,
        }),
    }
}

async fn store_cursor(
    db: &DatabaseConnection,
    name: &str,
    value: DateTime,
    now: DateTime,
) -> Result<(), SourceError> {
    crate::sources::cursors::store(db, name, show(value), now).await
}

fn show(t: DateTime) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opencollective(config: &Config) -> Result<&OpenCollectiveConfig, SourceError> {
    config
        .opencollective
        .as_ref()
        .ok_or_else(|| SourceError::NoOpenCollective {
            config: config.source.clone(),
        })
}

/// One sync at `now`: new transactions since the cursor (with the overlap), then the active
/// recurring contributions, then the OpenCollective check up to `now`. `progress` is called
/// after each stored page. Its log lines are in the span `sync` (`source = "opencollective"`).
#[tracing::instrument(
    name = "sync",
    skip_all,
    fields(source = "opencollective", collective = tracing::field::Empty)
)]
pub async fn sync(
    db: &DatabaseConnection,
    config: &Config,
    secrets: &Secrets,
    options: SyncOptions,
    now: DateTime,
    progress: impl Fn(&PageReport),
) -> Result<SyncReport, SourceError> {
    let oc = opencollective(config)?;
    tracing::Span::current().record("collective", oc.collective.as_str());
    let page_size = options.page_size.clamp(1, PAGE_SIZE);
    let client = Client::new(oc, secrets, options)?;
    let name = cursor_name(&oc.collective);
    let cursor_before = read_cursor(db, &name).await?;
    let read_from = match cursor_before {
        Some(c) => (c - chrono::Duration::seconds(oc.overlap_seconds)).max(config.ledger_start),
        None => config.ledger_start,
    };
    let mut report = SyncReport {
        collective: oc.collective.clone(),
        cursor_name: name.clone(),
        read_from: show(read_from),
        cursor_before: cursor_before.map(show),
        cursor_after: cursor_before.map(show),
        ..SyncReport::default()
    };
    let mut cursor = cursor_before;
    let mut pager = Pager::<DonationTransactions, _>::new(&client, page_size, |limit, offset| {
        donation_transactions::Variables {
            slug: oc.collective.clone(),
            date_from: read_from,
            limit,
            offset,
        }
    });
    loop {
        let next = pager
            .next(|page| format!("page {page} of the transactions of {}", oc.collective))
            .await;
        let Page {
            number: page,
            total,
            nodes,
        } = match next {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                report.retries = client.retries();
                return Err(SourceError::SyncStopped {
                    page: report.pages + 1,
                    stored: report.pages,
                    source: Box::new(e),
                });
            }
        };
        let count = nodes.len() as i64;
        let mut records = Vec::with_capacity(nodes.len());
        let mut spent = Vec::new();
        let mut skipped = 0;
        let mut latest = None;
        for n in &nodes {
            latest = latest.max(n.created_at);
            match line(config, oc, n) {
                Ok(Line::Donation(r)) => records.push(r),
                Ok(Line::Expense(r)) => spent.push(r),
                Ok(Line::Skipped) => skipped += 1,
                Err(why) => return Err(SourceError::PageRefused { page, why }),
            }
        }
        // The page's donations and expenses together, all or nothing.
        let (stored, expenses_stored) = store_page(db, &records, &spent, now)
            .await
            .map_err(|source| SourceError::PageStore { page, source })?;
        crate::pause_points::reached("opencollective.page_stored").await;
        // Only now that the page is committed may the cursor move, and only forward.
        if let Some(t) = latest {
            if cursor.is_none_or(|c| t > c) {
                store_cursor(db, &name, t, now).await?;
                cursor = Some(t);
            }
        }
        report.pages += 1;
        report.records += count as u64;
        report.stored += stored;
        report.expenses += expenses_stored;
        report.skipped += skipped;
        report.cursor_after = cursor.map(show);
        progress(&PageReport {
            page,
            records: count as u64,
            total,
            stored,
            expenses: expenses_stored,
            skipped,
        });
    }
    report.recurring = sync_recurring(db, config, oc, &client, page_size, now).await?;
    let check = check(db, config, oc, &client, now).await?;
    report.check = Some(check);
    report.retries = client.retries();
    Ok(report)
}

/// Stores a page's donations and expenses in one transaction.
async fn store_page(
    db: &DatabaseConnection,
    records: &[DonationRecord],
    spent: &[ExpenseRecord],
    now: DateTime,
) -> Result<(Stored, Stored), Cause> {
    if records.is_empty() && spent.is_empty() {
        return Ok(Default::default());
    }
    let txn = crate::db::begin_write(db).await?;
    let stored = donations::upsert_in(&txn, records, now).await?;
    let spent = expenses::upsert_in(&txn, spent, now).await?;
    txn.commit().await?;
    Ok((stored, spent))
}

/// The OpenCollective check up to `now` (the sync read every transaction created before it),
/// stored and logged: a warning naming the drift, never a correction.
async fn check(
    db: &DatabaseConnection,
    config: &Config,
    oc: &OpenCollectiveConfig,
    client: &Client,
    now: DateTime,
) -> Result<Check, SourceError> {
    let through = now;
    let data = client
        .query::<CollectiveBalance>(
            collective_balance::Variables {
                slug: oc.collective.clone(),
                date_to: through,
                ledger_start: config.ledger_start,
            },
            &format!("the balance of {}", oc.collective),
        )
        .await
        .map_err(|e| SourceError::CheckBalance {
            source: Box::new(e),
        })?;
    // The balance as OpenCollective gives it; a balance without a currency cannot be compared.
    let balance = |value: Option<f64>, currency: Option<String>, what: &str| {
        Ok::<_, SourceError>(OcBalance {
            cents: cents(value, what).map_err(SourceError::BalanceRefused)?,
            currency: currency.unwrap_or_else(|| "no currency".into()),
        })
    };
    let check = match data.account.and_then(|a| a.stats) {
        None => opencollective_check::skipped(
            &oc.collective,
            now,
            through,
            format!(
                "OpenCollective shows no balance of the account {}",
                oc.collective
            ),
        ),
        Some(stats) => {
            let (b, s) = (stats.balance_at, stats.balance_at_start);
            let at = balance(b.value_in_cents, currency_code(&b.currency), "the balance")?;
            let at_start = balance(
                s.value_in_cents,
                currency_code(&s.currency),
                "the balance at ledger_start",
            )?;
            let ledger =
                opencollective_check::ledger_cents(db, config.ledger_start, through).await?;
            opencollective_check::evaluate(
                &oc.collective,
                &config.currency,
                now,
                through,
                &at,
                &at_start,
                ledger,
            )
        }
    };
    opencollective_check::record(db, &check).await?;
    let through_text = show(through);
    match check.status {
        CheckStatus::Ok => tracing::info!(
            collective = %check.collective,
            through = %through_text,
            "OpenCollective check: the ledger matches OpenCollective's balance"
        ),
        CheckStatus::Drift => {
            let drift = check.drift_cents.unwrap_or(0);
            tracing::warn!(
                collective = %check.collective,
                through = %through_text,
                drift_cents = drift,
                balance_oc_cents = check.balance_oc_cents,
                balance_oc_start_cents = check.balance_oc_start_cents,
                ledger_cents = check.ledger_cents,
                "OpenCollective check: drift of {} {} between OpenCollective's balance and the ledger (a transaction is missed or miscounted; nothing was corrected)",
                crate::money::format_cents(drift),
                config.currency
            )
        }
        CheckStatus::Skipped => tracing::warn!(
            collective = %check.collective,
            through = %through_text,
            reason = check.reason.as_deref().unwrap_or(""),
            "OpenCollective check skipped"
        ),
    }
    Ok(check)
}

/// Reads the active recurring contributions and stores them; stored ones that are no longer
/// active are marked `INACTIVE`.
async fn sync_recurring(
    db: &DatabaseConnection,
    config: &Config,
    oc: &OpenCollectiveConfig,
    client: &Client,
    page_size: i64,
    now: DateTime,
) -> Result<u64, SourceError> {
    use active_recurring_orders::ContributionFrequency as F;
    use recurring_contributions::Column as R;
    let mut rows = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut pager = Pager::<ActiveRecurringOrders, _>::new(client, page_size, |limit, offset| {
        active_recurring_orders::Variables {
            slug: oc.collective.clone(),
            limit,
            offset,
        }
    });
    while let Some(Page { nodes, .. }) = pager
        .next(|_| format!("the recurring contributions of {}", oc.collective))
        .await?
    {
        for o in nodes {
            let Some(to) = o.to_account.as_ref() else {
                continue;
            };
            let currency = currency_code(&o.amount.currency).unwrap_or(config.currency.clone());
            let what = format!("order {}", o.id);
            let amount = cents(o.amount.value_in_cents, &what)
                .and_then(|c| to_ledger_cents(config, c, &currency))
                .map_err(|why| SourceError::RecurringRefused {
                    id: o.id.clone(),
                    why,
                })?;
            let c = match &o.from_account {
                Some(f) => contributor(&oc.website, &f.slug, f.name.as_deref(), f.is_incognito),
                None => Contributor::anonymous(),
            };
            let frequency = match o.frequency {
                Some(F::MONTHLY) => "monthly",
                Some(F::YEARLY) => "yearly",
                _ => continue,
            };
            seen.insert(o.id.clone());
            rows.push(recurring_contributions::ActiveModel {
                source: Set(SOURCE.into()),
                external_id: Set(o.id.clone()),
                account_slug: Set(to.slug.clone()),
                tier_slug: Set(o.tier.as_ref().and_then(|t| t.slug.clone())),
                contributor_name: Set(c.name),
                contributor_slug: Set(c.slug),
                contributor_url: Set(c.url),
                anonymous: Set(c.anonymous),
                frequency: Set(frequency.into()),
                amount_cents: Set(amount),
                status: Set("ACTIVE".into()),
                started_at: Set(o.created_at),
                updated_at: Set(now),
                ..Default::default()
            });
        }
    }
    let n = rows.len() as u64;
    let txn = crate::db::begin_write(db).await?;
    for chunk in rows.chunks(500) {
        recurring_contributions::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([R::Source, R::ExternalId])
                    .update_columns([
                        R::AccountSlug,
                        R::TierSlug,
                        R::ContributorName,
                        R::ContributorSlug,
                        R::ContributorUrl,
                        R::Anonymous,
                        R::Frequency,
                        R::AmountCents,
                        R::Status,
                        R::StartedAt,
                        R::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    let stale: Vec<String> = recurring_contributions::Entity::find()
        .filter(R::Source.eq(SOURCE))
        .filter(R::Status.eq("ACTIVE"))
        .all(&txn)
        .await?
        .into_iter()
        .filter(|m| !seen.contains(&m.external_id))
        .map(|m| m.external_id)
        .collect();
    for chunk in stale.chunks(500) {
        recurring_contributions::Entity::update_many()
            .col_expr(R::Status, sea_orm::sea_query::Expr::value("INACTIVE"))
            .col_expr(R::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(R::Source.eq(SOURCE))
            .filter(R::ExternalId.is_in(chunk.iter().cloned()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(n)
}

#[cfg(test)]
#[path = "opencollective_tests.rs"]
mod tests;
