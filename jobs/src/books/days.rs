//! Stored days (README, "Stored books"): the busy seconds of every whole day that is over, per
//! (machine as stored, project, jobset), each step clipped to the day. Busy seconds are
//! additive, so the busy seconds of any window are the sum of its whole days' stored rows and
//! of its edge days (and of days not stored fresh) computed from the steps: a read costs
//! O(days), not O(steps). Cents are not additive: lines are still rounded once per (machine,
//! window part) from the summed busy seconds ([`super::ledger::window_lines`]). The rows do not
//! depend on the config (machines as stored, unpriced ones included), so they hold under any.
//!
//! Staleness, as for months: a write of steps bumps, in its own transaction, the generation of
//! every day its old and new spans overlap ([`super::stale::mark_spans`]); a day stored from an
//! older generation is stale and read from the steps until [`ensure_days`] stores it again.
use crate::books::steps::{steps_busy, BusyRow};
use crate::calendar::Span;
use buildfund_entity::build_steps;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Query};
use sea_orm::DeriveIden;
use sea_orm::{ConnectionTrait, DbErr, ExprTrait, TransactionSession, TransactionTrait};
use serde::Serialize;
use std::collections::BTreeMap;

/// Seconds in a day (UTC has no leap seconds here).
pub const DAY: i64 = 86_400;

#[derive(DeriveIden)]
pub(super) enum BookDays {
    Table,
    Day,
    Generation,
    Stored,
    ComputedAt,
}

#[derive(DeriveIden)]
enum BookDayBusy {
    Table,
    Day,
    Machine,
    Project,
    Jobset,
    BusySeconds,
}

/// 00:00 UTC of the day of `t`.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The whole days inside `span`: from its first midnight to its last. `None` when it holds
/// no whole day.
pub fn whole_days(span: Span) -> Option<Span> {
    let first = day_of(span.start.saturating_add(DAY - 1));
    let last = day_of(span.end);
    (first < last).then(|| Span::new(first, last))
}

/// The days of `days` (whole days) stored fresh, ascending.
async fn fresh_days(db: &impl ConnectionTrait, days: Span) -> Result<Vec<i64>, DbErr> {
    let q = Query::select()
        .column(BookDays::Day)
        .from(BookDays::Table)
        .and_where(Expr::col(BookDays::Day).gte(days.start))
        .and_where(Expr::col(BookDays::Day).lt(days.end))
        .and_where(Expr::col(BookDays::Stored).gte(Expr::col(BookDays::Generation)))
        .order_by(BookDays::Day, sea_orm::Order::Asc)
        .to_owned();
    db.query_all(&q)
        .await?
        .into_iter()
        .map(|row| row.try_get("", "day"))
        .collect()
}

/// The summed stored rows of the days in `days`.
async fn stored_busy(
    db: &impl ConnectionTrait,
    days: Span,
    machines: Option<&[&str]>,
) -> Result<Vec<BusyRow>, DbErr> {
    let mut q = Query::select();
    q.columns([
        BookDayBusy::Machine,
        BookDayBusy::Project,
        BookDayBusy::Jobset,
    ])
    .expr_as(
        Func::cast_as(
            Func::sum(Expr::col(BookDayBusy::BusySeconds)),
            Alias::new("BIGINT"),
        ),
        Alias::new("busy"),
    )
    .from(BookDayBusy::Table)
    .and_where(Expr::col(BookDayBusy::Day).gte(days.start))
    .and_where(Expr::col(BookDayBusy::Day).lt(days.end))
    .group_by_columns([
        BookDayBusy::Machine,
        BookDayBusy::Project,
        BookDayBusy::Jobset,
    ]);
    if let Some(names) = machines {
        q.and_where(Expr::col(BookDayBusy::Machine).is_in(names.iter().copied()));
    }
    db.query_all(&q)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get("", "machine")?,
                row.try_get("", "project")?,
                row.try_get("", "jobset")?,
                row.try_get("", "busy")?,
            ))
        })
        .collect()
}

/// The parts of `span` and where each is read from (`true`: stored days): runs of fresh
/// stored days, and between them (the edge days, days not stored fresh) spans of steps.
fn plan(span: Span, days: Option<Span>, fresh: &[i64]) -> Vec<(bool, Span)> {
    let mut parts: Vec<(bool, Span)> = Vec::new();
    let mut push = |stored: bool, part: Span| {
        if part.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some((s, last)) if *s == stored && last.end == part.start => last.end = part.end,
            _ => parts.push((stored, part)),
        }
    };
    let Some(days) = days else {
        push(false, span);
        return parts;
    };
    push(false, Span::new(span.start, days.start));
    let mut at = days.start;
    for &d in fresh {
        push(false, Span::new(at, d));
        push(true, Span::new(d, d + DAY));
        at = d + DAY;
    }
    push(false, Span::new(at, days.end));
    push(false, Span::new(days.end, span.end));
    parts
}

/// Busy seconds of `span` per (machine as stored, project, jobset), each step clipped to it,
/// restricted to `machines` when given: the fresh stored days inside it, the rest from the
/// steps. The same figures as [`steps_busy`] over the whole span.
pub async fn busy(
    db: &impl ConnectionTrait,
    span: Span,
    machines: Option<&[&str]>,
) -> Result<Vec<BusyRow>, DbErr> {
    if span.is_empty() {
        return Ok(Vec::new());
    }
    let days = whole_days(span);
    let fresh = match days {
        Some(d) => fresh_days(db, d).await?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for (stored, part) in plan(span, days, &fresh) {
        if stored {
            out.extend(stored_busy(db, part, machines).await?);
        } else {
            out.extend(steps_busy(db, part, machines).await?);
        }
    }
    Ok(out)
}

/// One day's row in `book_days`: `(generation, stored)`.
async fn day_row(db: &impl ConnectionTrait, day: i64) -> Result<Option<(i64, Option<i64>)>, DbErr> {
    let q = Query::select()
        .columns([BookDays::Generation, BookDays::Stored])
        .from(BookDays::Table)
        .and_where(Expr::col(BookDays::Day).eq(day))
        .to_owned();
    match db.query_one(&q).await? {
        Some(row) => Ok(Some((
            row.try_get("", "generation")?,
            row.try_get("", "stored")?,
        ))),
        None => Ok(None),
    }
}

/// Where the stored days stand at `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DaysStatus {
    /// The first day with a step, if any.
    pub first: Option<String>,
    /// Whole days from it to the last that is over.
    pub days: u64,
    pub stored: u64,
    /// Stale or missing days (at most 100 listed, oldest first).
    pub todo: Vec<String>,
    pub todo_count: u64,
}

/// The days that are over at `now` from the first step's day, and which of them are missing
/// or stale. Stale days before the first step (its steps moved later) count too.
async fn todo_days(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<(Option<i64>, u64, Vec<i64>), DbErr> {
    use build_steps::Column as C;
    let last = day_of(now.timestamp());
    let first_q = Query::select()
        .expr(Func::min(Expr::col(C::StartTs)))
        .from(build_steps::Entity)
        .to_owned();
    let first: Option<i64> = match db.query_one(&first_q).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => None,
    };
    let first = first.map(day_of);
    let q = Query::select()
        .columns([BookDays::Day, BookDays::Generation, BookDays::Stored])
        .from(BookDays::Table)
        .and_where(Expr::col(BookDays::Day).lt(last))
        .order_by(BookDays::Day, sea_orm::Order::Asc)
        .to_owned();
    let mut known: BTreeMap<i64, bool> = BTreeMap::new();
    for row in db.query_all(&q).await? {
        let generation: i64 = row.try_get("", "generation")?;
        let stored: Option<i64> = row.try_get("", "stored")?;
        known.insert(
            row.try_get("", "day")?,
            stored.is_some_and(|s| s >= generation),
        );
    }
    let mut todo: Vec<i64> = known
        .iter()
        .filter(|(d, fresh)| !**fresh && first.is_none_or(|f| **d < f))
        .map(|(d, _)| *d)
        .collect();
    let mut whole = 0;
    if let Some(f) = first {
        let mut d = f;
        while d < last {
            whole += 1;
            if !known.get(&d).copied().unwrap_or(false) {
                todo.push(d);
            }
            d += DAY;
        }
    }
    Ok((first, whole, todo))
}

/// `buildfund books status`: the stored days.
pub async fn days_status(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<DaysStatus, DbErr> {
    let (first, days, todo) = todo_days(db, now).await?;
    let name = |d: i64| crate::calendar::from_unix(d).format("%Y-%m-%d").to_string();
    Ok(DaysStatus {
        first: first.map(name),
        days,
        stored: days.saturating_sub(
            todo.iter()
                .filter(|d| first.is_some_and(|f| **d >= f))
                .count() as u64,
        ),
        todo_count: todo.len() as u64,
        todo: todo.into_iter().take(100).map(name).collect(),
    })
}

/// Computes and stores every day that is over at `now` and missing or stale, oldest first;
/// with `force_from`, every day from it on too, whatever is stored. Returns how many days were
/// stored.
pub async fn ensure_days<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
    force_from: Option<i64>,
) -> Result<u64, DbErr> {
    let (first, _, mut todo) = todo_days(db, now).await?;
    if let (Some(from), Some(first)) = (force_from, first) {
        let last = day_of(now.timestamp());
        todo.retain(|d| *d < from);
        let mut d = std::cmp::max(day_of(from), first);
        while d < last {
            todo.push(d);
            d += DAY;
        }
    }
    let mut stored = 0;
    for day in todo {
        let force = force_from.is_some_and(|f| day >= f);
        if store_day(db, day, force).await? {
            stored += 1;
        }
    }
    Ok(stored)
}

/// Computes one day from the steps and stores it; `false` when it was stored from its
/// generation meanwhile (by another instance).
async fn store_day<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    day: i64,
    force: bool,
) -> Result<bool, DbErr> {
    // The generation first, then the data: a write committed in between leaves the day stale
    // rather than wrongly fresh.
    let generation = day_row(db, day).await?.map_or(0, |(g, _)| g);
    let rows = steps_busy(db, Span::new(day, day + DAY), None).await?;
    let txn = crate::db::begin_write(db).await?;
    crate::db::take_lock(&txn, "books").await?;
    if let Some((_, Some(stored))) = day_row(&txn, day).await? {
        if !force && stored >= generation {
            txn.rollback().await?;
            return Ok(false);
        }
    }
    let delete = Query::delete()
        .from_table(BookDayBusy::Table)
        .and_where(Expr::col(BookDayBusy::Day).eq(day))
        .to_owned();
    txn.execute(&delete).await?;
    for chunk in rows.chunks(1000) {
        let mut insert = Query::insert()
            .into_table(BookDayBusy::Table)
            .columns([
                BookDayBusy::Day,
                BookDayBusy::Machine,
                BookDayBusy::Project,
                BookDayBusy::Jobset,
                BookDayBusy::BusySeconds,
            ])
            .to_owned();
        for (machine, project, jobset, seconds) in chunk {
            insert.values_panic([
                Expr::val(day),
                Expr::val(machine.as_str()),
                Expr::val(project.as_str()),
                Expr::val(jobset.as_str()),
                Expr::val(*seconds),
            ]);
        }
        txn.execute(&insert).await?;
    }
    let upsert = Query::insert()
        .into_table(BookDays::Table)
        .columns([
            BookDays::Day,
            BookDays::Generation,
            BookDays::Stored,
            BookDays::ComputedAt,
        ])
        .values_panic([
            Expr::val(day),
            Expr::val(generation),
            Expr::val(generation),
            Expr::val(Utc::now()),
        ])
        .on_conflict(
            OnConflict::column(BookDays::Day)
                .update_columns([BookDays::Stored, BookDays::ComputedAt])
                .to_owned(),
        )
        .to_owned();
    txn.execute(&upsert).await?;
    txn.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_read_as_edges_stored_runs_and_gaps() {
        let d = |k: i64| k * DAY;
        // Whole days 1..4 of [0.5, 4.5); days 1 and 2 stored, 3 not.
        let span = Span::new(d(0) + 100, d(4) + 100);
        assert_eq!(whole_days(span), Some(Span::new(d(1), d(4))));
        let parts = plan(span, whole_days(span), &[d(1), d(2)]);
        assert_eq!(
            parts,
            vec![
                (false, Span::new(d(0) + 100, d(1))),
                (true, Span::new(d(1), d(3))),
                (false, Span::new(d(3), d(4) + 100)),
            ]
        );
        // Nothing stored: one span of steps; less than a day: no whole day.
        assert_eq!(plan(span, whole_days(span), &[]), vec![(false, span)]);
        assert_eq!(whole_days(Span::new(d(2) + 1, d(3) - 1)), None);
        assert_eq!(
            whole_days(Span::new(d(2), d(3))),
            Some(Span::new(d(2), d(3)))
        );
        // Every day stored and aligned edges: stored days only.
        let aligned = Span::new(d(1), d(3));
        assert_eq!(
            plan(aligned, whole_days(aligned), &[d(1), d(2)]),
            vec![(true, aligned)]
        );
    }
}
