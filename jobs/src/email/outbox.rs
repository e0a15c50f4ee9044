//! The outbox: every email buildfund sends is a row, created atomically with what it is for,
//! then drained over at most two kept SMTP connections at a bounded rate. Two kinds: `report` (one
//! row per (month, subscriber), see [`enqueue`]) and `confirm` (a subscription's confirmation,
//! queued by [`queue_confirmation`] in the transaction that makes the subscriber pending).
//! States:
//!
//! ```text
//! pending ──claim──▶ sending ──250──▶ sent
//!    ▲                  │ ├──5xx──▶ failed      (permanent, or MAX_ATTEMPTS transient failures)
//!    │                  │ └──4xx / no connection──▶ retry (next_attempt_at = now + backoff)
//!    │                  └── lease expired (the sender died) ──▶ claimable again
//! retry ──claim──▶ sending …          (a subscriber no longer confirmed — for a confirmation:
//!                                      no longer pending — ──▶ skipped)
//! ```
//!
//! Exactly once: the unique (month, subscriber_id) index makes creating rows idempotent (a
//! confirmation's `month` is the instant it was requested); rows are claimed in batches by one
//! conditional UPDATE (only one sender wins each row) and each is marked
//! `sent` with the server's reply and the Message-ID right after the server accepted it, before
//! the next message is handed over (a commit that outlives the process at once, see
//! [`RelaxedWriter`]; the batch's last one is durable). The one window left is a crash between
//! the server's acceptance and that UPDATE: the row is sent again after its lease, with the same
//! Message-ID (`<report.MONTH.ROW@domain>`, `<confirm.ROW@domain>`), which receivers use to
//! drop the duplicate (README, "Monthly email"). A power loss can also lose the records of the
//! batch in progress made since its last durable commit.
use super::links;
use super::queue::*;
use super::render;
use super::smtp::{Opened, Outgoing, SendError};
use super::subscriptions::{self, CONFIRMED};
use super::{EmailError, EmailKey, Mailer};
use crate::calendar::Month;
use crate::clock::Clock;
use crate::config::Secrets;
use crate::db::RelaxedWriter;
use crate::report::view::{report_view, ReportView};
use crate::report::{month_report, MonthReport};
use crate::Config;
use buildfund_entity::email_outbox::{OutboxKind, OutboxStatus};
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
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Creates the month's rows: one per confirmed subscriber, in one statement
/// (`INSERT … SELECT … ON CONFLICT (month, subscriber_id) DO NOTHING`) inside a transaction.
/// Running it again adds only subscribers confirmed since. Returns the rows created.
pub async fn enqueue(
    db: &DatabaseConnection,
    month: Month,
    now: DateTime<Utc>,
) -> Result<u64, EmailError> {
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
        .expr(Expr::val(REPORT))
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
            O::Kind,
        ])
        .select_from(select)
        .map_err(EmailError::OutboxInsert)?
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
#[derive(Clone, Debug)]
pub struct DrainOptions {
    /// Retries due within this much time of the run's start are waited for; later ones are
    /// left to the next run.
    pub wait_for_retries: Duration,
    /// Called with the figures so far while messages go out (the CLI prints a progress line):
    /// after the first message, then at most once a second, never when nothing changed.
    pub progress: Option<fn(&DrainReport)>,
    /// Only rows of this kind ([`REPORT`], [`CONFIRM`]); every kind when `None`.
    pub kind: Option<OutboxKind>,
    /// What "now" is: the instants rows are claimed, sent and retried at. A manual clock is
    /// not waited on: a wait for a retry moves it to the retry's instant.
    pub clock: Clock,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            wait_for_retries: Duration::from_secs(60),
            progress: None,
            kind: None,
            clock: Clock::system(),
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

/// The most rows one claim takes. A batch is also at most a minute of sending at
/// `rate_per_second`, well inside the [`LEASE`] its rows are claimed for.
pub const BATCH: u64 = 100;

/// A row this sender claimed, and what it was before (to give it back unsent).
struct Claimed {
    row: email_outbox::Model,
    was: (OutboxStatus, DateTime<Utc>),
}

/// Takes up to `limit` due rows (pending, retry, or `sending` rows whose lease expired) of
/// `kind` (any kind when `None`), in id order, for this sender: one transaction (one durable
/// commit) of a read and one conditional UPDATE (see [`take`]).
async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    kind: Option<OutboxKind>,
    limit: u64,
) -> Result<Vec<Claimed>, DbErr> {
    use email_outbox::Column as O;
    for _ in 0..10 {
        let txn = crate::db::begin_write(db).await?;
        let mut due = email_outbox::Entity::find()
            .filter(O::Status.is_in([PENDING, RETRY, SENDING]))
            .filter(O::NextAttemptAt.lte(now));
        if let Some(kind) = kind {
            due = due.filter(O::Kind.eq(kind));
        }
        let rows = due.order_by_asc(O::Id).limit(limit).all(&txn).await?;
        if rows.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        let claimed = take(&txn, rows, now).await?;
        txn.commit().await?;
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        // Another sender took every one of them first: look again.
    }
    Ok(Vec::new())
}

/// Claims `rows` as read, in one statement: each only while it is still in the state and at the
/// attempt count it was read with, so of two senders that read the same row only one takes it
/// (the other's UPDATE no longer matches it). Answers the rows taken, in the order given.
async fn take(
    db: &impl ConnectionTrait,
    rows: Vec<email_outbox::Model>,
    now: DateTime<Utc>,
) -> Result<Vec<Claimed>, DbErr> {
    use email_outbox::Column as O;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let lease_until = now + LEASE;
    let as_read = rows
        .iter()
        .map(|r| (r.id, r.status.as_str().to_string(), r.attempts));
    let update = Query::update()
        .table(email_outbox::Entity)
        .value(O::Status, SENDING)
        .value(O::Attempts, Expr::col(O::Attempts).add(1))
        .value(O::NextAttemptAt, lease_until)
        .and_where(
            Expr::tuple([
                Expr::col(O::Id),
                Expr::col(O::Status),
                Expr::col(O::Attempts),
            ])
            .in_tuples(as_read),
        )
        .returning_col(O::Id)
        .to_owned();
    let mut taken = std::collections::HashSet::with_capacity(rows.len());
    for r in db.query_all(&update).await? {
        taken.insert(r.try_get::<i64>("", "id")?);
    }
    Ok(rows
        .into_iter()
        .filter(|row| taken.contains(&row.id))
        .map(|row| Claimed {
            was: (row.status, row.next_attempt_at),
            row: email_outbox::Model {
                status: SENDING,
                attempts: row.attempts + 1,
                next_attempt_at: lease_until,
                ..row
            },
        })
        .collect())
}

/// Gives back the claimed rows this sender did not try (the relay went away mid-batch): each
/// as it was before the claim (state, attempt count, due time), while the claim is still this
/// sender's. One durable commit.
async fn release(db: &DatabaseConnection, rows: &[Claimed]) -> Result<(), DbErr> {
    use email_outbox::Column as O;
    if rows.is_empty() {
        return Ok(());
    }
    let txn = crate::db::begin_write(db).await?;
    for Claimed { row, was } in rows {
        let update = Query::update()
            .table(email_outbox::Entity)
            .value(O::Status, was.0)
            .value(O::Attempts, row.attempts - 1)
            .value(O::NextAttemptAt, was.1)
            .and_where(Expr::col(O::Id).eq(row.id))
            .and_where(Expr::col(O::Status).eq(SENDING))
            .and_where(Expr::col(O::Attempts).eq(row.attempts))
            .to_owned();
        txn.execute(&update).await?;
    }
    txn.commit().await
}

/// Where a row's outcome is written: `Durable`, an ordinary commit (flushed to disk before it
/// returns), or `Relaxed` (see [`RelaxedWriter`]: it outlives this process at once, the disk at
/// the next durable commit).
#[derive(Clone, Copy)]
enum Record<'a> {
    Durable(&'a DatabaseConnection),
    Relaxed(&'a RelaxedWriter),
}

/// Ends this sender's claim of `row`: only while the claim is still its own (status `sending`
/// with the attempt count it claimed at). A sender that stalled past its lease, and whose row
/// another sender has claimed since, changes nothing (and says so).
async fn finish(
    record: Record<'_>,
    row: &email_outbox::Model,
    status: OutboxStatus,
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
    let changed = match record {
        Record::Durable(db) => db.execute(&update).await?.rows_affected(),
        Record::Relaxed(writer) => writer.execute(&update).await?,
    };
    if changed == 0 {
        tracing::warn!(
            outbox = row.id,
            attempts = row.attempts,
            status = %status,
            "the claim on this outbox row had expired and another sender holds it; not recorded"
        );
    }
    Ok(())
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
) -> Result<Message, EmailError> {
    let view = report_view(report, &[], &[]);
    report_message_of(mailer, config, &view, to, unsubscribe, message_id)
}

/// [`report_message`] from the report's view model, which a sender builds once per month.
pub fn report_message_of(
    mailer: &Mailer,
    config: &Config,
    view: &ReportView,
    to: &str,
    unsubscribe: &str,
    message_id: String,
) -> Result<Message, EmailError> {
    let rendered = render::report(view, &config.public_url, unsubscribe)?;
    report_message_rendered(mailer, rendered, to, unsubscribe, message_id)
}

/// [`report_message_of`] from the parts already rendered for this subscriber (by
/// [`render::ReportParts::fill`], the same bytes).
pub fn report_message_rendered(
    mailer: &Mailer,
    rendered: render::Rendered,
    to: &str,
    unsubscribe: &str,
    message_id: String,
) -> Result<Message, EmailError> {
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

/// What became of one claimed row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The server accepted it.
    Sent,
    /// Refused for good (a 5xx, or a message that cannot be built): the reason.
    Failed(String),
    /// Given up after [`MAX_ATTEMPTS`] transient failures: the last one.
    GaveUp(String),
    /// Its subscriber no longer wants it (a report for someone no longer confirmed, a
    /// confirmation for someone no longer pending).
    Skipped,
    /// A transient failure: tried again at `at`. `connection` when the server could not be
    /// talked to at all.
    Retry {
        error: String,
        at: DateTime<Utc>,
        connection: bool,
    },
    /// The row was not there to take: already sent or given up, held by another sender, or
    /// waiting for its retry.
    NotDue,
}

/// What one sender keeps between rows: the view of each month's report it sent (computed
/// once), the subscribers of its current batch, and where it records outcomes.
struct Sender<'a> {
    db: &'a DatabaseConnection,
    config: &'a Config,
    mailer: &'a Mailer,
    key: &'a EmailKey,
    clock: &'a Clock,
    months: HashMap<String, MonthLayout>,
    subscribers: HashMap<i64, subscribers::Model>,
    /// Where the outcomes of all but a batch's last row are written (none: every one durable).
    relaxed: Option<RelaxedWriter>,
}

/// A month's report as a sender lays it out once: the view, and both parts rendered around
/// the unsubscribe link (`None`: rendered whole for each subscriber, see
/// [`render::ReportParts::new`]).
struct MonthLayout {
    view: ReportView,
    parts: Option<render::ReportParts>,
}

/// A claimed row's message formatted for the wire (and its Message-ID), or why there is none.
enum Prepared {
    Message(Outgoing, String),
    Unsent(Unsent),
}

/// A claimed row ready to go: its transaction opened on the relay (or the failure to open it)
/// with its Message-ID, or why it is not sent.
enum Ready<'m> {
    Opened(Result<Opened<'m>, SendError>, String),
    Unsent(Unsent),
}

enum Unsent {
    /// Its subscriber no longer wants it.
    Skip,
    /// The message cannot be built: why.
    Broken(String),
}

impl<'a> Sender<'a> {
    fn new(
        db: &'a DatabaseConnection,
        config: &'a Config,
        mailer: &'a Mailer,
        key: &'a EmailKey,
        clock: &'a Clock,
        relaxed: Option<RelaxedWriter>,
    ) -> Sender<'a> {
        Sender {
            db,
            config,
            mailer,
            key,
            clock,
            months: HashMap::new(),
            subscribers: HashMap::new(),
            relaxed,
        }
    }

    /// Reads the subscribers of `rows` (one query), for [`Sender::prepare`].
    async fn load_subscribers(&mut self, rows: &[Claimed]) -> Result<(), DbErr> {
        let ids: Vec<i64> = rows.iter().map(|c| c.row.subscriber_id).collect();
        self.subscribers = subscribers::Entity::find()
            .filter(subscribers::Column::Id.is_in(ids))
            .all(self.db)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        Ok(())
    }

    /// Where to write an outcome: durably for a batch's last row (which also makes the relaxed
    /// records before it durable), else relaxed.
    fn record(&self, durable: bool) -> Record<'_> {
        match &self.relaxed {
            Some(writer) if !durable => Record::Relaxed(writer),
            _ => Record::Durable(self.db),
        }
    }

    /// Computes the report (and its view) of each month of `rows` not seen yet, once per run.
    async fn load_months(&mut self, rows: &[Claimed]) -> Result<(), EmailError> {
        for Claimed { row, .. } in rows {
            let wanted = self
                .subscribers
                .get(&row.subscriber_id)
                .is_some_and(|s| s.status == CONFIRMED);
            if row.kind == CONFIRM || !wanted || self.months.contains_key(&row.month) {
                continue;
            }
            let month =
                Month::parse(&row.month).map_err(|why| EmailError::BadMonth { id: row.id, why })?;
            let report = month_report(self.db, self.config, month, self.clock.now()).await?;
            let view = report_view(&report, &[], &[]);
            // A failure to render shows on each message (built whole), as before.
            let parts = render::ReportParts::new(&view, &self.config.public_url)
                .ok()
                .flatten();
            self.months
                .insert(row.month.clone(), MonthLayout { view, parts });
        }
        Ok(())
    }

    /// Builds and formats the row's message, unless its subscriber (as read with its batch) no
    /// longer wants it. The months of the batch are loaded first ([`Sender::load_months`]).
    fn build(&self, row: &email_outbox::Model, now: DateTime<Utc>) -> Prepared {
        let wanted = if row.kind == CONFIRM {
            subscriptions::PENDING
        } else {
            CONFIRMED
        };
        let Some(subscriber) = self
            .subscribers
            .get(&row.subscriber_id)
            .filter(|s| s.status == wanted)
        else {
            return Prepared::Unsent(Unsent::Skip);
        };
        let id = message_id(row, &self.mailer.domain);
        let message = if row.kind == CONFIRM {
            // The link is signed now, so it works for its whole lifetime from the moment it
            // goes out, however long the relay kept refusing it.
            subscriptions::confirmation_message(
                self.mailer,
                self.config,
                self.key,
                subscriber,
                now,
                id.clone(),
            )
        } else {
            let Some(layout) = self.months.get(&row.month) else {
                return Prepared::Unsent(Unsent::Broken(format!(
                    "no report of {} was computed",
                    row.month
                )));
            };
            let unsubscribe =
                unsubscribe_url(self.config, self.key, subscriber.id, &subscriber.email);
            match &layout.parts {
                Some(parts) => {
                    parts
                        .fill(&unsubscribe)
                        .map_err(EmailError::from)
                        .and_then(|rendered| {
                            report_message_rendered(
                                self.mailer,
                                rendered,
                                &row.email,
                                &unsubscribe,
                                id.clone(),
                            )
                        })
                }
                None => report_message_of(
                    self.mailer,
                    self.config,
                    &layout.view,
                    &row.email,
                    &unsubscribe,
                    id.clone(),
                ),
            }
        };
        match message {
            Ok(m) => Prepared::Message(m.into(), id),
            Err(e) => Prepared::Unsent(Unsent::Broken(format!("cannot build the message: {e:#}"))),
        }
    }

    /// Records a row that is not sent.
    async fn drop_row(
        &self,
        row: &email_outbox::Model,
        why: Unsent,
        durable: bool,
    ) -> Result<Delivery, EmailError> {
        let record = self.record(durable);
        match why {
            Unsent::Skip => {
                finish(record, row, SKIPPED, vec![]).await?;
                Ok(Delivery::Skipped)
            }
            Unsent::Broken(error) => {
                finish(
                    record,
                    row,
                    FAILED,
                    vec![(email_outbox::Column::LastError, error.clone().into())],
                )
                .await?;
                Ok(Delivery::Failed(error))
            }
        }
    }

    /// Records what the relay said of the row's message (`durable`: with a durable commit).
    async fn record_outcome(
        &self,
        row: &email_outbox::Model,
        sent: Result<super::smtp::Accepted, SendError>,
        id: String,
        durable: bool,
    ) -> Result<Delivery, EmailError> {
        let record = self.record(durable);
        match sent {
            Ok(accepted) => {
                finish(
                    record,
                    row,
                    SENT,
                    vec![
                        (email_outbox::Column::SentAt, self.clock.now().into()),
                        (email_outbox::Column::MessageId, id.into()),
                        (email_outbox::Column::SmtpResponse, accepted.response.into()),
                        (
                            email_outbox::Column::LastError,
                            Option::<String>::None.into(),
                        ),
                    ],
                )
                .await?;
                Ok(Delivery::Sent)
            }
            Err(SendError::Permanent { message }) => {
                tracing::warn!(outbox = row.id, kind = %row.kind, month = %row.month, error = %message, "email refused permanently");
                finish(
                    record,
                    row,
                    FAILED,
                    vec![(email_outbox::Column::LastError, message.clone().into())],
                )
                .await?;
                Ok(Delivery::Failed(message))
            }
            Err(SendError::Transient {
                message,
                connection,
            }) => {
                if row.attempts >= MAX_ATTEMPTS {
                    tracing::warn!(outbox = row.id, kind = %row.kind, attempts = row.attempts, error = %message, "email given up");
                    let error = format!("gave up after {} attempts: {message}", row.attempts);
                    finish(
                        record,
                        row,
                        FAILED,
                        vec![(email_outbox::Column::LastError, error.clone().into())],
                    )
                    .await?;
                    return Ok(Delivery::GaveUp(error));
                }
                let next = self.clock.now()
                    + ChronoDuration::from_std(backoff(row.attempts))
                        .unwrap_or(ChronoDuration::hours(1));
                tracing::info!(outbox = row.id, kind = %row.kind, attempts = row.attempts, retry_at = %next, error = %message, "email will be retried");
                finish(
                    record,
                    row,
                    RETRY,
                    vec![
                        (email_outbox::Column::NextAttemptAt, next.into()),
                        (email_outbox::Column::LastError, message.clone().into()),
                    ],
                )
                .await?;
                Ok(Delivery::Retry {
                    error: message,
                    at: next,
                    connection,
                })
            }
        }
    }

    /// The row's message built and formatted, and its transaction opened on the relay (after
    /// `pace` allows one more message), or why there is none.
    async fn ready(&self, row: &email_outbox::Model, pace: Option<&mut Pace>) -> Ready<'a> {
        match self.build(row, self.clock.now()) {
            Prepared::Message(message, id) => {
                if let Some(pace) = pace {
                    pace.wait().await;
                }
                let span = tracing::info_span!("email_open", outbox = row.id, kind = %row.kind, attempt = row.attempts);
                Ready::Opened(self.mailer.open(message).instrument(span).await, id)
            }
            Prepared::Unsent(why) => Ready::Unsent(why),
        }
    }

    /// Sends (or drops) the batch `rows`, one message at a time after `pace` allows one, each
    /// outcome recorded before the next message's content is handed over: relaxed, but the last
    /// one durable. While one message's content goes and its outcome is recorded, the next
    /// message is built and its transaction opened on the relay over another connection
    /// (`MAIL FROM`, `RCPT TO`, `DATA`), but its content and final dot go only once the record
    /// is in: a relay delivers nothing of a transaction without its dot, so the message in
    /// flight is still the only one a crash can leave unrecorded. Stops at a failure to reach
    /// the relay and answers it with the rows not tried.
    async fn deliver(
        &self,
        rows: &[Claimed],
        mut pace: Option<&mut Pace>,
        mut counted: impl FnMut(&Delivery),
    ) -> Result<Option<(DateTime<Utc>, usize)>, EmailError> {
        let mut next: Option<Ready<'a>> = None;
        for (i, Claimed { row, .. }) in rows.iter().enumerate() {
            let current = match next.take() {
                Some(ready) => ready,
                None => self.ready(row, pace.as_deref_mut()).await,
            };
            let last = i + 1 == rows.len();
            let open_next = async {
                match rows.get(i + 1) {
                    Some(Claimed { row: r, .. }) => Some(self.ready(r, pace.as_deref_mut()).await),
                    None => None,
                }
            };
            let span = tracing::info_span!("email_send", outbox = row.id, kind = %row.kind, attempt = row.attempts);
            let this = async {
                match current {
                    Ready::Opened(opened, id) => {
                        let sent = match opened {
                            Ok(opened) => opened.finish().instrument(span.clone()).await,
                            Err(e) => Err(e),
                        };
                        if sent.is_ok() {
                            crate::pause_points::reached("email.handed_off").await;
                        }
                        self.record_outcome(row, sent, id, last)
                            .instrument(span)
                            .await
                    }
                    Ready::Unsent(why) => self.drop_row(row, why, last).await,
                }
            };
            // Both at once; but once this message found the relay unreachable, the next one's
            // opening (perhaps a connection attempt waiting for its timeout) is dropped.
            tokio::pin!(this, open_next);
            let (delivery, ready) = tokio::select! {
                biased;
                delivery = &mut this => {
                    let unreachable = matches!(
                        delivery,
                        Ok(Delivery::Retry { connection: true, .. })
                    );
                    let ready = if unreachable { None } else { open_next.await };
                    (delivery, ready)
                }
                ready = &mut open_next => (this.await, ready),
            };
            // (A record that fails drops the next message's open transaction: the relay
            // discards it.)
            let delivery = delivery?;
            next = ready;
            counted(&delivery);
            if let Delivery::Retry {
                at,
                connection: true,
                ..
            } = delivery
            {
                return Ok(Some((at, i + 1)));
            }
        }
        Ok(None)
    }
}

/// The rate limit: at most `rate` messages a second, in steps of at least a millisecond (the
/// timer's resolution): `ceil(rate / 1000)` messages, then a wait until that many messages'
/// share of the second has passed since the step began. One message a step up to 1,000 a
/// second; at 10,000 a second, 10 messages a millisecond (a wait of a tenth of a millisecond
/// per message would round up to a millisecond and bind the rate near 1,000).
struct Pace {
    interval: tokio::time::Interval,
    per_step: u32,
    left: u32,
}

impl Pace {
    fn new(rate: u32) -> Pace {
        let rate = std::cmp::max(rate, 1);
        let per_step = u32::div_ceil(rate, 1000);
        let period = Duration::from_secs_f64(f64::from(per_step) / f64::from(rate));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pace {
            interval,
            per_step,
            left: 0,
        }
    }

    /// Returns when one more message may go.
    async fn wait(&mut self) {
        if self.left == 0 {
            self.interval.tick().await;
            self.left = self.per_step;
        }
        self.left -= 1;
    }
}

/// The progress callback's schedule: the first change at once, then at most one a second.
struct Progress {
    call: Option<fn(&DrainReport)>,
    shown: (Option<std::time::Instant>, DrainReport),
}

impl Progress {
    fn show(&mut self, report: &DrainReport) {
        let Some(call) = self.call else {
            return;
        };
        let due = self
            .shown
            .0
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due && *report != self.shown.1 {
            call(report);
            self.shown = (Some(std::time::Instant::now()), report.clone());
        }
    }
}

/// Sends every due row (of `options.kind`, or all) over the mailer's one kept connection, at
/// most `rate_per_second`, in batches: up to [`BATCH`] rows (and at most a minute's worth at
/// the rate) are claimed in one transaction, then sent one at a time; each outcome is recorded
/// as soon as the server answered, with a relaxed commit ([`RelaxedWriter`]: it outlives a
/// crash of this process at once) except the batch's last, a durable commit that takes the
/// ones before it to disk too. A transient failure reschedules the row with exponential
/// backoff; a failure to reach the server at all also gives back the rest of the batch
/// untried and pauses the whole run until that retry, then claims one row at a time until the
/// server takes a message again (so an SMTP outage costs one attempt per backoff step, not one
/// per subscriber, and leaves the other rows untouched). Returns when nothing is due before
/// `options.wait_for_retries` from the start.
#[tracing::instrument(name = "outbox_drain", skip_all, fields(kind = ?options.kind))]
pub async fn drain(
    db: &DatabaseConnection,
    config: &Config,
    mailer: &Mailer,
    key: &EmailKey,
    options: DrainOptions,
) -> Result<DrainReport, EmailError> {
    let clock = &options.clock;
    let deadline = clock.now()
        + ChronoDuration::from_std(options.wait_for_retries).unwrap_or(ChronoDuration::zero());
    let mut report = DrainReport::default();
    let rate = std::cmp::max(mailer.rate_per_second, 1);
    let batch = std::cmp::min(BATCH, u64::from(rate) * 60);
    let mut pace = Pace::new(rate);
    let mut sender = Sender::new(
        db,
        config,
        mailer,
        key,
        clock,
        Some(RelaxedWriter::open(db)),
    );
    let mut progress = Progress {
        call: options.progress,
        shown: (None, DrainReport::default()),
    };
    let mut unreachable_before = false;
    let result = async {
        'run: loop {
            progress.show(&report);
            // While the relay is unreachable, one row at a time probes it; the others stay
            // untouched until it takes a message again.
            let limit = if unreachable_before { 1 } else { batch };
            let claimed = claim(db, clock.now(), options.kind, limit).await?;
            if claimed.is_empty() {
                // Nothing due now: wait for the next retry if it comes before the deadline.
                // Rows another sender holds are its business (if it dies, a later run takes
                // them over).
                let mut waiting = email_outbox::Entity::find()
                    .filter(email_outbox::Column::Status.is_in([PENDING, RETRY]));
                if let Some(kind) = options.kind {
                    waiting = waiting.filter(email_outbox::Column::Kind.eq(kind));
                }
                let next = waiting
                    .order_by_asc(email_outbox::Column::NextAttemptAt)
                    .one(db)
                    .await?
                    .map(|r| r.next_attempt_at);
                match next {
                    Some(t) if t <= deadline => {
                        sleep_until(clock, t).await;
                        continue;
                    }
                    _ => break,
                }
            }
            sender.load_subscribers(&claimed).await?;
            sender.load_months(&claimed).await?;
            let unreachable = sender
                .deliver(&claimed, Some(&mut pace), |delivery| {
                    match delivery {
                        Delivery::Sent => report.sent += 1,
                        Delivery::Failed(_) => report.failed += 1,
                        Delivery::GaveUp(_) => {
                            report.transient_failures += 1;
                            report.failed += 1;
                        }
                        Delivery::Skipped => report.skipped += 1,
                        Delivery::Retry { .. } => report.transient_failures += 1,
                        Delivery::NotDue => {}
                    }
                    progress.show(&report);
                })
                .await?;
            unreachable_before = unreachable.is_some();
            if let Some((at, tried)) = unreachable {
                // The server cannot be reached: every message would fail the same way now.
                // The rest of the batch goes back untried (durably, with the records before it).
                release(db, &claimed[tried..]).await?;
                if at > deadline {
                    break 'run;
                }
                sleep_until(clock, at).await;
            }
        }
        let mut waiting = email_outbox::Entity::find()
            .filter(email_outbox::Column::Status.is_in([PENDING, RETRY]));
        if let Some(kind) = options.kind {
            waiting = waiting.filter(email_outbox::Column::Kind.eq(kind));
        }
        report.waiting = waiting.count(db).await?;
        Ok::<_, EmailError>(())
    }
    .await;
    if let Some(writer) = sender.relaxed.take() {
        writer.close().await;
    }
    result.map(|()| report)
}

/// Tries the one row `id` now (the admin's `subscribers add`, which wants to say at once whether
/// the confirmation went out), with the same claim and the same records as [`drain`] (durable):
/// a transient failure leaves it to its retry, which the next drain sends.
#[tracing::instrument(name = "outbox_deliver", skip_all, fields(outbox = id))]
pub async fn deliver_now(
    db: &DatabaseConnection,
    config: &Config,
    mailer: &Mailer,
    key: &EmailKey,
    id: i64,
    clock: &Clock,
) -> Result<Delivery, EmailError> {
    let now = clock.now();
    let Some(row) = email_outbox::Entity::find_by_id(id)
        .filter(email_outbox::Column::Status.is_in([PENDING, RETRY, SENDING]))
        .filter(email_outbox::Column::NextAttemptAt.lte(now))
        .one(db)
        .await?
    else {
        return Ok(Delivery::NotDue);
    };
    let claimed = take(db, vec![row], now).await?;
    if claimed.is_empty() {
        return Ok(Delivery::NotDue);
    }
    let mut sender = Sender::new(db, config, mailer, key, clock, None);
    sender.load_subscribers(&claimed).await?;
    sender.load_months(&claimed).await?;
    let mut delivered = Delivery::NotDue;
    sender
        .deliver(&claimed, None, |d| delivered = d.clone())
        .await?;
    Ok(delivered)
}

/// An instance's sender of confirmation emails, so `POST /subscribe` answers at once and the
/// same way whatever the address: the handler queues the row and calls [`wake`]; one task per
/// instance then drains the due confirmations in the background. A confirmation the relay
/// does not take now stays queued for its retry, which `outbox_drain` sends.
///
/// [`wake`]: ConfirmationSender::wake
#[derive(Clone)]
pub struct ConfirmationSender {
    wake: Arc<tokio::sync::Notify>,
}

impl ConfirmationSender {
    /// Starts the task (on the current tokio runtime).
    pub fn spawn(
        db: DatabaseConnection,
        config: Arc<Config>,
        secrets: Arc<Secrets>,
        mailer: Mailer,
        clock: Clock,
    ) -> ConfirmationSender {
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = wake.clone();
        tokio::spawn(async move {
            let mut key: Option<EmailKey> = None;
            loop {
                // A wake while a drain runs is kept, so that drain is followed by another.
                woken.notified().await;
                let options = DrainOptions {
                    wait_for_retries: Duration::ZERO,
                    progress: None,
                    kind: Some(CONFIRM),
                    clock: clock.clone(),
                };
                let run = async {
                    if key.is_none() {
                        key = Some(EmailKey::load(&db, &secrets, clock.now()).await?);
                    }
                    let key = key.as_ref().expect("loaded above");
                    drain(&db, &config, &mailer, key, options).await
                };
                match run.await {
                    Ok(report) => tracing::debug!(%report, "confirmations drained"),
                    Err(e) => {
                        tracing::warn!(error = %e.chain(), "confirmations not sent now; outbox_drain retries them")
                    }
                }
            }
        });
        ConfirmationSender { wake }
    }

    /// Asks the task to send what is due (returns at once).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Waits until `t` on `clock`: the system clock is slept on; a manual one (a test's) is moved
/// to `t`, as if the wait had passed.
async fn sleep_until(clock: &Clock, t: DateTime<Utc>) {
    if clock.is_manual() {
        if t > clock.now() {
            clock.set(t);
        }
    } else if let Ok(d) = (t - clock.now()).to_std() {
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
        .filter(O::Kind.eq(REPORT))
        .filter(O::Month.eq(month.to_string()))
        .group_by(O::Status)
        .order_by_asc(O::Status)
        .into_tuple()
        .all(db)
        .await
}

/// `buildfund report send` and the `monthly_report` job: the month's rows, then a drain of the
/// reports (confirmations are `outbox_drain`'s and the instance's [`ConfirmationSender`]'s).
pub async fn send_month(
    db: &DatabaseConnection,
    config: &Config,
    secrets: &Secrets,
    month: Month,
    options: DrainOptions,
) -> Result<(u64, DrainReport), EmailError> {
    let smtp = config.smtp.as_ref().ok_or(EmailError::NoSmtp)?;
    let mailer = Mailer::new(smtp, secrets)?;
    let now = options.clock.now();
    let key = EmailKey::load(db, secrets, now).await?;
    let created = enqueue(db, month, now).await?;
    let options = DrainOptions {
        kind: Some(REPORT),
        ..options
    };
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
) -> Result<render::Rendered, EmailError> {
    let report = month_report(db, config, month, at).await?;
    Ok(render::report(
        &report_view(&report, &[], &[]),
        &config.public_url,
        &format!("{}/unsubscribe?token=PREVIEW", config.public_url),
    )?)
}
