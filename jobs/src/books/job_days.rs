//! The open month's stored day of jobs (`book_day_jobs`): so that a read of the open month's
//! cost per job (the funding page's, on every refresh) does not group every step of the month
//! again, the keeper stores, once the month's last whole day is over, the busy seconds and
//! steps per (machine as stored, project, jobset, job) from the month's start to the end of
//! that day, each step clipped, with the generation of the day it was computed from. A read of
//! the month to date then takes those rows for every machine active through the whole window
//! under one set of terms (the usual case) and groups only the steps of the rest of the
//! window (today's) from the steps; the lines are computed from the sums as before, so the
//! figures are exactly those computed from the steps.
//!
//! Busy seconds are additive: a step overlapping the stored day's end counts its seconds
//! before the end in the stored rows and the rest in the query of today; it counts as a step
//! in the stored rows only (the query of today counts the steps that start at or after the
//! end, as a later part of a window does, [`super::jobs::jobs_query`]).
//!
//! Staleness, as for the stored days ([`super::days`]): a write of steps overlapping any day
//! of the month up to the stored day bumps that day's generation (the days after a written day
//! in its month are bumped with it, [`super::stale::mark_spans`]); rows stored from an older
//! generation are not read, and the keeper stores them again. The generation is read before
//! the steps, so a write committed meanwhile leaves the rows stale rather than wrongly fresh.
//! Only the latest day is kept: its rows are replaced in one transaction.
use crate::books::days::{day_of, day_row, DAY};
use crate::books::jobs::{JobBusy, JobKey, UNNAMED_JOB};
use crate::books::BooksError;
use crate::calendar::{month_of, Span};
use buildfund_entity::build_steps;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, DeriveIden, ExprTrait, TransactionSession, TransactionTrait};
use std::collections::BTreeMap;

#[derive(Clone, Copy, DeriveIden)]
enum BookDayJobs {
    Table,
    Day,
    Generation,
    Machine,
    Project,
    Jobset,
    Job,
    BusySeconds,
    Steps,
}

/// The stored day's rows of a window: busy seconds and steps per machine as stored, then per
/// (`project:jobset`, job), from the window's start to `end`.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobDay {
    pub end: i64,
    pub rows: BTreeMap<String, BTreeMap<JobKey, JobBusy>>,
}

/// The day stored and the generation it was computed from, if any.
async fn stored_day(db: &impl ConnectionTrait) -> Result<Option<(i64, i64)>, BooksError> {
    let q = Query::select()
        .columns([BookDayJobs::Day, BookDayJobs::Generation])
        .from(BookDayJobs::Table)
        .order_by(BookDayJobs::Day, sea_orm::Order::Desc)
        .limit(1)
        .to_owned();
    Ok(match db.query_one(&q).await? {
        Some(row) => Some((row.try_get("", "day")?, row.try_get("", "generation")?)),
        None => None,
    })
}

/// The stored rows usable for `window` (inside one month, clipped to `[ledger_start, at)`):
/// when the window starts with its month, the day stored ends inside the window (or at its
/// end) and is fresh. `None` otherwise, and when the rows were replaced while being read.
pub(crate) async fn stored_for(
    db: &impl ConnectionTrait,
    window: Span,
) -> Result<Option<JobDay>, BooksError> {
    if window.is_empty() || month_of(window.start).start != window.start {
        return Ok(None);
    }
    let Some((day, generation)) = stored_day(db).await? else {
        return Ok(None);
    };
    let end = day + DAY;
    if day < window.start || end > window.end {
        return Ok(None);
    }
    if day_row(db, day).await?.map_or(0, |(g, _)| g) != generation {
        return Ok(None);
    }
    let q = Query::select()
        .columns([
            BookDayJobs::Machine,
            BookDayJobs::Project,
            BookDayJobs::Jobset,
            BookDayJobs::Job,
            BookDayJobs::BusySeconds,
            BookDayJobs::Steps,
        ])
        .from(BookDayJobs::Table)
        .and_where(Expr::col(BookDayJobs::Day).eq(day))
        .and_where(Expr::col(BookDayJobs::Generation).eq(generation))
        .to_owned();
    let mut rows: BTreeMap<String, BTreeMap<JobKey, JobBusy>> = BTreeMap::new();
    for row in db.query_all(&q).await? {
        let machine: String = row.try_get("", "machine")?;
        let project: String = row.try_get("", "project")?;
        let jobset: String = row.try_get("", "jobset")?;
        let b = rows
            .entry(machine)
            .or_default()
            .entry((format!("{project}:{jobset}"), row.try_get("", "job")?))
            .or_default();
        b.busy_seconds += row.try_get::<i64>("", "busy_seconds")?;
        b.steps += row.try_get::<i64>("", "steps")?;
    }
    // Replaced meanwhile (by the keeper, for a later day or generation): not these rows.
    if stored_day(db).await? != Some((day, generation)) {
        return Ok(None);
    }
    Ok(Some(JobDay { end, rows }))
}

/// Stores the open month's day of jobs as of `now` (the last whole day over, when it is in
/// the month of `now`) unless it is stored fresh; on the month's first day there is none, and
/// the rows of the month before are removed. Returns whether rows were written.
pub async fn store_job_day<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<bool, BooksError> {
    let today = day_of(now.timestamp());
    let day = today - DAY;
    let stored = stored_day(db).await?;
    if month_of(day).start != month_of(today).start {
        if stored.is_some() {
            let txn = crate::db::begin_write(db).await?;
            crate::db::take_lock(&txn, "books").await?;
            txn.execute(&Query::delete().from_table(BookDayJobs::Table).to_owned())
                .await?;
            txn.commit().await?;
        }
        return Ok(false);
    }
    // The generation first, then the steps (see the module).
    let generation = day_row(db, day).await?.map_or(0, |(g, _)| g);
    if stored == Some((day, generation)) {
        return Ok(false);
    }
    let span = Span::new(month_of(day).start, day + DAY);
    use build_steps::Column as C;
    // A step without a job and one whose job is literally `~unnamed` count under one job.
    let job = || Expr::cust(format!(r#"COALESCE("job", '{UNNAMED_JOB}')"#));
    let select = Query::select()
        .expr(Expr::val(day))
        .expr(Expr::val(generation))
        .columns([C::Machine, C::Project, C::Jobset])
        .expr(job())
        .expr(super::steps::clipped_busy_seconds(span))
        .expr(Func::cast_as(
            Func::count(Expr::col(C::StartTs)),
            Alias::new("BIGINT"),
        ))
        .from(build_steps::Entity)
        .cond_where(super::steps::overlapping(span))
        .group_by_columns([C::Machine, C::Project, C::Jobset])
        .add_group_by([job()])
        .to_owned();
    let insert = Query::insert()
        .into_table(BookDayJobs::Table)
        .columns([
            BookDayJobs::Day,
            BookDayJobs::Generation,
            BookDayJobs::Machine,
            BookDayJobs::Project,
            BookDayJobs::Jobset,
            BookDayJobs::Job,
            BookDayJobs::BusySeconds,
            BookDayJobs::Steps,
        ])
        .select_from(select)
        .expect("eight columns and eight values")
        .to_owned();
    let txn = crate::db::begin_write(db).await?;
    crate::db::take_lock(&txn, "books").await?;
    txn.execute(&Query::delete().from_table(BookDayJobs::Table).to_owned())
        .await?;
    txn.execute(&insert).await?;
    txn.commit().await?;
    Ok(true)
}
