//! Subscribers: double opt-in (`subscribe` → confirmation email with a signed, expiring link →
//! `confirm`), unsubscribe by a signed link that never expires, and the admin operations. A
//! subscriber is `pending`, `confirmed` or `unsubscribed`; only `confirmed` ones get reports.
//! The confirmation email goes through the outbox: it is queued in the transaction that makes
//! the subscriber pending, and sent (and retried) by the outbox's senders.
use super::links::{self, Purpose, TokenError};
use super::queue;
use super::render;
use super::{EmailError, EmailKey, Mailer};
use buildfund_entity::subscribers;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, ExprTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

pub use buildfund_entity::subscribers::SubscriberStatus;

pub const PENDING: SubscriberStatus = SubscriberStatus::Pending;
pub const CONFIRMED: SubscriberStatus = SubscriberStatus::Confirmed;
pub const UNSUBSCRIBED: SubscriberStatus = SubscriberStatus::Unsubscribed;

/// A syntactically valid address, lower-cased (one subscriber per mailbox whatever its case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberEmail(String);

impl SubscriberEmail {
    /// Parses an address: one `local@domain`, at most 254 bytes, a domain with a dot, nothing
    /// else (no display name, no spaces, no list). The error names the problem.
    pub fn parse(input: &str) -> Result<SubscriberEmail, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("the email address is empty".into());
        }
        if s.len() > 254 {
            return Err("the email address is longer than 254 characters".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} contains spaces or control characters"));
        }
        if s.contains(['<', '>', ',', ';']) {
            return Err(format!(
                "{s:?} is not a single bare address like name@example.org"
            ));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("{s:?} has no @"));
        };
        if local.is_empty() {
            return Err(format!("{s:?} has nothing before the @"));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(format!(
                "{s:?}: the domain {domain:?} is not a full domain name like example.org"
            ));
        }
        let lower = s.to_lowercase();
        lower
            .parse::<lettre::Address>()
            .map_err(|e| format!("{s:?} is not a valid email address ({e})"))?;
        Ok(SubscriberEmail(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a subscription request leads to. The answer to the requester is the same in every case.
#[derive(Clone, Debug)]
pub enum Subscribed {
    /// New, pending or formerly unsubscribed: a confirmation for this subscriber was queued (the
    /// outbox row `outbox_id`) in the same transaction.
    ConfirmationQueued {
        subscriber: subscribers::Model,
        outbox_id: i64,
    },
    /// Already confirmed: nothing to send.
    AlreadyConfirmed,
    /// Pending, with a confirmation sent less than [`RESEND_AFTER`] ago: nothing to send (so
    /// the form cannot be used to flood somebody's mailbox).
    RecentlySent,
}

/// A pending address gets at most one confirmation email in this time.
pub const RESEND_AFTER: chrono::Duration = chrono::Duration::minutes(10);

async fn find(db: &impl ConnectionTrait, email: &str) -> Result<Option<subscribers::Model>, DbErr> {
    subscribers::Entity::find()
        .filter(subscribers::Column::Email.eq(email))
        .one(db)
        .await
}

/// Inserts the address as `pending` unless it exists (concurrent requests agree through the
/// unique index), and returns its row.
async fn insert_or_get(
    db: &impl ConnectionTrait,
    email: &SubscriberEmail,
    status: SubscriberStatus,
    now: DateTime<Utc>,
) -> Result<(subscribers::Model, bool), EmailError> {
    use subscribers::Column as S;
    let confirmed_at: Option<DateTime<Utc>> = (status == CONFIRMED).then_some(now);
    let insert = Query::insert()
        .into_table(subscribers::Entity)
        .columns([
            S::Email,
            S::Status,
            S::CreatedAt,
            S::ConfirmedAt,
            S::UpdatedAt,
        ])
        .values_panic([
            email.as_str().into(),
            status.into(),
            now.into(),
            confirmed_at.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::column(S::Email).do_nothing().to_owned())
        .to_owned();
    let created = db.execute(&insert).await?.rows_affected() == 1;
    let row = find(db, email.as_str())
        .await?
        .ok_or_else(|| EmailError::SubscriberGone {
            email: email.to_string(),
        })?;
    Ok((row, created))
}

/// Queues a confirmation for `row` — just created as pending, pending, or unsubscribed and
/// subscribing again — unless it is pending and got one less than [`RESEND_AFTER`] ago. The
/// subscriber becomes pending and its `updated_at` (the clock of that rule) is set to `now` by
/// a conditional UPDATE, so of concurrent requests only one queues an email. Returns the
/// subscriber as it now is and the outbox row, or `None` when nothing was queued.
async fn restart_opt_in(
    txn: &impl ConnectionTrait,
    row: subscribers::Model,
    created: bool,
    now: DateTime<Utc>,
) -> Result<Option<(subscribers::Model, i64)>, EmailError> {
    use subscribers::Column as S;
    let row = if created {
        row
    } else {
        let due = Condition::any()
            .add(
                Condition::all()
                    .add(Expr::col(S::Status).eq(PENDING))
                    .add(Expr::col(S::UpdatedAt).lte(now - RESEND_AFTER)),
            )
            .add(Expr::col(S::Status).eq(UNSUBSCRIBED));
        let update = Query::update()
            .table(subscribers::Entity)
            .value(S::Status, PENDING)
            .value(S::UpdatedAt, now)
            .and_where(Expr::col(S::Id).eq(row.id))
            .cond_where(due)
            .to_owned();
        if txn.execute(&update).await?.rows_affected() == 0 {
            return Ok(None);
        }
        subscribers::Entity::find_by_id(row.id)
            .one(txn)
            .await?
            .ok_or(EmailError::SubscriberGone { email: row.email })?
    };
    let outbox_id = queue::queue_confirmation(txn, &row, now).await?;
    Ok(Some((row, outbox_id)))
}

/// `POST /subscribe`: starts (or restarts) double opt-in, queueing the confirmation email in the
/// same transaction.
pub async fn subscribe(
    db: &DatabaseConnection,
    email: &SubscriberEmail,
    now: DateTime<Utc>,
) -> Result<Subscribed, EmailError> {
    let txn = crate::db::begin_write(db).await?;
    let (row, created) = insert_or_get(&txn, email, PENDING, now).await?;
    let answer = if row.status == CONFIRMED {
        Subscribed::AlreadyConfirmed
    } else {
        match restart_opt_in(&txn, row, created, now).await? {
            Some((subscriber, outbox_id)) => Subscribed::ConfirmationQueued {
                subscriber,
                outbox_id,
            },
            None => Subscribed::RecentlySent,
        }
    };
    txn.commit().await?;
    Ok(answer)
}

/// Why a link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The subscriber was removed, or the link belongs to an earlier subscription.
    #[error("this link is no longer valid")]
    Gone,
    #[error(transparent)]
    Db(#[from] DbErr),
}

async fn subscriber_of(
    db: &impl ConnectionTrait,
    key: &EmailKey,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<subscribers::Model, LinkError> {
    let parsed = links::parse(token, purpose)?;
    let Some(row) = subscribers::Entity::find_by_id(parsed.subscriber_id)
        .one(db)
        .await?
    else {
        // The same answer as a wrong signature: a link must not tell which ids exist.
        return Err(TokenError::BadSignature.into());
    };
    links::verify(key, &parsed, &row.email, now.timestamp())?;
    Ok(row)
}

/// Checks a confirmation link without acting on it (`GET /confirm`: the page with the button,
/// since mail link scanners follow links): the subscriber, or why the link does not work.
pub async fn check_confirm(
    db: &impl ConnectionTrait,
    key: &EmailKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<subscribers::Model, LinkError> {
    let row = subscriber_of(db, key, token, Purpose::Confirm, now).await?;
    if row.status == UNSUBSCRIBED {
        return Err(LinkError::Gone);
    }
    Ok(row)
}

/// `POST /confirm?token=`: a pending subscriber becomes confirmed (again: idempotent).
pub async fn confirm(
    db: &impl ConnectionTrait,
    key: &EmailKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<subscribers::Model, LinkError> {
    let row = subscriber_of(db, key, token, Purpose::Confirm, now).await?;
    match row.status {
        SubscriberStatus::Confirmed => Ok(row),
        SubscriberStatus::Pending => {
            let mut active = row.into_active_model();
            active.status = Set(CONFIRMED);
            active.confirmed_at = Set(Some(now));
            active.updated_at = Set(now);
            Ok(active.update(db).await?)
        }
        // Unsubscribed after this link was sent: it must not subscribe them again.
        _ => Err(LinkError::Gone),
    }
}

/// `POST /unsubscribe?token=` (and the admin's removal): no further report is sent, including
/// ones already in the outbox.
pub async fn unsubscribe(
    db: &impl ConnectionTrait,
    key: &EmailKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<subscribers::Model, LinkError> {
    let row = subscriber_of(db, key, token, Purpose::Unsubscribe, now).await?;
    if row.status == UNSUBSCRIBED {
        return Ok(row);
    }
    let mut active = row.into_active_model();
    active.status = Set(UNSUBSCRIBED);
    active.unsubscribed_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// Checks an unsubscribe link without acting on it (the page with the button).
pub async fn check_unsubscribe(
    db: &impl ConnectionTrait,
    key: &EmailKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<subscribers::Model, LinkError> {
    subscriber_of(db, key, token, Purpose::Unsubscribe, now).await
}

pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<subscribers::Model>, DbErr> {
    subscribers::Entity::find()
        .order_by_asc(subscribers::Column::Id)
        .all(db)
        .await
}

/// What [`add`] did.
#[derive(Clone, Debug)]
pub struct Added {
    pub subscriber: subscribers::Model,
    pub created: bool,
    /// The outbox row of the confirmation queued with it: a pending subscriber that is new, or
    /// whose last confirmation was queued at least [`RESEND_AFTER`] ago.
    pub confirmation: Option<i64>,
}

/// Admin: adds an address as `pending` (with a confirmation queued in the same transaction) or
/// directly `confirmed`. An existing address keeps its row; `confirmed` confirms it, and an
/// unsubscribed one stays unsubscribed unless confirmed.
pub async fn add(
    db: &DatabaseConnection,
    email: &SubscriberEmail,
    confirmed: bool,
    now: DateTime<Utc>,
) -> Result<Added, EmailError> {
    let status = if confirmed { CONFIRMED } else { PENDING };
    let txn = crate::db::begin_write(db).await?;
    let (row, created) = insert_or_get(&txn, email, status, now).await?;
    let added = if confirmed && row.status != CONFIRMED {
        let mut active = row.into_active_model();
        active.status = Set(CONFIRMED);
        active.confirmed_at = Set(Some(now));
        active.updated_at = Set(now);
        Added {
            subscriber: active.update(&txn).await?,
            created,
            confirmation: None,
        }
    } else if row.status == PENDING {
        match restart_opt_in(&txn, row.clone(), created, now).await? {
            Some((subscriber, id)) => Added {
                subscriber,
                created,
                confirmation: Some(id),
            },
            None => Added {
                subscriber: row,
                created,
                confirmation: None,
            },
        }
    } else {
        Added {
            subscriber: row,
            created,
            confirmation: None,
        }
    };
    txn.commit().await?;
    Ok(added)
}

/// Admin: deletes the address (its sent reports stay in the outbox's history, which keeps the
/// address). False when unknown.
pub async fn remove(db: &impl ConnectionTrait, email: &SubscriberEmail) -> Result<bool, DbErr> {
    let result = subscribers::Entity::delete_many()
        .filter(subscribers::Column::Email.eq(email.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The confirmation email for a pending subscriber, its link signed at `now`. The outbox sends
/// it with the row's stable Message-ID.
pub fn confirmation_message(
    mailer: &Mailer,
    config: &crate::Config,
    key: &EmailKey,
    subscriber: &subscribers::Model,
    now: DateTime<Utc>,
    message_id: String,
) -> Result<Message, EmailError> {
    let token = links::confirm_token(key, subscriber.id, &subscriber.email, now.timestamp());
    let url = format!("{}/confirm?token={token}", config.public_url);
    let rendered = render::confirmation(&url, &config.public_url)?;
    let to: Mailbox = subscriber.email.parse()?;
    Ok(Message::builder()
        .from(mailer.from().clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))?)
}

#[cfg(test)]
mod tests {
    use super::SubscriberEmail;

    #[test]
    fn addresses_are_parsed_and_lower_cased() {
        assert_eq!(
            SubscriberEmail::parse(" Ada@Example.ORG ")
                .unwrap()
                .as_str(),
            "ada@example.org"
        );
        for (bad, says) in [
            ("", "empty"),
            ("ada", "has no @"),
            ("@example.org", "nothing before"),
            ("ada@localhost", "full domain name"),
            ("ada@example.org, eve@example.org", "spaces"),
            ("Ada <ada@example.org>", "spaces"),
            ("a<b>@example.org", "single bare address"),
            ("ada@exa mple.org", "spaces"),
        ] {
            let e = SubscriberEmail::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(SubscriberEmail::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
    }
}
