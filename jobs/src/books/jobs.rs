//! Cost per job (cost-model.md, "Cost per job"): within each (machine, window part), the
//! rounded line of a jobset is split among the jobs of its steps there in proportion to their
//! busy seconds, with the same largest-remainder rule as the lines
//! ([`round_lines`](crate::books::attribution::round_lines)), ties by ascending job name.
//!
//! The database part is one grouped query per (machine, window part) by (project, jobset,
//! job), with the busy seconds and the steps of each group; the jobset lines of that part are
//! computed from the same rows (a jobset's busy seconds are the sum of its jobs'), so the
//! lines split here are exactly the lines `/api/v1/costs` shows.
//!
//! Decisions where the contract is silent:
//! - A step without a job, and a step whose job is literally `~unnamed`, count under the job
//!   [`UNNAMED_JOB`].
//! - A step counts once in a month's `steps` however many parts of the month it spans (a
//!   machine's price change inside it): each (machine, part) query counts only the steps whose
//!   first busy second in the window falls in that part. Steps of no length (`start = stop`) have no busy time and are not counted.
//! - Steps on machines that are not configured are not jobs of the books (they cost nothing
//!   and have no line to split); `/api/v1/costs` lists them as unpriced.
use crate::books::attribution::{part_lines, AttributionError, Line};
#[cfg(test)]
use crate::books::attribution::{round_lines, ExactLine, ExactShares};
use crate::books::ledger::part_lines_from_steps;
use crate::books::steps::query_overlapping;
use crate::books::terms::WindowTerms;
use crate::books::BooksError;
use crate::calendar::Span;
use crate::config::{Config, OTHER_POOL};
use crate::money::narrow;
use buildfund_entity::{book_month_jobs, build_steps};
use sea_orm::sea_query::{Alias, CaseStatement, Condition, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, QueryFilter, QueryResult,
    Statement, Value,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The job of steps that name none.
pub const UNNAMED_JOB: &str = "~unnamed";

/// Busy seconds and step count of one (jobset, job) in one (machine, window part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobBusy {
    pub busy_seconds: i64,
    pub steps: i64,
}

/// `("project:jobset", job)`.
pub type JobKey = (String, String);

/// One (jobset, job) with its cost: of one part, or summed over a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobCost {
    /// `project:jobset`.
    pub jobset: String,
    pub job: String,
    pub pool: String,
    pub fund: String,
    pub busy_seconds: i64,
    pub steps: i64,
    pub cost_cents: i64,
}

/// Splits one line of `cents` among its jobs by their busy seconds: job k's exact share is
/// `cents * busy_k / busy`, floored, and the remaining cents go one each to the largest
/// fractional remainders, ties by ascending job name. The shares sum exactly to `cents`.
/// Jobs with 0 busy seconds get 0; with no busy seconds at all, the line has no jobs to split
/// among (an empty map). The reference the tests hold [`split_cents`] to.
#[cfg(test)]
pub(crate) fn split_line(
    cents: i64,
    busy: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, AttributionError> {
    if cents < 0 {
        return Err(AttributionError::NegativeLine { cents });
    }
    let mut total: i128 = 0;
    for (job, &s) in busy {
        if s < 0 {
            return Err(AttributionError::NegativeBusy {
                of: format!("job {job}"),
                seconds: s,
            });
        }
        total += i128::from(s);
    }
    if total == 0 {
        return Ok(BTreeMap::new());
    }
    let shares = ExactShares {
        denominator: total,
        lines: busy
            .iter()
            .map(|(job, &s)| ExactLine {
                key: job.clone(),
                busy_seconds: s,
                // Two i64 factors: the product fits in i128.
                numerator: i128::from(cents) * i128::from(s),
            })
            .collect(),
    };
    shares
        .lines
        .iter()
        .zip(round_lines(&shares)?)
        .map(|(l, c)| Ok((l.key.clone(), narrow(c)?)))
        .collect()
}

/// Splits one line of `cents` among jobs given by their busy seconds in ascending order of
/// their names (the order of a map's keys), without their names: each job's cents in the same
/// order. The same cents as `split_line` (the largest remainders first, ties by the earlier
/// job, i.e. by ascending name), with no key copied; an empty vector when no job is busy.
pub(crate) fn split_cents(cents: i64, busy: &[i64]) -> Result<Vec<i64>, AttributionError> {
    if cents < 0 {
        return Err(AttributionError::NegativeLine { cents });
    }
    let mut total: i128 = 0;
    for &s in busy {
        if s < 0 {
            return Err(AttributionError::NegativeBusy {
                of: "a job".to_string(),
                seconds: s,
            });
        }
        total += i128::from(s);
    }
    if total == 0 {
        return Ok(Vec::new());
    }
    // Each exact share is cents * busy / total; the shares sum to exactly `cents`, so the
    // cents left after the floors go one each to the largest remainders.
    let mut out = Vec::with_capacity(busy.len());
    let mut remainders = Vec::with_capacity(busy.len());
    let mut floors: i128 = 0;
    for &s in busy {
        let numerator = i128::from(cents) * i128::from(s);
        let floor = numerator.div_euclid(total);
        floors += floor;
        out.push(narrow(floor)?);
        remainders.push(numerator.rem_euclid(total));
    }
    let left = i128::from(cents) - floors;
    if !(0..=busy.len() as i128).contains(&left) {
        return Err(AttributionError::Rounding {
            left,
            lines: busy.len(),
        });
    }
    let mut order: Vec<usize> = (0..busy.len()).collect();
    // Stable: equal remainders keep the ascending order of the names.
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]));
    for &i in order.iter().take(left as usize) {
        out[i] += 1;
    }
    Ok(out)
}

/// Jobs summed per jobset, then per job: found by the names as read, with no key copied.
type JobsByJobset = HashMap<String, HashMap<String, JobCost>>;

/// The jobs of one (machine, window part) added to `into`: each jobset line of `lines` (the
/// part's rounded lines; the idle line has no jobs) split by [`split_cents`] among that
/// jobset's jobs in `busy`, and summed per (jobset, job) with the other parts'. Taking the
/// part's busy seconds, each job's names are moved into `into` the first time it comes, and a
/// job already there is found by reference (the unfiltered month adds 350,000 (machine, job)
/// rows up into 50,000 jobs).
fn add_part_jobs(
    into: &mut JobsByJobset,
    lines: &[Line],
    busy: BTreeMap<JobKey, JobBusy>,
) -> Result<(), AttributionError> {
    let by_jobset: HashMap<&str, &Line> = lines
        .iter()
        .filter(|l| !l.idle)
        .map(|l| {
            (
                l.jobset.as_deref().expect("a jobset line names its jobset"),
                l,
            )
        })
        .collect();
    let mut rows = busy.into_iter().peekable();
    while let Some(((jobset, job), b)) = rows.next() {
        // This jobset's jobs (the map's order: by jobset, then job).
        let mut jobs = vec![(job, b)];
        while let Some(((_, job), b)) = rows.next_if(|((j, _), _)| *j == jobset) {
            jobs.push((job, b));
        }
        let Some(line) = by_jobset.get(jobset.as_str()) else {
            continue;
        };
        let seconds: Vec<i64> = jobs.iter().map(|(_, b)| b.busy_seconds).collect();
        let cents = split_cents(line.cost_cents, &seconds)?;
        // One copy of the jobset's name per part, not per job.
        let mine = into.entry(jobset.clone()).or_default();
        for (k, (job, b)) in jobs.into_iter().enumerate() {
            let cost_cents = cents.get(k).copied().unwrap_or(0);
            if let Some(t) = mine.get_mut(job.as_str()) {
                t.busy_seconds += b.busy_seconds;
                t.steps += b.steps;
                t.cost_cents += cost_cents;
                continue;
            }
            mine.insert(
                job.clone(),
                JobCost {
                    jobset: jobset.clone(),
                    job,
                    pool: line.pool.clone().unwrap_or_else(|| OTHER_POOL.to_string()),
                    fund: line.fund.clone(),
                    busy_seconds: b.busy_seconds,
                    steps: b.steps,
                    cost_cents,
                },
            );
        }
    }
    Ok(())
}

/// The jobs summed in `sums`, by (jobset, job).
fn by_key(sums: JobsByJobset) -> BTreeMap<JobKey, JobCost> {
    sums.into_values()
        .flat_map(|jobs| jobs.into_values())
        .map(|j| ((j.jobset.clone(), j.job.clone()), j))
        .collect()
}

/// The grouped query of one (machine, window part): busy seconds (each step clipped to
/// `part`) and steps per (project, jobset, job) of the steps of `names` (the machine's name
/// and aliases) overlapping `part`, of the `(project, jobset)` pairs of `only` when given.
/// Steps count only when they start at or after `count_from` (the part where a step's first
/// busy second falls counts it; `None` counts all). `longest` is the longest step's bound
/// (run by [`query_overlapping`]).
pub(crate) fn jobs_query(
    part: Span,
    names: &[&str],
    count_from: Option<i64>,
    only: Option<&[(&str, &str)]>,
    longest: i64,
) -> SelectStatement {
    use build_steps::Column as C;
    grouped_by_job(part, count_from, only, false, longest)
        .and_where(Expr::col(C::Machine).is_in(names.iter().copied()))
        .to_owned()
}

/// The grouped query of a filtered read: busy seconds and steps per (machine as stored,
/// project, jobset, job) of the steps of `names` (the names of every machine read together)
/// overlapping `part`, of the `(project, jobset)` pairs of `only`, counted from `count_from`
/// as in [`jobs_query`]. The jobsets lead (`jobset IN (…)`, the `(jobset, start_ts)` index):
/// the query reads only those jobsets' steps of the part, whatever the machines. The machine
/// is written `("machine" || '')`, which keeps both planners off the `(machine, start_ts)`
/// index: every machine of a farm builds every jobset, so that index reads every step.
pub(crate) fn filtered_jobs_query(
    part: Span,
    names: &[&str],
    count_from: Option<i64>,
    only: &[(&str, &str)],
    longest: i64,
) -> SelectStatement {
    use build_steps::Column as C;
    let jobsets: std::collections::BTreeSet<&str> = only.iter().map(|(_, j)| *j).collect();
    grouped_by_job(part, count_from, Some(only), true, longest)
        .and_where(Expr::col(C::Jobset).is_in(jobsets))
        .and_where(Expr::cust(r#"("machine" || '')"#).is_in(names.iter().copied()))
        .to_owned()
}

/// The grouped query of a span over every machine at once: busy seconds (each step clipped to
/// `span`) and steps (counted from `count_from`, as in [`jobs_query`]) per (machine as stored,
/// project, jobset, job) of the steps overlapping it. One pass over the span's steps, where
/// [`jobs_query`] per machine would read them once per machine (the start index holds every
/// machine's steps of the span).
pub(crate) fn window_jobs_query(
    span: Span,
    count_from: Option<i64>,
    longest: i64,
) -> SelectStatement {
    grouped_by_job(span, count_from, None, true, longest)
}

/// The select, the window's condition, the pairs of `only` and the grouping of
/// [`jobs_query`] and [`filtered_jobs_query`] (with the machine first when `by_machine`).
fn grouped_by_job(
    part: Span,
    count_from: Option<i64>,
    only: Option<&[(&str, &str)]>,
    by_machine: bool,
    longest: i64,
) -> SelectStatement {
    use build_steps::Column as C;
    let busy = super::steps::clipped_busy_seconds(part);
    let steps = match count_from {
        Some(from) => {
            let counted = CaseStatement::new()
                .case(Expr::col(C::StartTs).gte(from), Expr::val(1i64))
                .finally(Expr::val(0i64));
            Func::cast_as(Func::sum(Expr::expr(counted)), Alias::new("BIGINT"))
        }
        None => Func::cast_as(Func::count(Expr::col(C::StartTs)), Alias::new("BIGINT")),
    };
    let mut q = Query::select();
    if by_machine {
        q.column(C::Machine).group_by_col(C::Machine);
    }
    q.columns([C::Project, C::Jobset, C::Job])
        .expr_as(busy, Alias::new("busy"))
        .expr_as(steps, Alias::new("steps"))
        .from(build_steps::Entity)
        // Bounded by the part, not by history (see `steps::overlapping`): the index reads the
        // part and the longest step's margin only.
        .cond_where(super::steps::overlapping_within(part, longest))
        .cond_where(match only {
            None => Condition::all(),
            Some(pairs) => pairs.iter().fold(Condition::any(), |any, (p, j)| {
                any.add(
                    Condition::all()
                        .add(Expr::col(C::Project).eq(*p))
                        .add(Expr::col(C::Jobset).eq(*j)),
                )
            }),
        })
        .group_by_columns([C::Project, C::Jobset, C::Job])
        .to_owned()
}

/// Runs [`jobs_query`]: busy seconds and steps per (`project:jobset`, job).
pub(crate) async fn part_job_busy(
    db: &impl ConnectionTrait,
    part: Span,
    names: &[&str],
    count_from: Option<i64>,
) -> Result<BTreeMap<JobKey, JobBusy>, BooksError> {
    let mut out: BTreeMap<JobKey, JobBusy> = BTreeMap::new();
    for row in query_overlapping(db, |longest| {
        jobs_query(part, names, count_from, None, longest)
    })
    .await?
    {
        add_row(&mut out, &row)?;
    }
    Ok(out)
}

/// Adds one row of [`jobs_query`] or [`filtered_jobs_query`] to `into`.
fn add_row(into: &mut BTreeMap<JobKey, JobBusy>, row: &QueryResult) -> Result<(), BooksError> {
    let project: String = row.try_get("", "project")?;
    let jobset: String = row.try_get("", "jobset")?;
    let job: Option<String> = row.try_get("", "job")?;
    let b = into
        .entry((
            format!("{project}:{jobset}"),
            job.unwrap_or_else(|| UNNAMED_JOB.to_string()),
        ))
        .or_default();
    b.busy_seconds += row.try_get::<i64>("", "busy")?;
    b.steps += row.try_get::<i64>("", "steps")?;
    Ok(())
}

/// Every (jobset, job) of the window of `terms` (inside one month, clipped to
/// `[ledger_start, at)`) from the build steps: with the machines' terms prepared for the window
/// ([`WindowTerms`]: split at the machines' changes, each part under its terms), the busy
/// seconds per machine, part and job, then each part's lines ([`part_lines`], rounded on their
/// own) and their split; summed per (jobset, job). Ordered by jobset, then job.
///
/// The busy seconds of every machine active through the whole window under one set of terms
/// (the usual case) come from one grouped query over the window ([`window_jobs_query`]: one pass
/// over its steps); a machine that starts, stops or changes inside it gets a query of its own
/// per part over the part's active span ([`part_job_busy`]). When the open month's stored day
/// of jobs serves the window ([`super::job_days`]), those machines take their busy seconds up to
/// the day's end from it, and the one grouped query reads only the steps after it.
pub async fn window_jobs(
    db: &impl ConnectionTrait,
    config: &Config,
    terms: &WindowTerms<'_>,
) -> Result<BTreeMap<JobKey, JobCost>, BooksError> {
    // The open month's stored day of jobs, when it serves this window (see `job_days`).
    let stored = super::job_days::stored_for(db, terms.window).await?;
    let mut whole: HashMap<&str, BTreeMap<JobKey, JobBusy>> = HashMap::new();
    // What the one grouped query reads: the window, or what follows the stored day (the steps
    // starting after the day's end count as steps there; those before it were counted in it).
    let mut rest = Some((terms.window, None));
    if let Some(day) = &stored {
        for (machine, rows) in &day.rows {
            if let Some(m) = terms.machine(machine).filter(|m| m.whole()) {
                let into = whole.entry(m.machine.name.as_str()).or_default();
                for (key, b) in rows {
                    let t = into.entry(key.clone()).or_default();
                    t.busy_seconds += b.busy_seconds;
                    t.steps += b.steps;
                }
            }
        }
        rest = (day.end < terms.window.end)
            .then(|| (Span::new(day.end, terms.window.end), Some(day.end)));
    }
    if let (Some((span, count_from)), true) = (rest, terms.machines.iter().any(|m| m.whole())) {
        let rows = query_overlapping(db, |longest| window_jobs_query(span, count_from, longest));
        for row in rows.await? {
            let machine: String = row.try_get("", "machine")?;
            // Steps of machines not configured are not jobs of the books; those of a machine
            // with parts are read part by part below.
            let Some(m) = terms.machine(&machine).filter(|m| m.whole()) else {
                continue;
            };
            add_row(whole.entry(m.machine.name.as_str()).or_default(), &row)?;
        }
    }
    let mut busy = Vec::new();
    for m in &terms.machines {
        if m.whole() {
            let mine = whole.remove(m.machine.name.as_str()).unwrap_or_default();
            busy.extend(m.parts.first().map(|part| (m, part, mine)));
            continue;
        }
        // A step is counted in the part where its first busy second in the window falls.
        let mut first = true;
        for part in &m.parts {
            let Some(active) = part.active else {
                continue;
            };
            let count_from = (!first).then_some(active.start);
            first = false;
            busy.push((
                m,
                part,
                part_job_busy(db, active, &m.names, count_from).await?,
            ));
        }
    }
    let mut sums = JobsByJobset::new();
    for (m, part, busy) in busy {
        // A jobset's busy seconds, its jobs' sum: they come together (the map's order).
        let mut jobsets: BTreeMap<String, i64> = BTreeMap::new();
        let mut run: Option<(&str, i64)> = None;
        for ((jobset, _), b) in &busy {
            match &mut run {
                Some((j, seconds)) if *j == jobset.as_str() => *seconds += b.busy_seconds,
                _ => {
                    if let Some((j, seconds)) = run.replace((jobset.as_str(), b.busy_seconds)) {
                        jobsets.insert(j.to_string(), seconds);
                    }
                }
            }
        }
        if let Some((j, seconds)) = run {
            jobsets.insert(j.to_string(), seconds);
        }
        let lines = part_lines(config, m.machine, part, &jobsets)?;
        add_part_jobs(&mut sums, &lines, busy)?;
    }
    Ok(by_key(sums))
}

/// The jobs of `window` (as [`window_jobs`]) of one jobset (`project:jobset`) and of one pool,
/// when given, with the filter in the queries: the lines of every (machine, part) come from
/// the stored days and the edges' steps ([`part_lines_from_steps`], the lines
/// `/api/v1/costs` shows; from the steps where no day is stored), and the jobs' busy seconds
/// from one grouped query by (machine, job) per distinct active span (one for the machines
/// active through the whole window, the usual case), restricted to the matching jobsets
/// ([`filtered_jobs_query`]: only their steps are read). The same jobs as [`window_jobs`]
/// filtered afterwards, without computing the others.
pub async fn filtered_window_jobs(
    db: &impl ConnectionTrait,
    config: &Config,
    terms: &WindowTerms<'_>,
    jobset: Option<&str>,
    pool: Option<&str>,
) -> Result<BTreeMap<JobKey, JobCost>, BooksError> {
    /// The matching lines of one (machine, part) and where its steps are counted.
    struct Matching<'a> {
        names: &'a [&'a str],
        lines: Vec<Line>,
    }
    let (parts, _) = part_lines_from_steps(db, config, terms).await?;
    let mut matching: Vec<Matching> = Vec::new();
    // The (machine, part)s read together: the same active span and the same first instant
    // counted.
    let mut groups: BTreeMap<(i64, i64, Option<i64>), Vec<usize>> = BTreeMap::new();
    let mut previous: Option<&str> = None;
    for p in parts {
        // A step is counted in the part where its first busy second in the window falls.
        let first = previous != Some(p.machine.name.as_str());
        previous = Some(p.machine.name.as_str());
        let active = p.active;
        let count_from = (!first).then_some(active.start);
        let lines: Vec<Line> = p
            .lines
            .into_iter()
            .filter(|l| {
                !l.idle
                    && jobset.is_none_or(|j| l.jobset.as_deref() == Some(j))
                    && pool.is_none_or(|q| l.pool.as_deref().unwrap_or(OTHER_POOL) == q)
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        // The names its steps are recorded under, as prepared with its terms.
        let Some(m) = terms.machine(&p.machine.name) else {
            continue;
        };
        groups
            .entry((active.start, active.end, count_from))
            .or_default()
            .push(matching.len());
        matching.push(Matching {
            names: &m.names,
            lines,
        });
    }
    let mut busy: Vec<BTreeMap<JobKey, JobBusy>> = vec![BTreeMap::new(); matching.len()];
    for ((start, end, count_from), members) in groups {
        let mut names: Vec<&str> = Vec::new();
        let mut member_of: HashMap<&str, usize> = HashMap::new();
        let mut pairs: BTreeSet<(&str, &str)> = BTreeSet::new();
        for &i in &members {
            for n in matching[i].names {
                names.push(n);
                member_of.insert(n, i);
            }
            pairs.extend(
                matching[i]
                    .lines
                    .iter()
                    .filter_map(|l| l.jobset.as_deref()?.split_once(':')),
            );
        }
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        for chunk in pairs.chunks(200) {
            let q = |longest| {
                filtered_jobs_query(Span::new(start, end), &names, count_from, chunk, longest)
            };
            for row in query_overlapping(db, q).await? {
                let machine: String = row.try_get("", "machine")?;
                if let Some(&i) = member_of.get(machine.as_str()) {
                    add_row(&mut busy[i], &row)?;
                }
            }
        }
    }
    let mut sums = JobsByJobset::new();
    for (m, busy) in matching.iter().zip(busy) {
        add_part_jobs(&mut sums, &m.lines, busy)?;
    }
    Ok(by_key(sums))
}

// ---- stored with a closed month (`book_month_jobs`) ---------------------------------------

/// Rows of `book_month_jobs` a statement writes on PostgreSQL, where the parameter count does
/// not grow with the rows: large enough that per-statement costs vanish, small enough to keep
/// each statement's text a few megabytes.
const JOB_ROWS_POSTGRES: usize = 20_000;

/// Rows a statement writes elsewhere (SQLite): 7 bound values a row keep a multi-row `INSERT`
/// under its parameter limit (32766).
const JOB_ROWS: usize = 4_000;

const JOB_COLUMNS: &str =
    "book_month_jobs (book_month_id, jobset, job, pool, fund, busy_seconds, steps, cost_cents)";

/// Stores a month's jobs under its `book_months` row (inside the transaction storing it), in
/// their order (by jobset, then job). On PostgreSQL each statement sends one array per column
/// (`INSERT … SELECT unnest(…)`, as the ingest writes steps), elsewhere one multi-row
/// `INSERT … VALUES` of as many rows as the parameter limit allows; the month's row id is
/// written into the statement, not bound.
pub(crate) async fn insert_rows(
    db: &impl ConnectionTrait,
    book_month_id: i64,
    jobs: &BTreeMap<JobKey, JobCost>,
) -> Result<(), BooksError> {
    let jobs: Vec<&JobCost> = jobs.values().collect();
    let backend = db.get_database_backend();
    let chunk = match backend {
        DbBackend::Postgres => JOB_ROWS_POSTGRES,
        _ => JOB_ROWS,
    };
    for rows in jobs.chunks(chunk) {
        let statement = match backend {
            DbBackend::Postgres => postgres_job_rows(book_month_id, rows),
            _ => values_job_rows(backend, book_month_id, rows),
        };
        db.execute_raw(statement).await?;
    }
    Ok(())
}

/// `INSERT … SELECT` of `rows` from one array per column.
fn postgres_job_rows(book_month_id: i64, rows: &[&JobCost]) -> Statement {
    use crate::db::array::ArrayLiteral;
    let n = rows.len();
    let text = |avg: usize| ArrayLiteral::with_capacity(n * (avg + 3) + 2);
    let (mut jobset, mut job, mut pool, mut fund) = (text(20), text(30), text(10), text(10));
    let (mut busy, mut steps, mut cents) = (text(8), text(3), text(6));
    for j in rows {
        jobset.text(Some(&j.jobset));
        job.text(Some(&j.job));
        pool.text(Some(&j.pool));
        fund.text(Some(&j.fund));
        busy.int(Some(j.busy_seconds));
        steps.int(Some(j.steps));
        cents.int(Some(j.cost_cents));
    }
    let sql = format!(
        "INSERT INTO {JOB_COLUMNS} SELECT {book_month_id}, unnest($1::text::text[]), \
         unnest($2::text::text[]), unnest($3::text::text[]), unnest($4::text::text[]), \
         unnest($5::text::int8[]), unnest($6::text::int8[]), unnest($7::text::int8[])"
    );
    let values = vec![
        jobset.finish(),
        job.finish(),
        pool.finish(),
        fund.finish(),
        busy.finish(),
        steps.finish(),
        cents.finish(),
    ];
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A multi-row `INSERT … VALUES` of `rows`, 7 bound values a row.
fn values_job_rows(backend: DbBackend, book_month_id: i64, rows: &[&JobCost]) -> Statement {
    let row = format!("({book_month_id}, ?, ?, ?, ?, ?, ?, ?)");
    let mut sql = String::with_capacity(40 + rows.len() * (row.len() + 1));
    sql.push_str("INSERT INTO ");
    sql.push_str(JOB_COLUMNS);
    sql.push_str(" VALUES ");
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 7);
    for (i, j) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
        values.extend([
            j.jobset.as_str().into(),
            j.job.as_str().into(),
            j.pool.as_str().into(),
            j.fund.as_str().into(),
            j.busy_seconds.into(),
            j.steps.into(),
            j.cost_cents.into(),
        ]);
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// The jobs stored under a `book_months` row, restricted to a jobset or a pool when given.
pub(crate) async fn load_rows(
    db: &impl ConnectionTrait,
    book_month_id: i64,
    jobset: Option<&str>,
    pool: Option<&str>,
) -> Result<Vec<JobCost>, BooksError> {
    use book_month_jobs::Column as J;
    let mut q = book_month_jobs::Entity::find().filter(J::BookMonthId.eq(book_month_id));
    if let Some(j) = jobset {
        q = q.filter(J::Jobset.eq(j));
    }
    if let Some(p) = pool {
        q = q.filter(J::Pool.eq(p));
    }
    Ok(q.all(db)
        .await?
        .into_iter()
        .map(|r| JobCost {
            jobset: r.jobset,
            job: r.job,
            pool: r.pool,
            fund: r.fund,
            busy_seconds: r.busy_seconds,
            steps: r.steps,
            cost_cents: r.cost_cents,
        })
        .collect())
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
