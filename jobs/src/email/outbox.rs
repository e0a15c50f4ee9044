//! The outbox: one row per (month, subscriber), created atomically, then drained over one
//! pooled SMTP connection at a bounded rate. States:
//!
//! ```text
//! pending ──claim──▶ sending ──250──▶ sent
//!    ▲                  │ ├──5xx──▶ failed      (permanent, or MAX_ATTEMPTS transient failures)
//!    │                  │ └──4xx / no connection──▶ retry (next_attempt_at = now + backoff)
//!    │                  └── lease expired (the sender died) ──▶ claimable again
//! retry ──claim──▶ sending …          (a subscriber no longer confirmed: ──▶ skipped)
//! ```
//!
//! Exactly once: the unique (month, subscriber_id) index makes creating rows idempotent; a
//! row is claimed by a conditional UPDATE (only one sender wins it) and marked `sent` with the
//! server's reply and the Message-ID right after the server accepted it. The one window left is
//! a crash between the server's acceptance and that UPDATE: the row is sent again after its
//! lease, with the same Message-ID (`<report.MONTH.ROW@domain>`), which receivers use to drop
//! the duplicate (README, "Monthly email").
use super::links;
use super::render::{self, ReportView};
use super::smtp::SendError;
use super::subscriptions::CONFIRMED;
use super::{EmailKey, Mailer};
use crate::calendar::Month;
use crate::config::Secrets;
use crate::report::{month_report, MonthReport};
use crate::Config;
use buildfund_entity::{email_outbox, subscribers};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use std::time::Duration;

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const RETRY: &str = "retry";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
pub const SKIPPED: &str = "skipped";

/// How long a claimed row belongs to its sender before another may take it.
pub const LEASE: ChronoDuration = ChronoDuration::minutes(5);
/// Transient failures of one message before it is given up as `failed`.
pub const MAX_ATTEMPTS: i32 = 10;
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
/// `BUILDFUND_SMTP_BACKOFF_MS` overrides it (tests, troubleshooting).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The delay before the next try of a message that failed `attempts` times.
pub fn backoff(attempts: i32) -> Duration {
    let first = std::env::var("BUILDFUND_SMTP_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(FIRST_BACKOFF);
    let factor = 1u32 << (attempts.clamp(1, 20) - 1) as u32;
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Creates the month's rows: one per confirmed subscriber, in one statement
/// (`INSERT … SELECT … ON CONFLICT (month, subscriber_id) DO NOTHING`) inside a transaction.
/// Running it again adds only subscribers confirmed since. Returns the rows created.
pub async fn enqueue(
    db: &DatabaseConnection,
    month: Month,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use email_outbox::Column as O;
    use subscribers::Column as S;
    let select = Query::select()
        .expr(Expr::val(month.to_string()))
        .column(S::Id)
        .column(S::Email)
        .expr(Expr::val(PENDING))
        .expr(Expr::val(0i32))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .from(subscribers::Entity)
        .and_where(Expr::col(S::Status).eq(CONFIRMED))
        .order_by(S::Id, sea_orm::Order::Asc)
        .to_owned();
    let insert = Query::insert()
        .into_table(email_outbox::Entity)
        .columns([
            O::Month,
            O::SubscriberId,
            O::Email,
            O::Status,
            O::Attempts,
            O::NextAttemptAt,
            O::CreatedAt,
        ])
        .select_from(select)
        .map_err(|e| DbErr::Custom(format!("outbox insert: {e}")))?
        .on_conflict(
            OnConflict::columns([O::Month, O::SubscriberId])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    let txn = crate::db::begin_write(db).await?;
    let created = txn.execute(&insert).await?.rows_affected();
    txn.commit().await?;
    Ok(created)
}

/// How long a drain run keeps going while messages wait for their retry.
#[derive(Clone, Copy, Debug)]
pub struct DrainOptions {
    /// Retries due within this much time of the run's start are waited for; later ones are
    /// left to the next run.
    pub wait_for_retries: Duration,
    /// Called with the figures so far while messages go out (the CLI prints a progress line):
    /// after the first message, then at most once a second, never when nothing changed.
    pub progress: Option<fn(&DrainReport)>,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            wait_for_retries: Duration::from_secs(60),
            progress: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Transient failures met during the run (each rescheduled or given up).
    pub transient_failures: u64,
    /// Rows still waiting for a retry when the run ended.
    pub waiting: u64,
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} failed, {} skipped (no longer subscribed), {} transient failures, {} waiting for a retry",
            self.sent, self.failed, self.skipped, self.transient_failures, self.waiting
        )
    }
}

/// Takes the next due row (pending, retry, or a `sending` row whose lease expired) for this
/// sender: a conditional UPDATE that only one sender can win.
async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Option<email_outbox::Model>, DbErr> {
    use email_outbox::Column as O;
    for _ in 0..10 {
        let Some(row) = email_outbox::Entity::find()
            .filter(O::Status.is_in([PENDING, RETRY, SENDING]))
            .filter(O::NextAttemptAt.lte(now))
            .order_by_asc(O::Id)
            .limit(1)
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let lease_until = now + LEASE;
        let update = Query::update()
            .table(email_outbox::Entity)
            .value(O::Status, SENDING)
            .value(O::Attempts, Expr::col(O::Attempts).add(1))
            .value(O::NextAttemptAt, lease_until)
            .and_where(Expr::col(O::Id).eq(row.id))
            .and_where(Expr::col(O::Status).eq(row.status.as_str()))
            .and_where(Expr::col(O::Attempts).eq(row.attempts))
            .to_owned();
        if db.execute(&update).await?.rows_affected() == 1 {
            return Ok(Some(email_outbox::Model {
                status: SENDING.into(),
                attempts: row.attempts + 1,
                next_attempt_at: lease_until,
                ..row
            }));
        }
    }
    Ok(None)
}

/// Ends this sender's claim of `row`: only while the claim is still its own (status `sending`
/// with the attempt count it claimed at). A sender that stalled past its lease, and whose row
/// another sender has claimed since, changes nothing (and says so).
async fn finish(
    db: &DatabaseConnection,
    row: &email_outbox::Model,
    status: &str,
    values: Vec<(email_outbox::Column, sea_orm::Value)>,
) -> Result<(), DbErr> {
    let mut update = Query::update();
    update
        .table(email_outbox::Entity)
        .value(email_outbox::Column::Status, status)
        .and_where(Expr::col(email_outbox::Column::Id).eq(row.id))
        .and_where(Expr::col(email_outbox::Column::Status).eq(SENDING))
        .and_where(Expr::col(email_outbox::Column::Attempts).eq(row.attempts));
    for (c, v) in values {
        update.value(c, v);
    }
    if db.execute(&update).await?.rows_affected() == 0 {
        tracing::warn!(
            outbox = row.id,
            attempts = row.attempts,
            status,
            "the claim on this outbox row had expired and another sender holds it; not recorded"
        );
    }
    Ok(())
}

/// The stable Message-ID of a row: the same on every try of the same (month, subscriber).
pub fn message_id(row: &email_outbox::Model, domain: &str) -> String {
    format!("<report.{}.{}@{}>", row.month, row.id, domain)
}

/// The unsubscribe link of a subscriber.
pub fn unsubscribe_url(config: &Config, key: &EmailKey, id: i64, email: &str) -> String {
    format!(
        "{}/unsubscribe?token={}",
        config.public_url,
        links::unsubscribe_token(key, id, email)
    )
}

/// The report email of one subscriber: multipart/alternative (text, HTML) with
/// `List-Unsubscribe` and RFC 8058's `List-Unsubscribe-Post`.
pub fn report_message(
    mailer: &Mailer,
    config: &Config,
    report: &MonthReport,
    to: &str,
    unsubscribe: &str,
    message_id: String,
) -> anyhow::Result<Message> {
    let view = ReportView::new(report, &config.public_url, unsubscribe);
    let rendered = render::report(&view)?;
    let to: Mailbox = to.parse()?;
    Ok(Message::builder()
        .from(mailer.from().clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(message_id))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{unsubscribe}>"),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))?)
}

/// Sends every due row, one message at a time over the mailer's single pooled connection, at
/// most `rate_per_second`. A transient failure reschedules the row with exponential backoff; a
/// failure to reach the server at all also pauses the whole run until that retry (so an SMTP
/// outage costs one attempt per backoff step, not one per subscriber). Returns when nothing is
/// due before `options.wait_for_retries` from the start.
pub async fn drain(
    db: &DatabaseConnection,
    config: &Config,
    mailer: &Mailer,
    key: &EmailKey,
    options: DrainOptions,
) -> anyhow::Result<DrainReport> {
    let deadline = Utc::now()
        + ChronoDuration::from_std(options.wait_for_retries).unwrap_or(ChronoDuration::zero());
    let mut report = DrainReport::default();
    let period = Duration::from_secs_f64(1.0 / f64::from(std::cmp::max(mailer.rate_per_second, 1)));
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut months: HashMap<String, MonthReport> = HashMap::new();
    // (when, what) of the last progress call: the first change is shown at once, then at most
    // one a second.
    let mut shown: (Option<std::time::Instant>, DrainReport) = (None, DrainReport::default());
    loop {
        if let Some(progress) = options.progress {
            let due = shown
                .0
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due && report != shown.1 {
                progress(&report);
                shown = (Some(std::time::Instant::now()), report.clone());
            }
        }
        let now = Utc::now();
        let Some(row) = claim(db, now).await? else {
            // Nothing due now: wait for the next retry if it comes before the deadline. Rows
            // another sender holds are its business (if it dies, a later run takes them over).
            let next = email_outbox::Entity::find()
                .filter(email_outbox::Column::Status.is_in([PENDING, RETRY]))
                .order_by_asc(email_outbox::Column::NextAttemptAt)
                .one(db)
                .await?
                .map(|r| r.next_attempt_at);
            match next {
                Some(t) if t <= deadline => {
                    sleep_until(t).await;
                    continue;
                }
                _ => break,
            }
        };
        let subscriber = subscribers::Entity::find_by_id(row.subscriber_id)
            .one(db)
            .await?;
        let Some(subscriber) = subscriber.filter(|s| s.status == CONFIRMED) else {
            finish(db, &row, SKIPPED, vec![]).await?;
            report.skipped += 1;
            continue;
        };
        if !months.contains_key(&row.month) {
            let month = Month::parse(&row.month).map_err(anyhow::Error::msg)?;
            months.insert(
                row.month.clone(),
                month_report(db, config, month, now).await?,
            );
        }
        let id = message_id(&row, &mailer.domain);
        let unsubscribe = unsubscribe_url(config, key, subscriber.id, &subscriber.email);
        let message = match report_message(
            mailer,
            config,
            &months[&row.month],
            &row.email,
            &unsubscribe,
            id.clone(),
        ) {
            Ok(m) => m,
            Err(e) => {
                finish(
                    db,
                    &row,
                    FAILED,
                    vec![(
                        email_outbox::Column::LastError,
                        format!("cannot build the message: {e:#}").into(),
                    )],
                )
                .await?;
                report.failed += 1;
                continue;
            }
        };
        pace.tick().await;
        match mailer.send(message).await {
            Ok(accepted) => {
                finish(
                    db,
                    &row,
                    SENT,
                    vec![
                        (email_outbox::Column::SentAt, Utc::now().into()),
                        (email_outbox::Column::MessageId, id.into()),
                        (email_outbox::Column::SmtpResponse, accepted.response.into()),
                        (
                            email_outbox::Column::LastError,
                            Option::<String>::None.into(),
                        ),
                    ],
                )
                .await?;
                report.sent += 1;
            }
            Err(SendError::Permanent { message }) => {
                tracing::warn!(outbox = row.id, month = %row.month, error = %message, "report refused permanently");
                finish(
                    db,
                    &row,
                    FAILED,
                    vec![(email_outbox::Column::LastError, message.into())],
                )
                .await?;
                report.failed += 1;
            }
            Err(SendError::Transient {
                message,
                connection,
            }) => {
                report.transient_failures += 1;
                if row.attempts >= MAX_ATTEMPTS {
                    tracing::warn!(outbox = row.id, attempts = row.attempts, error = %message, "report given up");
                    finish(
                        db,
                        &row,
                        FAILED,
                        vec![(
                            email_outbox::Column::LastError,
                            format!("gave up after {} attempts: {message}", row.attempts).into(),
                        )],
                    )
                    .await?;
                    report.failed += 1;
                    continue;
                }
                let next = Utc::now()
                    + ChronoDuration::from_std(backoff(row.attempts))
                        .unwrap_or(ChronoDuration::hours(1));
                tracing::info!(outbox = row.id, attempts = row.attempts, retry_at = %next, error = %message, "report will be retried");
                finish(
                    db,
                    &row,
                    RETRY,
                    vec![
                        (email_outbox::Column::NextAttemptAt, next.into()),
                        (email_outbox::Column::LastError, message.into()),
                    ],
                )
                .await?;
                if connection {
                    // The server cannot be reached: every message would fail the same way now.
                    if next > deadline {
                        break;
                    }
                    sleep_until(next).await;
                }
            }
        }
    }
    report.waiting = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.is_in([PENDING, RETRY]))
        .count(db)
        .await?;
    Ok(report)
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

/// Counts of a month's rows by status.
pub async fn month_status(
    db: &impl ConnectionTrait,
    month: Month,
) -> Result<Vec<(String, i64)>, DbErr> {
    use email_outbox::Column as O;
    email_outbox::Entity::find()
        .select_only()
        .column(O::Status)
        .column_as(O::Id.count(), "n")
        .filter(O::Month.eq(month.to_string()))
        .group_by(O::Status)
        .order_by_asc(O::Status)
        .into_tuple()
        .all(db)
        .await
}

/// `buildfund report send` and the `monthly_report` job: the month's rows, then a drain.
pub async fn send_month(
    db: &DatabaseConnection,
    config: &Config,
    secrets: &Secrets,
    month: Month,
    options: DrainOptions,
) -> anyhow::Result<(u64, DrainReport)> {
    let smtp = config.smtp.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no [smtp] table in the configuration: cannot send email")
    })?;
    let mailer = Mailer::new(smtp, secrets)?;
    let key = EmailKey::load(db, secrets).await?;
    let created = enqueue(db, month, Utc::now()).await?;
    let report = drain(db, config, &mailer, &key, options).await?;
    Ok((created, report))
}

/// The report's two parts as a subscriber would get them (with a sample unsubscribe link), for
/// `buildfund report preview`.
pub async fn preview(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> anyhow::Result<render::Rendered> {
    let report = month_report(db, config, month, at).await?;
    let view = ReportView::new(
        &report,
        &config.public_url,
        &format!("{}/unsubscribe?token=PREVIEW", config.public_url),
    );
    Ok(render::report(&view)?)
}
