//! Stored month books (README, "Stored books").
//!
//! Once a month is over, its books do not change unless data dated in it does: its cost lines
//! (per machine, jobset, pool and fund, rounded per machine and month as cost-model.md says),
//! its cost per (jobset, job) ([`super::jobs`], in `book_month_jobs`),
//! the donation sums per fund, and each fund's figures at the month's end (the sums from
//! `ledger_start`, the balance, and the cost of the 30 days before the end). They are stored
//! once, keyed by the [`fingerprint`] of everything in the config they depend on, and every
//! read takes them from here, computing only the open month (or the tail of a month up to an
//! instant) from the build steps and donations.
//!
//! Staleness. Every write of a build step or donation bumps, in its own transaction, the
//! generation of each month it touches ([`mark_spans`], [`mark_instants`]) in `book_stale`.
//! A stored month records the generation it was computed from (read *before* its data), so
//! it is fresh exactly while no write touched its month since. Its figures at the month's end
//! also hold the months before it, so they are used only while every month from the ledger's
//! first is fresh. A stale or missing month is recomputed by [`ensure`] (the background
//! keeper, `buildfund books rebuild`, the command line before it reads); until then, reads
//! compute the month from the data, exactly as they would without a store.
//!
//! Several instances. A month is stored in one transaction that first takes the `books` row
//! of `book_locks` (one writer of books at a time across instances, the SQLite write lock on
//! SQLite); under it, a month already stored from the same or a newer generation is left as
//! it is, so two instances that recompute a month at once store one result. A reader loads a
//! month's lines and funds by its row id and retries when the row went away meanwhile, so it
//! never sees half of a month.
use crate::books::attribution::Line;
use crate::books::jobs::{JobCost, JobKey};
use crate::books::ledger::{raised_from_data, Raised, UnpricedLine, WindowCosts};
use crate::books::BooksError;
use crate::calendar::{from_unix, split_months, Month, Period, Span};
use crate::config::{Config, CostModel, IdlePolicy};
use buildfund_entity::{book_month_funds, book_month_lines, book_months, book_stale};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Bumped whenever the rules that turn data into figures change, so books stored by an older
/// release are recomputed rather than trusted.
pub const RULES_VERSION: u32 = 3;

/// The fingerprint of everything the stored figures depend on: the rules version, the
/// currency, `ledger_start`, the idle policy, the rates, every fund's slug, default flag,
/// opening balance and routing, every pool's slug, fund and patterns in order, and every
/// machine's name, aliases, slots, active interval, idle fund, cost model and dated changes
/// (instant, cost model, slots). Names, goals,
/// reserves, budgets and everything outside the books do not enter it.
pub fn fingerprint(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut s = String::new();
    let opt = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp().to_string());
    let _ = writeln!(s, "rules {RULES_VERSION}");
    let _ = writeln!(s, "currency {:?}", config.currency);
    let _ = writeln!(s, "ledger_start {}", config.ledger_start.timestamp());
    let idle = match config.idle {
        IdlePolicy::Separate => "separate",
        IdlePolicy::Proportional => "proportional",
    };
    let _ = writeln!(s, "idle {idle}");
    for (code, rate) in &config.rates {
        let _ = writeln!(s, "rate {code:?} {}", rate.normalize());
    }
    for f in &config.funds {
        let _ = writeln!(
            s,
            "fund {:?} {} {} {:?} {:?}",
            f.slug, f.default, f.opening_balance_cents, f.accounts, f.tiers
        );
    }
    for p in &config.pools {
        let _ = writeln!(s, "pool {:?} {:?} {:?}", p.slug, p.fund, p.jobsets);
    }
    for m in &config.machines {
        let price = match m.cost {
            CostModel::Monthly(p) | CostModel::Hourly(p) | CostModel::Metered(p) => p,
        };
        let _ = writeln!(
            s,
            "machine {:?} {:?} {} {:?} {:?} {:?} {} {}",
            m.name,
            m.aliases,
            m.slots,
            opt(m.active_from),
            opt(m.active_until),
            m.idle_fund,
            m.cost.kind(),
            price
        );
        for c in &m.changes {
            let _ = writeln!(
                s,
                "change {} {:?} {:?}",
                c.from.timestamp(),
                c.cost.map(|c| format!("{} {}", c.kind(), c.price())),
                c.slots
            );
        }
    }
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The ledger's first month.
pub(crate) fn first_month(config: &Config) -> Month {
    Month::of(config.ledger_start)
}

/// The window a month's books cover: the month, from `ledger_start` on. `None` before it.
pub fn book_window(config: &Config, month: Month) -> Option<Span> {
    month
        .span()
        .intersect(Span::new(config.ledger_start.timestamp(), i64::MAX))
}

/// The last month that is over at `now` (the one before `now`'s month).
pub(crate) fn last_closed(now: DateTime<Utc>) -> Month {
    Month::of(now).prev()
}

fn months_from(first: Month, last: Month) -> Vec<Month> {
    let mut out = Vec::new();
    let mut m = first;
    while m <= last {
        out.push(m);
        m = m.next();
    }
    out
}

// ---- marking ------------------------------------------------------------------------------

/// One fund's figures of a stored month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FundBook {
    pub raised: Raised,
    pub spent_cents: i64,
    /// Net donations over `[ledger_start, end of the month)`.
    pub net_to_date_cents: i64,
    /// Cost over `[ledger_start, end of the month)`.
    pub spent_to_date_cents: i64,
    pub balance_cents: i64,
    /// Cost over the 30 days before the month's end.
    pub cost_30_days_cents: i64,
}

/// A stored month.
#[derive(Clone, Debug, Default)]
pub struct StoredMonth {
    /// Its `book_months` row (the jobs of the month are stored under it).
    pub id: i64,
    pub costs: WindowCosts,
    pub funds: BTreeMap<String, FundBook>,
}

/// Where a month stands in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonthState {
    Stored,
    Stale,
    Missing,
}

#[derive(Clone, Copy, Debug)]
struct Status {
    id: i64,
    fresh: bool,
}

/// The stored months of `fp` up to `through`, fresh or not.
async fn status(
    db: &impl ConnectionTrait,
    fp: &str,
    through: Month,
) -> Result<BTreeMap<Month, Status>, BooksError> {
    use book_months::Column as B;
    use book_stale::Column as S;
    let q = Query::select()
        .column((book_months::Entity, B::Id))
        .column((book_months::Entity, B::Month))
        .expr_as(
            Expr::col((book_months::Entity, B::Generation)),
            "generation",
        )
        .expr_as(Expr::col((book_stale::Entity, S::Generation)), "marked")
        .from(book_months::Entity)
        .left_join(
            book_stale::Entity,
            Expr::col((book_stale::Entity, S::Month)).equals((book_months::Entity, B::Month)),
        )
        .and_where(Expr::col((book_months::Entity, B::Fingerprint)).eq(fp))
        .and_where(Expr::col((book_months::Entity, B::Month)).lte(through.to_string()))
        .to_owned();
    let mut out = BTreeMap::new();
    for row in db.query_all(&q).await? {
        let month: String = row.try_get("", "month")?;
        let Ok(month) = Month::parse(&month) else {
            continue;
        };
        let generation: i64 = row.try_get("", "generation")?;
        let marked: Option<i64> = row.try_get("", "marked")?;
        out.insert(
            month,
            Status {
                id: row.try_get("", "id")?,
                fresh: generation >= marked.unwrap_or(0),
            },
        );
    }
    Ok(out)
}

async fn load_funds(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<BTreeMap<String, FundBook>, BooksError> {
    Ok(book_month_funds::Entity::find()
        .filter(book_month_funds::Column::BookMonthId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|f| {
            (
                f.fund,
                FundBook {
                    raised: Raised {
                        gross_cents: f.gross_cents,
                        fees_cents: f.fees_cents,
                        net_cents: f.net_cents,
                    },
                    spent_cents: f.spent_cents,
                    net_to_date_cents: f.net_to_date_cents,
                    spent_to_date_cents: f.spent_to_date_cents,
                    balance_cents: f.balance_cents,
                    cost_30_days_cents: f.cost_30_days_cents,
                },
            )
        })
        .collect())
}

async fn load_costs(db: &impl ConnectionTrait, id: i64) -> Result<WindowCosts, BooksError> {
    let rows = book_month_lines::Entity::find()
        .filter(book_month_lines::Column::BookMonthId.eq(id))
        .order_by_asc(book_month_lines::Column::Id)
        .all(db)
        .await?;
    let mut costs = WindowCosts::default();
    for r in rows {
        if r.kind == "unpriced" {
            costs.unpriced.push(UnpricedLine {
                machine: r.machine,
                jobset: r.jobset.unwrap_or_default(),
                busy_seconds: r.busy_seconds,
            });
        } else {
            costs.lines.push(Line {
                machine: r.machine,
                jobset: r.jobset,
                pool: r.pool,
                fund: r.fund.unwrap_or_default(),
                idle: r.kind == "idle",
                busy_seconds: r.busy_seconds,
                cost_cents: r.cost_cents,
            });
        }
    }
    Ok(costs)
}

/// The stored books of `month`, stored under this config and fresh; with `chain`, only when
/// every month before it is fresh too (so its figures at the month's end hold). `lines: false`
/// leaves the lines out. `None` means: compute from the data. The caller reads at an instant
/// by which `month` is over (only such months are stored).
pub async fn stored_month(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    chain: bool,
    lines: bool,
) -> Result<Option<StoredMonth>, BooksError> {
    if month < first_month(config) {
        return Ok(None);
    }
    let fp = fingerprint(config);
    for _ in 0..3 {
        let st = status(db, &fp, month).await?;
        let Some(own) = st.get(&month).copied() else {
            return Ok(None);
        };
        let usable = if chain {
            months_from(first_month(config), month)
                .iter()
                .all(|m| st.get(m).is_some_and(|s| s.fresh))
        } else {
            own.fresh
        };
        if !usable {
            return Ok(None);
        }
        let costs = if lines {
            load_costs(db, own.id).await?
        } else {
            WindowCosts::default()
        };
        // Funds are read last: a row replaced meanwhile leaves none, and the read is retried.
        let funds = load_funds(db, own.id).await?;
        if !funds.is_empty() {
            return Ok(Some(StoredMonth {
                id: own.id,
                costs,
                funds,
            }));
        }
    }
    Ok(None)
}

/// Net donations and cost per fund over `[ledger_start, start of month)`: from the stored
/// figures of the month before when they hold, else month by month (each from the store when
/// it is fresh, else from the data).
pub(crate) async fn to_date_before(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<BTreeMap<String, (i64, i64)>, BooksError> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let first = first_month(config);
    if period.month <= first {
        return Ok(out);
    }
    let prev = period.prev;
    if let Some(m) = stored_month(db, config, prev, true, false).await? {
        for (fund, f) in m.funds {
            out.insert(fund, (f.net_to_date_cents, f.spent_to_date_cents));
        }
        return Ok(out);
    }
    for m in months_from(first, prev) {
        let whole = Period::new(m, m.next().start(), config.ledger_start);
        let (raised, spent) = month_figures(db, config, &whole).await?;
        for (fund, r) in raised {
            out.entry(fund).or_default().0 += r.net_cents;
        }
        for (fund, c) in spent {
            out.entry(fund).or_default().1 += c;
        }
    }
    Ok(out)
}

/// A whole month's donation sums and cost per fund (`period` as of the month's end): stored
/// when fresh, else from the data over the period's books window.
async fn month_figures(
    db: &impl ConnectionTrait,
    config: &Config,
    period: &Period,
) -> Result<(BTreeMap<String, Raised>, BTreeMap<String, i64>), BooksError> {
    if let Some(m) = stored_month(db, config, period.month, false, false).await? {
        let raised = m.funds.iter().map(|(f, b)| (f.clone(), b.raised)).collect();
        let spent = m
            .funds
            .iter()
            .map(|(f, b)| (f.clone(), b.spent_cents))
            .collect();
        return Ok((raised, spent));
    }
    let Some(window) = period.book else {
        return Ok(Default::default());
    };
    let raised =
        raised_from_data(db, config, from_unix(window.start), from_unix(window.end)).await?;
    let spent = super::shared::window_lines(db, config, window, None)
        .await?
        .by_fund();
    Ok((raised, spent))
}

// ---- storing ------------------------------------------------------------------------------

/// One `ensure` at a time in this process (other instances are kept apart by `book_locks`).
static ENSURING: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// What [`ensure`] and [`rebuild`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ensured {
    /// Months computed and stored.
    pub stored: u64,
    /// Months another instance had stored meanwhile.
    pub skipped: u64,
    /// Days of busy seconds computed and stored ([`super::days`]).
    pub days: u64,
    /// Where the time went (wall clock, milliseconds).
    pub phases: Phases,
}

/// The time [`ensure`] or [`rebuild`] spent in each phase, in milliseconds of wall clock
/// (monotonic; summed over the months). A month is read while the one before it is written,
/// so the months' phases together can exceed their wall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Storing the days ([`super::days::ensure_days`]).
    pub days_ms: u64,
    /// Reading a month's busy seconds and computing its lines.
    pub lines_ms: u64,
    /// Reading a month's busy seconds per job and computing its jobs.
    pub jobs_ms: u64,
    /// Reading the rest of a month's facts: donations, the last 30 days before its end.
    pub other_facts_ms: u64,
    /// Writing the months' jobs (`book_month_jobs`).
    pub write_jobs_ms: u64,
    /// The rest of writing the months: the lock, lines, funds, the months after, the commit.
    pub write_other_ms: u64,
}

impl Phases {
    fn add(&mut self, o: &Phases) {
        self.days_ms += o.days_ms;
        self.lines_ms += o.lines_ms;
        self.jobs_ms += o.jobs_ms;
        self.other_facts_ms += o.other_facts_ms;
        self.write_jobs_ms += o.write_jobs_ms;
        self.write_other_ms += o.write_other_ms;
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Computes and stores every month over at `now` that is missing or stale under this config,
/// oldest first. `progress(month, done, total)` is called after each month.
pub async fn ensure<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    config: &Config,
    now: DateTime<Utc>,
    progress: impl FnMut(Month, usize, usize),
) -> Result<Ensured, BooksError> {
    run(db, config, now, None, progress).await
}

/// Recomputes and stores every month over at `now` from `from` (default: the ledger's first),
/// and every day from its first, whatever is stored, then everything [`ensure`] would; first
/// it recounts the longest step's bound from the steps ([`super::steps::recount_longest_step`]).
pub async fn rebuild<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    config: &Config,
    now: DateTime<Utc>,
    from: Option<Month>,
    progress: impl FnMut(Month, usize, usize),
) -> Result<Ensured, BooksError> {
    super::steps::recount_longest_step(db).await?;
    run(
        db,
        config,
        now,
        Some(from.unwrap_or(first_month(config))),
        progress,
    )
    .await
}

async fn run<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    config: &Config,
    now: DateTime<Utc>,
    force_from: Option<Month>,
    mut progress: impl FnMut(Month, usize, usize),
) -> Result<Ensured, BooksError> {
    let mut done = Ensured::default();
    let _guard = ENSURING.lock().await;
    // The days first: the months are then summed from them.
    let force_days = force_from.map(|m| m.span().start);
    let started = std::time::Instant::now();
    done.days = super::days::ensure_days(db, now, force_days).await?;
    done.phases.days_ms = ms(started.elapsed());
    let first = first_month(config);
    let last = last_closed(now);
    if last < first {
        return Ok(done);
    }
    let fp = fingerprint(config);
    let st = status(db, &fp, last).await?;
    let mut todo = Vec::new();
    let mut reopened = false;
    for m in months_from(first, last) {
        let forced = force_from.is_some_and(|f| m >= f);
        // A month after a recomputed one is recomputed too when it is missing; stored ones
        // only get their figures at the end corrected (in the same transaction).
        let needed = forced || !st.get(&m).is_some_and(|s| s.fresh);
        if needed {
            todo.push((m, forced));
            reopened = true;
        } else if reopened && !st.contains_key(&m) {
            todo.push((m, false));
        }
    }
    // On PostgreSQL each month is read and computed while the one before it is written: the
    // two overlap (the server reads one month's steps while it writes the other's rows), and a
    // month's write still comes after the one before it, whose sums to date it adds to its own.
    // SQLite, one writer and its reads in this process, measured faster one after the other.
    let overlap = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let total = todo.len();
    let mut next = match todo.first() {
        Some(&(m, _)) => prepare_month(db, config, m, &mut done.phases).await?,
        None => None,
    };
    for (i, &(m, forced)) in todo.iter().enumerate() {
        let (mut writing, mut reading) = (Phases::default(), Phases::default());
        let write = async {
            match next.take() {
                Some((generation, books)) => {
                    write_prepared(
                        db,
                        config,
                        &fp,
                        generation,
                        forced,
                        now,
                        &books,
                        &mut writing,
                    )
                    .await
                }
                None => Ok(false),
            }
        };
        let read_next = async {
            match todo.get(i + 1) {
                Some(&(m, _)) => prepare_month(db, config, m, &mut reading).await,
                None => Ok(None),
            }
        };
        let (written, following) = if overlap {
            tokio::join!(write, read_next)
        } else {
            (write.await, read_next.await)
        };
        let written = written?;
        next = following?;
        done.phases.add(&writing);
        done.phases.add(&reading);
        if written {
            done.stored += 1;
        } else {
            done.skipped += 1;
        }
        progress(m, i + 1, total);
    }
    Ok(done)
}

/// What a closed month's books are computed from, read from the data: its lines, its jobs,
/// its donation sums, and the cost per fund of the parts of its last 30 days that lie in the
/// month before or in it (each month part rounded on its own).
pub struct MonthFacts {
    pub month: Month,
    pub window: Span,
    pub costs: WindowCosts,
    pub jobs: BTreeMap<JobKey, JobCost>,
    pub raised: BTreeMap<String, Raised>,
    /// Per part of the last 30 days, in time order: its cost per fund, or `None` for the
    /// month's own window (its cost is that of `costs`).
    pub cost_30_parts: Vec<Option<BTreeMap<String, i64>>>,
}

/// A month's books as stored: its lines and jobs, and per fund (config order) its sums of the
/// month; the figures to date are added from the month before when they are written.
#[derive(Clone, Debug)]
pub struct MonthBooks {
    pub month: Month,
    pub costs: WindowCosts,
    pub jobs: BTreeMap<JobKey, JobCost>,
    pub funds: Vec<(String, FundMonthSums)>,
}

/// One fund's sums of one month, before the sums to date are known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FundMonthSums {
    pub raised: Raised,
    pub spent_cents: i64,
    pub opening_balance_cents: i64,
    pub cost_30_days_cents: i64,
}

/// Reads what `month`'s books are computed from (`None` before `ledger_start`).
async fn read_facts(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    generation: i64,
    phases: &mut Phases,
) -> Result<Option<MonthFacts>, BooksError> {
    let Some(window) = book_window(config, month) else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    // Shared with the reads of the month that the store cannot serve yet (books::shared).
    let costs = super::shared::window_lines(db, config, window, Some(generation)).await?;
    phases.lines_ms += ms(started.elapsed());
    let started = std::time::Instant::now();
    let terms = super::terms::WindowTerms::prepare(config, window);
    let jobs = super::jobs::window_jobs(db, config, &terms).await?;
    phases.jobs_ms += ms(started.elapsed());
    let started = std::time::Instant::now();
    let raised =
        raised_from_data(db, config, from_unix(window.start), from_unix(window.end)).await?;
    let mut cost_30_parts = Vec::new();
    for part in last_30_parts(config, window) {
        cost_30_parts.push(if part == window {
            None
        } else {
            // The part in the month before ends with it: shared too.
            Some(
                super::shared::window_lines(db, config, part, None)
                    .await?
                    .by_fund(),
            )
        });
    }
    phases.other_facts_ms += ms(started.elapsed());
    Ok(Some(MonthFacts {
        month,
        window,
        costs,
        jobs,
        raised,
        cost_30_parts,
    }))
}

/// The 30 days before the end of `window` (a month's books window), from `ledger_start`, split
/// at month boundaries.
fn last_30_parts(config: &Config, window: Span) -> Vec<Span> {
    Span::new(window.end - 30 * 86_400, window.end)
        .intersect(Span::new(config.ledger_start.timestamp(), window.end))
        .map(split_months)
        .unwrap_or_default()
}

/// A month's books from its facts: no database, no clock.
pub(crate) fn compute_month(config: &Config, facts: MonthFacts) -> Result<MonthBooks, BooksError> {
    let spent = facts.costs.by_fund();
    let mut cost_30: BTreeMap<String, i64> = BTreeMap::new();
    for part in &facts.cost_30_parts {
        for (fund, c) in part.as_ref().unwrap_or(&spent) {
            let sum = cost_30.entry(fund.clone()).or_insert(0);
            *sum = crate::money::add_cents(*sum, *c)?;
        }
    }
    let funds = config
        .funds
        .iter()
        .map(|f| {
            (
                f.slug.clone(),
                FundMonthSums {
                    raised: facts.raised.get(&f.slug).copied().unwrap_or_default(),
                    spent_cents: spent.get(&f.slug).copied().unwrap_or(0),
                    opening_balance_cents: f.opening_balance_cents,
                    cost_30_days_cents: cost_30.get(&f.slug).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    Ok(MonthBooks {
        month: facts.month,
        costs: facts.costs,
        jobs: facts.jobs,
        funds,
    })
}

/// Each fund's stored figures, given the sums `(net, spent)` to the end of the month before.
pub(crate) fn fund_books(
    books: &MonthBooks,
    before: &BTreeMap<String, (i64, i64)>,
) -> Vec<(String, FundBook)> {
    books
        .funds
        .iter()
        .map(|(fund, s)| {
            let (net_before, spent_before) = before.get(fund).copied().unwrap_or((0, 0));
            let net_to_date = net_before + s.raised.net_cents;
            let spent_to_date = spent_before + s.spent_cents;
            let book = FundBook {
                raised: s.raised,
                spent_cents: s.spent_cents,
                net_to_date_cents: net_to_date,
                spent_to_date_cents: spent_to_date,
                balance_cents: s.opening_balance_cents + net_to_date - spent_to_date,
                cost_30_days_cents: s.cost_30_days_cents,
            };
            (fund.clone(), book)
        })
        .collect()
}

/// How each fund's month sums `(net, spent)` moved against those stored before: the months
/// after it carry them in their sums to date. Funds that did not move are left out.
pub(crate) fn fund_deltas(
    books: &MonthBooks,
    old: &BTreeMap<String, (i64, i64)>,
) -> Vec<(String, i64, i64)> {
    books
        .funds
        .iter()
        .filter_map(|(fund, s)| {
            let (old_net, old_spent) = old.get(fund)?;
            let (dn, ds) = (s.raised.net_cents - old_net, s.spent_cents - old_spent);
            (dn != 0 || ds != 0).then(|| (fund.clone(), dn, ds))
        })
        .collect()
}

/// Reads `month`'s facts and computes its books: the generation first, then the data (a write
/// committed in between leaves the month stale rather than wrongly fresh). `None` before
/// `ledger_start`.
async fn prepare_month(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    phases: &mut Phases,
) -> Result<Option<(i64, MonthBooks)>, BooksError> {
    let generation = super::shared::generation(db, month).await?;
    let Some(facts) = read_facts(db, config, month, generation, phases).await? else {
        return Ok(None);
    };
    Ok(Some((generation, compute_month(config, facts)?)))
}

/// Stores a month computed by [`prepare_month`] from `generation`. `false` when an equally
/// fresh result was stored meanwhile (by another instance).
#[allow(clippy::too_many_arguments)]
async fn write_prepared<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    config: &Config,
    fp: &str,
    generation: i64,
    force: bool,
    now: DateTime<Utc>,
    books: &MonthBooks,
    phases: &mut Phases,
) -> Result<bool, BooksError> {
    let first = books.month <= first_month(config);
    let (started, jobs_before) = (std::time::Instant::now(), phases.write_jobs_ms);
    let written = write_month(db, fp, generation, force, first, now, books, phases).await;
    phases.write_other_ms +=
        ms(started.elapsed()).saturating_sub(phases.write_jobs_ms - jobs_before);
    written
}

/// Writes a month's books in one transaction under the `books` lock: replaces what is stored
/// for it (unless it is as fresh and not forced), adds the sums to date of the month before
/// (read under the lock; `first` for the ledger's first month) and corrects the months after
/// by what moved. `false` when nothing was written. The time of writing the jobs goes to
/// `phases`.
#[allow(clippy::too_many_arguments)]
async fn write_month<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    fp: &str,
    generation: i64,
    force: bool,
    first: bool,
    now: DateTime<Utc>,
    books: &MonthBooks,
    phases: &mut Phases,
) -> Result<bool, BooksError> {
    let month = books.month;
    let txn = crate::db::begin_write(db).await?;
    crate::db::take_lock(&txn, "books").await?;
    use book_months::Column as B;
    let existing = book_months::Entity::find()
        .filter(B::Fingerprint.eq(fp))
        .filter(B::Month.eq(month.to_string()))
        .one(&txn)
        .await?;
    let mut old: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    if let Some(e) = &existing {
        if !force && e.generation >= generation {
            txn.rollback().await?;
            return Ok(false);
        }
        for (fund, f) in load_funds(&txn, e.id).await? {
            old.insert(fund, (f.raised.net_cents, f.spent_cents));
        }
        // Its lines, funds and jobs go with it (ON DELETE CASCADE).
        book_months::Entity::delete_by_id(e.id).exec(&txn).await?;
    }
    // The sums to the end of the month before, read under the lock.
    let mut before: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    if !first {
        let prev = book_months::Entity::find()
            .filter(B::Fingerprint.eq(fp))
            .filter(B::Month.eq(month.prev().to_string()))
            .one(&txn)
            .await?;
        match prev {
            Some(p) => {
                for (fund, f) in load_funds(&txn, p.id).await? {
                    before.insert(fund, (f.net_to_date_cents, f.spent_to_date_cents));
                }
            }
            None => {
                // Months are stored oldest first; without the one before, the sums are
                // unknown, so this month waits for it.
                txn.rollback().await?;
                return Ok(false);
            }
        }
    }
    let row = book_months::ActiveModel {
        fingerprint: Set(fp.to_string()),
        month: Set(month.to_string()),
        generation: Set(generation),
        computed_at: Set(now),
        ..Default::default()
    };
    let inserted = book_months::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([B::Fingerprint, B::Month])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let id = book_months::Entity::find()
        .filter(B::Fingerprint.eq(fp))
        .filter(B::Month.eq(month.to_string()))
        .select_only()
        .column(B::Id)
        .into_tuple::<i64>()
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the month just stored".into()))?;
    let mut lines: Vec<book_month_lines::ActiveModel> = Vec::new();
    for l in &books.costs.lines {
        lines.push(book_month_lines::ActiveModel {
            book_month_id: Set(id),
            kind: Set(if l.idle { "idle" } else { "jobset" }.to_string()),
            machine: Set(l.machine.clone()),
            jobset: Set(l.jobset.clone()),
            pool: Set(l.pool.clone()),
            fund: Set(Some(l.fund.clone())),
            busy_seconds: Set(l.busy_seconds),
            cost_cents: Set(l.cost_cents),
            ..Default::default()
        });
    }
    for u in &books.costs.unpriced {
        lines.push(book_month_lines::ActiveModel {
            book_month_id: Set(id),
            kind: Set("unpriced".to_string()),
            machine: Set(u.machine.clone()),
            jobset: Set(Some(u.jobset.clone())),
            pool: Set(None),
            fund: Set(None),
            busy_seconds: Set(u.busy_seconds),
            cost_cents: Set(0),
            ..Default::default()
        });
    }
    for chunk in lines.chunks(1000) {
        book_month_lines::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    let started = std::time::Instant::now();
    super::jobs::insert_rows(&txn, id, &books.jobs).await?;
    phases.write_jobs_ms += ms(started.elapsed());
    let funds: Vec<book_month_funds::ActiveModel> = fund_books(books, &before)
        .into_iter()
        .map(|(fund, f)| book_month_funds::ActiveModel {
            book_month_id: Set(id),
            fund: Set(fund),
            gross_cents: Set(f.raised.gross_cents),
            fees_cents: Set(f.raised.fees_cents),
            net_cents: Set(f.raised.net_cents),
            spent_cents: Set(f.spent_cents),
            net_to_date_cents: Set(f.net_to_date_cents),
            spent_to_date_cents: Set(f.spent_to_date_cents),
            balance_cents: Set(f.balance_cents),
            cost_30_days_cents: Set(f.cost_30_days_cents),
            ..Default::default()
        })
        .collect();
    book_month_funds::Entity::insert_many(funds)
        .exec_without_returning(&txn)
        .await?;
    // The months after it carry its figures in their sums: correct them by the difference.
    let deltas = fund_deltas(books, &old);
    if !deltas.is_empty() {
        let later: Vec<i64> = book_months::Entity::find()
            .filter(B::Fingerprint.eq(fp))
            .filter(B::Month.gt(month.to_string()))
            .select_only()
            .column(B::Id)
            .into_tuple()
            .all(&txn)
            .await?;
        use book_month_funds::Column as F;
        for chunk in later.chunks(500) {
            for (fund, dn, ds) in &deltas {
                book_month_funds::Entity::update_many()
                    .col_expr(F::NetToDateCents, Expr::col(F::NetToDateCents).add(*dn))
                    .col_expr(F::SpentToDateCents, Expr::col(F::SpentToDateCents).add(*ds))
                    .col_expr(F::BalanceCents, Expr::col(F::BalanceCents).add(*dn - *ds))
                    .filter(F::Fund.eq(fund.as_str()))
                    .filter(F::BookMonthId.is_in(chunk.iter().copied()))
                    .exec(&txn)
                    .await?;
            }
        }
    }
    crate::pause_points::reached("books.month_written").await;
    txn.commit().await?;
    Ok(true)
}

// ---- status and the keeper ----------------------------------------------------------------

/// `buildfund books status`.
#[derive(Clone, Debug, Serialize)]
pub struct BooksStatus {
    pub fingerprint: String,
    pub months: Vec<(Month, MonthState)>,
    /// Months stored under other fingerprints (older configs), kept until deleted.
    pub other_fingerprints: u64,
    /// The stored days of busy seconds.
    pub days: super::days::DaysStatus,
}

pub async fn books_status(
    db: &impl ConnectionTrait,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<BooksStatus, BooksError> {
    let fp = fingerprint(config);
    let first = first_month(config);
    let last = last_closed(now);
    let st = status(db, &fp, last).await?;
    let months = if last < first {
        Vec::new()
    } else {
        months_from(first, last)
            .into_iter()
            .map(|m| {
                let state = match st.get(&m) {
                    Some(s) if s.fresh => MonthState::Stored,
                    Some(_) => MonthState::Stale,
                    None => MonthState::Missing,
                };
                (m, state)
            })
            .collect()
    };
    let other_fingerprints = book_months::Entity::find()
        .filter(book_months::Column::Fingerprint.ne(fp.as_str()))
        .count(db)
        .await?;
    Ok(BooksStatus {
        fingerprint: fp,
        months,
        other_fingerprints,
        days: super::days::days_status(db, now).await?,
    })
}

/// How often the keeper looks for stale or missing months without being woken.
pub const KEEPER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The background keeper of `serve`: stores what is missing or stale at start (a new config
/// recomputes here, while reads compute from the data), then after local writes (a second
/// later) and every [`KEEPER_INTERVAL`] (writes of other instances), each time at `clock`'s
/// now; then the open month's day of jobs ([`super::job_days::store_job_day`]). Runs as long as the runtime does, in `flights` (the server's), so that a month it
/// computes is shared with the reads of it ([`super::shared`]).
pub async fn keep<C: ConnectionTrait + TransactionTrait>(
    db: C,
    config: std::sync::Arc<Config>,
    clock: crate::clock::Clock,
    flights: std::sync::Arc<super::shared::Flights>,
) {
    loop {
        let ensured = flights.scope(ensure(&db, &config, clock.now(), |_, _, _| {}));
        match ensured.await {
            Ok(e) if e.stored > 0 || e.days > 0 => {
                tracing::info!(stored = e.stored, days = e.days, "month books stored")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "storing the month books failed"),
        }
        // The open month's day of jobs, for the reads of its cost per job (`job_days`).
        if let Err(e) = super::job_days::store_job_day(&db, clock.now()).await {
            tracing::warn!(error = %e, "storing the open month's day of jobs failed");
        }
        tokio::select! {
            _ = super::stale::WAKE.notified() => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            _ = tokio::time::sleep(KEEPER_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
