//! The outbox's rows: their states and kinds, the retry schedule, a confirmation queued with
//! its subscriber, and each row's stable Message-ID. [`super::outbox`] claims and sends them;
//! [`super::subscriptions`] queues confirmations here in its own transaction.
use buildfund_entity::email_outbox::{OutboxKind, OutboxStatus};
use buildfund_entity::{email_outbox, subscribers};
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use std::time::Duration;

pub const PENDING: OutboxStatus = OutboxStatus::Pending;
pub const SENDING: OutboxStatus = OutboxStatus::Sending;
pub const RETRY: OutboxStatus = OutboxStatus::Retry;
pub const SENT: OutboxStatus = OutboxStatus::Sent;
pub const FAILED: OutboxStatus = OutboxStatus::Failed;
pub const SKIPPED: OutboxStatus = OutboxStatus::Skipped;

/// The kinds of row: the monthly report, and a subscription's confirmation email.
pub const REPORT: OutboxKind = OutboxKind::Report;
pub const CONFIRM: OutboxKind = OutboxKind::Confirm;

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
    crate::backoff::Backoff::new(first, MAX_BACKOFF).delay(attempts.clamp(1, 20) as u32)
}

/// Queues the confirmation email of `subscriber` (pending), requested at `now`, inside the
/// caller's transaction: the email exists exactly when the state that asks for it does (the
/// caller's conditional update of the subscriber lets one request of concurrent ones through).
/// The row's `month` is the request's instant to the microsecond, unique per subscriber under
/// the (month, subscriber_id) index. Returns the row's id.
pub async fn queue_confirmation(
    db: &impl ConnectionTrait,
    subscriber: &subscribers::Model,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let row = email_outbox::ActiveModel {
        kind: Set(CONFIRM),
        month: Set(now.to_rfc3339_opts(SecondsFormat::Micros, true)),
        subscriber_id: Set(subscriber.id),
        email: Set(subscriber.email.clone()),
        status: Set(PENDING),
        attempts: Set(0),
        next_attempt_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row.id)
}

/// The stable Message-ID of a row, the same on every try: `<report.MONTH.ROW@domain>` for a
/// report, `<confirm.ROW@domain>` for a confirmation.
pub fn message_id(row: &email_outbox::Model, domain: &str) -> String {
    if row.kind == CONFIRM {
        format!("<confirm.{}@{}>", row.id, domain)
    } else {
        format!("<report.{}.{}@{}>", row.month, row.id, domain)
    }
}

/// Messages not yet in a final state (`pending`, `retry`, `sending`), of both kinds: one
/// `COUNT` through the index on `(status, next_attempt_at)`.
pub async fn pending_count(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let n = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.is_in([PENDING, RETRY, SENDING]))
        .count(db)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}
