//! Stored days (README, "Stored books"): for every whole day that is over, the busy seconds
//! per (machine as stored, project, jobset) from the start of its month to the end of the day,
//! each step clipped, with the number of step pieces (a step counts once in each day it
//! overlaps). Busy seconds are additive, so the whole days `[a, b)` of a window inside a month
//! are the stored day before `b` minus the stored day before `a`, and only the window's edge
//! days (and days not stored fresh) are computed from the steps: a read costs two stored days
//! and two partial days, whatever the window's length or the ledger's. Cents are not additive:
//! lines are still rounded once per (machine, window part) from the summed busy seconds
//! ([`super::ledger::lines_from_steps`]). The rows do not depend on the config (machines as stored,
//! unpriced ones included), so they hold under any.
//!
//! Staleness, as for months: a write of steps bumps, in its own transaction, the generation of
//! every day its old and new spans overlap and of the days after them in their months, whose
//! sums hold them ([`super::stale::mark_spans`]); a day stored from an older generation is
//! stale, and reads take its part from the steps until [`ensure_days`] stores it again. A day
//! is stored only from the fresh day before it (or at its month's start).
use crate::books::steps::{busy_query, steps_busy, BusyRow};
use crate::calendar::{month_of, Span};
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

#[derive(Clone, Copy, DeriveIden)]
enum BookDayBusy {
    Table,
    Day,
    Machine,
    Project,
    Jobset,
    BusySeconds,
    Steps,
}

/// 00:00 UTC of the day of `t`.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The whole days inside `span`: from its first midnight to its last. `None` when it holds
/// no whole day.
pub(crate) fn whole_days(span: Span) -> Option<Span> {
    let first = day_of(span.start.saturating_add(DAY - 1));
    let last = day_of(span.end);
    (first < last).then(|| Span::new(first, last))
}

/// The days of `days` stored fresh, ascending.
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

/// The sum of the stale generations of the days `span` overlaps (a day without a row counts
/// 0). A write of steps bumps, in its transaction, the generation of every day it touches up
/// to its clock's day ([`super::stale::touched_days`]), and generations only grow, so the sum
/// grows with every write of a step that overlaps a span ending by the writer's now: equal
/// sums read before the data mean no such write came between (the key of a shared month to
/// date, [`super::shared`]).
pub(crate) async fn generations(db: &impl ConnectionTrait, span: Span) -> Result<i64, DbErr> {
    if span.is_empty() {
        return Ok(0);
    }
    let q = Query::select()
        .expr_as(
            Func::cast_as(
                Func::sum(Expr::col(BookDays::Generation)),
                Alias::new("BIGINT"),
            ),
            Alias::new("generations"),
        )
        .from(BookDays::Table)
        .and_where(Expr::col(BookDays::Day).gte(day_of(span.start)))
        .and_where(Expr::col(BookDays::Day).lt(span.end))
        .to_owned();
    let sum: Option<i64> = match db.query_one(&q).await? {
        Some(row) => row.try_get("", "generations")?,
        None => None,
    };
    Ok(sum.unwrap_or(0))
}

/// The rows of stored day `last` minus those of stored day `before` (when given): the busy
/// seconds of the days after `before` through `last`. Keys without busy time there are left
/// out.
async fn stored_difference(
    db: &impl ConnectionTrait,
    last: i64,
    before: Option<i64>,
    machines: Option<&[&str]>,
) -> Result<Vec<BusyRow>, DbErr> {
    let signed = |c: BookDayBusy| {
        let case = sea_orm::sea_query::CaseStatement::new()
            .case(Expr::col(BookDayBusy::Day).eq(last), Expr::col(c))
            .finally(Expr::val(0i64).sub(Expr::col(c)));
        Func::cast_as(Func::sum(Expr::expr(case)), Alias::new("BIGINT"))
    };
    let mut q = Query::select();
    q.columns([
        BookDayBusy::Machine,
        BookDayBusy::Project,
        BookDayBusy::Jobset,
    ])
    .expr_as(signed(BookDayBusy::BusySeconds), Alias::new("busy"))
    .expr_as(signed(BookDayBusy::Steps), Alias::new("steps"))
    .from(BookDayBusy::Table)
    .and_where(Expr::col(BookDayBusy::Day).is_in([last, before.unwrap_or(last)]))
    .group_by_columns([
        BookDayBusy::Machine,
        BookDayBusy::Project,
        BookDayBusy::Jobset,
    ]);
    if let Some(names) = machines {
        q.and_where(Expr::col(BookDayBusy::Machine).is_in(names.iter().copied()));
    }
    let mut out = Vec::new();
    for row in db.query_all(&q).await? {
        let busy: i64 = row.try_get("", "busy")?;
        // Only busy time counts: days stored before steps of no length were left out of the
        // steps' query may hold rows of them with 0 seconds.
        if busy > 0 {
            out.push((
                row.try_get("", "machine")?,
                row.try_get("", "project")?,
                row.try_get("", "jobset")?,
                busy,
                row.try_get("", "steps")?,
            ));
        }
    }
    Ok(out)
}

/// How a span inside one month is read: `Some((before, last))` when the whole days after
/// stored day `before` (none: from the month's start) through stored day `last` come from the
/// store, with the parts of the span before and after them from the steps.
fn plan(span: Span, month_start: i64, fresh: &[i64]) -> Option<(Option<i64>, i64)> {
    let days = whole_days(span)?;
    let before = (days.start > month_start).then(|| days.start - DAY);
    if before.is_some_and(|b| fresh.binary_search(&b).is_err()) {
        return None;
    }
    let last = fresh
        .iter()
        .rev()
        .find(|d| **d >= days.start && **d < days.end)?;
    Some((before, *last))
}

/// Busy seconds of `span` per (machine as stored, project, jobset), each step clipped to it,
/// with the number of steps, restricted to `machines` when given: per month part, the whole
/// days from two stored days and the rest from the steps. The same busy seconds as
/// [`steps_busy`] over the whole span (a key may come once per part).
pub async fn busy(
    db: &impl ConnectionTrait,
    span: Span,
    machines: Option<&[&str]>,
) -> Result<Vec<BusyRow>, DbErr> {
    let mut out = Vec::new();
    for part in crate::calendar::split_months(span) {
        let month = month_of(part.start);
        let fresh = match whole_days(part) {
            Some(d) => fresh_days(db, Span::new(d.start - DAY, d.end)).await?,
            None => Vec::new(),
        };
        match plan(part, month.start, &fresh) {
            Some((before, last)) => {
                // The whole days from the store, then the edges around them from the steps;
                // the rows in time order.
                let middle = stored_difference(db, last, before, machines).await?;
                let from = before.map_or(month.start, |b| b + DAY);
                let head = steps_busy(db, Span::new(part.start, from), machines).await?;
                let tail = steps_busy(db, Span::new(last + DAY, part.end), machines).await?;
                out.extend(head);
                out.extend(middle);
                out.extend(tail);
            }
            None => out.extend(steps_busy(db, part, machines).await?),
        }
    }
    Ok(out)
}

/// One day's row in `book_days`: `(generation, stored)`.
pub(crate) async fn day_row(
    db: &impl ConnectionTrait,
    day: i64,
) -> Result<Option<(i64, Option<i64>)>, DbErr> {
    Ok(day_rows(db, day, day).await?.remove(&day))
}

/// Where the stored days stand at `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DaysStatus {
    /// The first day of the first step's month, if any.
    pub first: Option<String>,
    /// Whole days from it to the last that is over.
    pub days: u64,
    pub stored: u64,
    /// Stale or missing days (at most 100 listed, oldest first).
    pub todo: Vec<String>,
    pub todo_count: u64,
}

/// The days that are over at `now` from the start of the first step's month, and which of
/// them are missing or stale. Stale days before the first step (its steps moved later) count too.
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
    // From the start of the first step's month: a day is stored from the day before it.
    let first = first.map(|t| month_of(t).start);
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
pub(crate) async fn days_status(
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
/// stored. The days go by runs: consecutive days of one month in one transaction and one
/// statement ([`run_insert`]), so a catch-up costs one pass over each month's steps rather than
/// one transaction per day.
pub(crate) async fn ensure_days<C: ConnectionTrait + TransactionTrait>(
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
    todo.sort_unstable();
    todo.dedup();
    // The runs of a month one after the other (a run starts from the day before it); on
    // PostgreSQL, two months at a time (each run locks its own month: two cores, two
    // connections) and a month's days in one run, where a commit costs a round trip and the
    // deferred checks of the rows' key; on SQLite one month at a time (it has one writer) and
    // a day a run, which measured faster there (its commits are local, and its running sum
    // over a month of keys costs more than a day's statement alone).
    let (at_once, longest) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => (2, 31),
        _ => (1, 1),
    };
    let mut months: Vec<Vec<&[i64]>> = Vec::new();
    for run in runs(&todo).flat_map(|r| r.chunks(longest)) {
        match months.last_mut() {
            Some(m) if month_of(m[0][0]).start == month_of(run[0]).start => m.push(run),
            _ => months.push(vec![run]),
        }
    }
    let mut stored = 0;
    for months in months.chunks(at_once) {
        let (x, y) = futures_util::future::try_join(
            store_runs(db, &months[0], force_from, now),
            store_runs(db, months.get(1).map_or(&[][..], |m| m), force_from, now),
        )
        .await?;
        stored += x + y;
    }
    Ok(stored)
}

/// Stores the runs of one month in order ([`store_run`]).
async fn store_runs<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    runs: &[&[i64]],
    force_from: Option<i64>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut stored = 0;
    for &run in runs {
        let force = force_from.is_some_and(|f| run[0] >= f);
        stored += store_run(db, run, force, now).await?;
    }
    Ok(stored)
}

/// `days` (ascending) cut into runs of consecutive days of one month.
fn runs(days: &[i64]) -> impl Iterator<Item = &[i64]> {
    days.chunk_by(|a, b| b - a == DAY && month_of(*a).start == month_of(*b).start)
}

/// `(generation, stored)` of the days `[first, last]` that have a row.
async fn day_rows(
    db: &impl ConnectionTrait,
    first: i64,
    last: i64,
) -> Result<BTreeMap<i64, (i64, Option<i64>)>, DbErr> {
    let q = Query::select()
        .columns([BookDays::Day, BookDays::Generation, BookDays::Stored])
        .from(BookDays::Table)
        .and_where(Expr::col(BookDays::Day).gte(first))
        .and_where(Expr::col(BookDays::Day).lte(last))
        .to_owned();
    let mut out = BTreeMap::new();
    for row in db.query_all(&q).await? {
        out.insert(
            row.try_get("", "day")?,
            (row.try_get("", "generation")?, row.try_get("", "stored")?),
        );
    }
    Ok(out)
}

/// Computes a run of consecutive days of one month (the stored day before it plus the busy
/// seconds of each of its days, summed day by day) and stores them in one transaction under
/// the month's lock of days (`days YYYY-MM` in `book_locks`). Returns how many days were
/// stored: 0 when every day of the run was stored from its generation meanwhile (by another
/// instance) and `force` is off, or when the day before the run is not stored fresh (it comes
/// first in [`ensure_days`]' order; a write that reopened it meanwhile reopened the run too).
async fn store_run<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    run: &[i64],
    force: bool,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
        return Ok(0);
    };
    // The generations first, then the data: a write committed in between leaves its days
    // stale rather than wrongly fresh.
    let generations = day_rows(db, first, last).await?;
    let generation = |d: i64| generations.get(&d).map_or(0, |(g, _)| *g);
    let txn = crate::db::begin_write(db).await?;
    // One writer of the month's days at a time across instances (the SQLite write lock does it
    // there); other months' days and the months' books are stored meanwhile.
    let month = crate::calendar::Month::of(crate::calendar::from_unix(first));
    crate::db::take_lock(&txn, &format!("days {month}")).await?;
    if !force {
        let current = day_rows(&txn, first, last).await?;
        let done = run.iter().all(|d| {
            current
                .get(d)
                .and_then(|(_, stored)| *stored)
                .is_some_and(|s| s >= generation(*d))
        });
        if done {
            txn.rollback().await?;
            return Ok(0);
        }
    }
    let before = (first > month_of(first).start).then_some(first - DAY);
    if let Some(before) = before {
        match day_row(&txn, before).await? {
            Some((g, Some(s))) if s >= g => {}
            _ => {
                txn.rollback().await?;
                return Ok(0);
            }
        }
    }
    let delete = Query::delete()
        .from_table(BookDayBusy::Table)
        .and_where(Expr::col(BookDayBusy::Day).gte(first))
        .and_where(Expr::col(BookDayBusy::Day).lte(last))
        .to_owned();
    txn.execute(&delete).await?;
    // The days' rows summed in the database: no row travels to this process and back.
    txn.execute_unprepared(&run_insert(txn.get_database_backend(), run, before))
        .await?;
    let mut upsert = Query::insert()
        .into_table(BookDays::Table)
        .columns([
            BookDays::Day,
            BookDays::Generation,
            BookDays::Stored,
            BookDays::ComputedAt,
        ])
        .on_conflict(
            OnConflict::column(BookDays::Day)
                .update_columns([BookDays::Stored, BookDays::ComputedAt])
                .to_owned(),
        )
        .to_owned();
    for &d in run {
        upsert.values_panic([
            Expr::val(d),
            Expr::val(generation(d)),
            Expr::val(generation(d)),
            Expr::val(now),
        ]);
    }
    txn.execute(&upsert).await?;
    txn.commit().await?;
    Ok(run.len() as u64)
}

/// `INSERT INTO book_day_busy … SELECT` of the rows of every day of `run` (consecutive days of
/// one month): per (machine, project, jobset), the rows of stored day `before` (none at the
/// month's start) plus the busy seconds of each day's steps ([`busy_query`], each step clipped to
/// its day) up to that day, a running sum in day order. A key has a row from the first day it
/// has steps (or from the run's first day when the day before holds it), as day by day.
/// The statement's values are day numbers and the bound's name, written into it.
fn run_insert(backend: sea_orm::DbBackend, run: &[i64], before: Option<i64>) -> String {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
    let sql = |q: &sea_orm::sea_query::SelectStatement| match backend {
        sea_orm::DbBackend::Postgres => q.to_string(PostgresQueryBuilder),
        _ => q.to_string(SqliteQueryBuilder),
    };
    let first = run[0];
    if run.len() == 1 {
        // One day (the keeper's daily work, every day on SQLite): the day before's rows plus
        // the day's, summed per key; no running sum to take.
        return one_day_insert(sql, first, before);
    }
    let mut parts: Vec<String> = run
        .iter()
        .map(|&d| {
            format!(
                "SELECT {d} AS day, b.machine, b.project, b.jobset, b.busy, b.steps FROM ({}) AS b",
                sql(&busy_query(Span::new(d, d + DAY), None))
            )
        })
        .collect();
    if let Some(before) = before {
        // The day before's sums enter on the run's first day.
        parts.push(format!(
            "SELECT {first} AS day, machine, project, jobset, busy_seconds AS busy, steps \
             FROM book_day_busy WHERE day = {before}"
        ));
    }
    let days: Vec<String> = run.iter().map(|d| format!("SELECT {d} AS day")).collect();
    let running = |c: &str| {
        format!(
            "CAST(SUM(COALESCE(p.{c}, 0)) OVER (PARTITION BY k.machine, k.project, k.jobset \
             ORDER BY d.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT)"
        )
    };
    format!(
        "WITH parts AS ({parts}), \
         summed AS (SELECT day, machine, project, jobset, SUM(busy) AS busy, SUM(steps) AS steps \
           FROM parts GROUP BY day, machine, project, jobset), \
         keys AS (SELECT DISTINCT machine, project, jobset FROM summed) \
         INSERT INTO book_day_busy (day, machine, project, jobset, busy_seconds, steps) \
         SELECT day, machine, project, jobset, busy, steps FROM (\
           SELECT d.day AS day, k.machine AS machine, k.project AS project, k.jobset AS jobset, \
             {busy} AS busy, {steps} AS steps \
           FROM ({days}) AS d CROSS JOIN keys AS k \
           LEFT JOIN summed AS p ON p.day = d.day AND p.machine = k.machine \
             AND p.project = k.project AND p.jobset = k.jobset\
         ) AS t WHERE steps > 0",
        parts = parts.join(" UNION ALL "),
        days = days.join(" UNION ALL "),
        busy = running("busy"),
        steps = running("steps"),
    )
}

/// [`run_insert`] of one day: the rows of stored day `before` (none at a month's start) plus
/// the busy seconds of the day's steps, per (machine, project, jobset).
fn one_day_insert(
    sql: impl Fn(&sea_orm::sea_query::SelectStatement) -> String,
    day: i64,
    before: Option<i64>,
) -> String {
    let mut parts = format!(
        "SELECT machine, project, jobset, busy, steps FROM ({}) AS b",
        sql(&busy_query(Span::new(day, day + DAY), None))
    );
    if let Some(before) = before {
        parts.push_str(&format!(
            " UNION ALL SELECT machine, project, jobset, busy_seconds AS busy, steps \
             FROM book_day_busy WHERE day = {before}"
        ));
    }
    format!(
        "INSERT INTO book_day_busy (day, machine, project, jobset, busy_seconds, steps) \
         SELECT {day}, machine, project, jobset, CAST(SUM(busy) AS BIGINT), \
         CAST(SUM(steps) AS BIGINT) FROM ({parts}) AS parts GROUP BY machine, project, jobset"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_read_as_two_stored_days_and_two_edges() {
        let d = |k: i64| k * DAY;
        let m = 0; // the month starts at day 0
                   // [0.5, 4.5): whole days 1..4, read as day 3 minus day 0 when both are fresh.
        let span = Span::new(d(0) + 100, d(4) + 100);
        assert_eq!(whole_days(span), Some(Span::new(d(1), d(4))));
        assert_eq!(
            plan(span, m, &[d(0), d(1), d(2), d(3)]),
            Some((Some(d(0)), d(3)))
        );
        // The last fresh day bounds what is stored; the rest is read from the steps.
        assert_eq!(plan(span, m, &[d(0), d(1)]), Some((Some(d(0)), d(1))));
        // Without the day before the whole days, everything from the steps.
        assert_eq!(plan(span, m, &[d(1), d(2), d(3)]), None);
        // From the month's start nothing is subtracted.
        let from_start = Span::new(d(0), d(2) + 5);
        assert_eq!(plan(from_start, m, &[d(0), d(1)]), Some((None, d(1))));
        // Less than a whole day: the steps.
        assert_eq!(whole_days(Span::new(d(2) + 1, d(3) - 1)), None);
        assert_eq!(plan(Span::new(d(2) + 1, d(3) - 1), m, &[d(2)]), None);
        assert_eq!(
            whole_days(Span::new(d(2), d(3))),
            Some(Span::new(d(2), d(3)))
        );
    }
}
