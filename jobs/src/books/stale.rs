//! Stale marks: a write of build steps or donations marks, in its own transaction, every
//! month whose stored books it touches (`book_stale`, a generation per month), so
//! [`super::store`] recomputes exactly those months and the sums after them; a write of build
//! steps also marks every day it touches (`book_days`), so [`super::days`] recomputes exactly
//! those days.
use crate::books::days::{day_of, BookDays, DAY};
use crate::calendar::{from_unix, Month, Span};
use buildfund_entity::book_stale;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, ExprTrait};
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// Writes to months ending later than this after the write's clock cannot meet a stored month
/// (months are stored once over), so they leave no mark; the margin covers clock skew between
/// instances and transactions that stay open across a month's end.
const MARK_MARGIN_SECONDS: i64 = 86_400;

/// The months whose stored books a change of data over `span` reopens: the months it overlaps,
/// and a following month shorter than 30 days (its "cost of the last 30 days" reaches back).
/// Months ending more than a day after `now` are left out (none of them can be stored yet).
pub(crate) fn touched_months(span: Span, now: DateTime<Utc>) -> BTreeSet<Month> {
    let mut out = BTreeSet::new();
    let limit = now.timestamp().saturating_add(MARK_MARGIN_SECONDS);
    // A step before 1970 or after 9999 cannot be stored (ingest validation); clamp anyway.
    let lowest = Month::parse("1970-01").expect("valid").span().start;
    let start = std::cmp::max(span.start, lowest);
    let end = std::cmp::min(span.end, limit);
    if end <= start {
        // An instant (a donation) or an empty span: the month it falls in.
        if span.start >= lowest && span.start < limit {
            let m = Month::of(from_unix(span.start));
            insert_with_follower(&mut out, m, limit);
        }
        return out;
    }
    let mut m = Month::of(from_unix(start));
    while m.start().timestamp() < end {
        insert_with_follower(&mut out, m, limit);
        m = m.next();
    }
    out
}

fn insert_with_follower(out: &mut BTreeSet<Month>, m: Month, limit: i64) {
    if m.next().start().timestamp() <= limit {
        out.insert(m);
    }
    let next = m.next();
    if next.span().len() < 30 * 86_400 && next.next().start().timestamp() <= limit {
        out.insert(next);
    }
}

/// The days (their 00:00 UTC) whose stored busy seconds a change of steps over `span` reopens:
/// the days it overlaps and the rest of the last one's month (a stored day holds its month up
/// to it), leaving out those ending more than a day after `now` (none of them can be stored
/// yet). An empty span has no busy seconds and touches no day.
pub(crate) fn touched_days(span: Span, now: DateTime<Utc>) -> impl Iterator<Item = i64> {
    let limit = now.timestamp().saturating_add(MARK_MARGIN_SECONDS);
    let first = day_of(span.start);
    let end = if span.is_empty() {
        first
    } else {
        crate::calendar::month_of(span.end - 1).end
    };
    (0..)
        .map(move |k| first + k * DAY)
        .take_while(move |d| *d < end && d + DAY <= limit)
}

/// Marks the months and days the changed build-step spans touch, in the caller's transaction.
pub async fn mark_spans(
    db: &impl ConnectionTrait,
    spans: impl IntoIterator<Item = Span>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut months = BTreeSet::new();
    let mut days = BTreeSet::new();
    for s in spans {
        months.extend(touched_months(s, now));
        days.extend(touched_days(s, now));
    }
    mark_months(db, &months, now).await?;
    mark_days(db, &days).await
}

/// Marks the months of the changed donation dates, in the caller's transaction (donations
/// have no busy seconds: no day is touched).
pub(crate) async fn mark_instants(
    db: &impl ConnectionTrait,
    instants: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut months = BTreeSet::new();
    for t in instants {
        months.extend(touched_months(Span::new(t.timestamp(), t.timestamp()), now));
    }
    mark_months(db, &months, now).await
}

/// Bumps the generation of each day (ascending, after the months, so concurrent writers lock
/// rows in one order).
async fn mark_days(db: &impl ConnectionTrait, days: &BTreeSet<i64>) -> Result<(), DbErr> {
    let days: Vec<i64> = days.iter().copied().collect();
    for chunk in days.chunks(1000) {
        let mut insert = Query::insert()
            .into_table(BookDays::Table)
            .columns([BookDays::Day, BookDays::Generation])
            .on_conflict(
                OnConflict::column(BookDays::Day)
                    .value(
                        BookDays::Generation,
                        Expr::col((BookDays::Table, BookDays::Generation)).add(1),
                    )
                    .to_owned(),
            )
            .to_owned();
        for d in chunk {
            insert.values_panic([Expr::val(*d), Expr::val(1i64)]);
        }
        db.execute(&insert).await?;
    }
    if !days.is_empty() {
        WAKE.notify_one();
    }
    Ok(())
}

/// Bumps the generation of each month (ascending, so concurrent writers lock rows in one
/// order).
pub(crate) async fn mark_months(
    db: &impl ConnectionTrait,
    months: &BTreeSet<Month>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if months.is_empty() {
        return Ok(());
    }
    use book_stale::Column as S;
    let mut insert = Query::insert()
        .into_table(book_stale::Entity)
        .columns([S::Month, S::Generation, S::MarkedAt])
        .on_conflict(
            OnConflict::column(S::Month)
                .value(
                    S::Generation,
                    Expr::col((book_stale::Entity, S::Generation)).add(1),
                )
                .update_column(S::MarkedAt)
                .to_owned(),
        )
        .to_owned();
    for m in months {
        insert.values_panic([Expr::val(m.to_string()), Expr::val(1i64), Expr::val(now)]);
    }
    db.execute(&insert).await?;
    WAKE.notify_one();
    Ok(())
}

/// Woken by local writes, so the keeper recomputes soon after.
pub(super) static WAKE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);
