//! One computation per figure, shared (README, "Stored books"). The cost lines of a window
//! that the store cannot serve — a month that is over and stale or missing, the open month to
//! date, the part of a month in the last 30 days — are computed once per instance: a read that
//! finds the same window already being computed — by the keeper, by the gate's refresh or by
//! another read — waits for that computation instead of starting its own, and every waiter
//! gets its result. The result is then kept (a few windows of them) for the keeper, which
//! stores the month from it, and for the reads that come before it is stored. A month of 31
//! days is computed with its last 30 days (`[2nd, 1st of the next)`), from one read of its
//! steps: the reads of its funds and the keeper ask for both, and both are kept.
//!
//! A computation is known by the configuration's fingerprint, the window (its start and end,
//! whole seconds) and a generation of the data it is computed from, read before the data:
//!
//! - a window that ends with its month (the month is over for the reader): the month's stale
//!   generation (`book_stale`). A write of steps or donations dated in a month that is over
//!   bumps it in its own transaction.
//! - any other window (a month to date, a month as of an instant inside it): the sum of the
//!   stale generations of the days it overlaps (`book_days`, [`super::days::generations`]).
//!   A write of steps bumps, in its own transaction, every day it touches up to the writer's
//!   day, so the sum grows with every write into the window. A write into the open month does
//!   not bump the month's generation, which is why the month's is not used there.
//!
//! So a read that comes after a write sees the new generation and never joins, nor takes the
//! kept result of, a computation that may have missed the write. The window's end is part of
//! the key: a month to date read at another second is another window (an hourly or monthly
//! machine's cost grows with it), computed on its own, so every reader gets exactly the
//! figures of a read from scratch at its own instant (the reads of one second share one
//! computation; the clock's second is the unit, as every window is in whole seconds).
//!
//! The registry ([`Flights`]) belongs to one instance (one database): the server makes one and
//! runs every request, the keeper and the gate's refreshes inside [`Flights::scope`]. Outside a
//! scope (the command line, the library's own tests) every read computes on its own, as
//! before. Other instances have their own registries; the store's lock rows already keep their
//! writes apart.
//!
//! The heavy computations of one instance also take a permit of a semaphore sized below the
//! connection pool, so that reads of many different months cannot hold every connection and
//! starve the keeper and the writers (whose requests would then time out waiting for one).
use crate::books::ledger::{lines_from_steps, lines_with_tail, WindowCosts};
use crate::books::store::fingerprint;
use crate::books::BooksError;
use crate::calendar::{from_unix, Month, Span};
use crate::config::Config;
use buildfund_entity::book_stale;
use sea_orm::{ConnectionTrait, EntityTrait};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, Semaphore};

/// How many computed months (windows that end with their month) are kept after their
/// computation ended.
const KEPT: usize = 8;

/// How many other windows (months to date) are kept: apart from the months, so that the reads
/// of the open month, a new window every second, do not push out the months the keeper is
/// about to store.
const KEPT_TO_DATE: usize = 4;

/// Connections of the pool left to the writers, the keeper's other queries and light reads.
const RESERVED_CONNECTIONS: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    fingerprint: String,
    window: Span,
    generation: Generation,
}

/// The generation of the data a window is computed from (see the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Generation {
    /// A window that ends with its month: the month's stale generation.
    Month(i64),
    /// Any other window: the sum of the stale generations of the days it overlaps.
    Days(i64),
}

/// Results kept after their computation ended, oldest first.
type Kept = Mutex<VecDeque<(Key, Arc<WindowCosts>)>>;

/// The result of one computation: `None` when it failed (each waiter then computes on its own).
type Cell = Arc<OnceCell<Option<Arc<WindowCosts>>>>;

/// The shared computations of one instance.
pub struct Flights {
    running: Mutex<HashMap<Key, Cell>>,
    kept: Kept,
    kept_to_date: Kept,
    heavy: Semaphore,
    computations: AtomicU64,
    computations_to_date: AtomicU64,
    joined: AtomicU64,
}

tokio::task_local! {
    static FLIGHTS: Arc<Flights>;
}

impl Flights {
    /// A registry for an instance whose pool holds `max_connections`.
    pub fn new(max_connections: u32) -> Arc<Flights> {
        let permits = max_connections.saturating_sub(RESERVED_CONNECTIONS).max(1);
        Arc::new(Flights {
            running: Mutex::new(HashMap::new()),
            kept: Mutex::new(VecDeque::new()),
            kept_to_date: Mutex::new(VecDeque::new()),
            heavy: Semaphore::new(permits as usize),
            computations: AtomicU64::new(0),
            computations_to_date: AtomicU64::new(0),
            joined: AtomicU64::new(0),
        })
    }

    /// Runs `f` with this registry: the month computations it needs are shared with everything
    /// else running in a scope of the same registry.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        FLIGHTS.scope(self.clone(), f).await
    }

    /// Windows (months, months to date) computed from the steps so far
    /// (`buildfund_books_computations_total`).
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// Of [`Flights::computations`], the windows that do not end with their month (months to
    /// date, `buildfund_books_computations_to_date_total`): the open month's reads and the
    /// gate's refreshes compute one whenever a second's window has days not stored fresh, so
    /// a steady rate of these is normal, unlike one of the months over.
    pub fn computations_to_date(&self) -> u64 {
        self.computations_to_date.load(Ordering::Relaxed)
    }

    /// Reads that waited for a computation already running instead of starting their own
    /// (`buildfund_books_computations_joined_total`).
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    /// Where results of `key`'s kind are kept, and how many.
    fn kept_of(&self, key: &Key) -> (&Kept, usize) {
        match key.generation {
            Generation::Month(_) => (&self.kept, KEPT),
            Generation::Days(_) => (&self.kept_to_date, KEPT_TO_DATE),
        }
    }

    fn kept(&self, key: &Key) -> Option<Arc<WindowCosts>> {
        let kept = self
            .kept_of(key)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|(k, _)| k == key).map(|(_, c)| c.clone())
    }

    fn keep(&self, key: Key, costs: Arc<WindowCosts>) {
        let (kept, bound) = self.kept_of(&key);
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        // Older generations of the same window can no longer be asked for.
        kept.retain(|(k, _)| !(k.window == key.window && k.fingerprint == key.fingerprint));
        kept.push_back((key, costs));
        while kept.len() > bound {
            kept.pop_front();
        }
    }

    /// The cell of `key`'s computation, and whether this call made it (leads it).
    fn cell(&self, key: &Key) -> (Cell, bool) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(key) {
            Some(c) => (c.clone(), false),
            None => {
                let c = Cell::default();
                running.insert(key.clone(), c.clone());
                (c, true)
            }
        }
    }

    fn done(&self, key: &Key, cell: &Cell) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            running.remove(key);
        }
    }
}

/// The part of a window that ends with its month in the last 30 days before the month's end,
/// when it is shorter than the window (a month of 31 days): the figures of the month's funds
/// at its end need both ([`super::funds::standing_with`], the store's `read_facts`).
fn last_30_days(key: &Key) -> Option<Span> {
    let w = key.window;
    let tail = Span::new(w.end.saturating_sub(30 * 86_400), w.end);
    (matches!(key.generation, Generation::Month(_)) && tail.start > w.start).then_some(tail)
}

/// The generation `month` is marked with (0 when never marked).
pub(crate) async fn generation(db: &impl ConnectionTrait, month: Month) -> Result<i64, BooksError> {
    Ok(book_stale::Entity::find_by_id(month.to_string())
        .one(db)
        .await?
        .map_or(0, |s| s.generation))
}

/// The cost lines of `window` (inside one month, clipped to `ledger_start` and to the reader's
/// instant) from the data, as [`lines_from_steps`] gives them, shared with every other
/// computation of the same window and generation in this instance (see the module).
/// `generation_read` is the month's stale generation when the caller has read it before its
/// other data (the keeper, for a window that ends with its month), else it is read here.
pub(crate) async fn window_lines(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
    generation_read: Option<i64>,
) -> Result<WindowCosts, BooksError> {
    let month = Month::of(from_unix(window.start));
    // Shared only inside a registry's scope.
    let flights = FLIGHTS
        .try_with(|f| f.clone())
        .ok()
        .filter(|_| !window.is_empty());
    let Some(flights) = flights else {
        return lines_from_steps(db, config, window).await;
    };
    let generation = if window.end == month.span().end {
        Generation::Month(match generation_read {
            Some(g) => g,
            None => generation(db, month).await?,
        })
    } else {
        Generation::Days(super::days::generations(db, window).await?)
    };
    let key = Key {
        fingerprint: fingerprint(config),
        window,
        generation,
    };
    if let Some(c) = flights.kept(&key) {
        return Ok((*c).clone());
    }
    let (cell, leads) = flights.cell(&key);
    if leads {
        // A computation of the key may have ended between the look above and the cell.
        if let Some(c) = flights.kept(&key) {
            let _ = cell.set(Some(c.clone()));
            flights.done(&key, &cell);
            return Ok((*c).clone());
        }
    }
    let mut failed: Option<BooksError> = None;
    let mut computed_here = false;
    let (failed_here, computing) = (&mut failed, &mut computed_here);
    let (shared, known) = (&flights, &key);
    let result = cell
        .get_or_init(|| async move {
            // The leader's computation (or, when the leader's request went away before it
            // ended, the next waiter's).
            *computing = true;
            let _permit = shared.heavy.acquire().await.ok();
            shared.computations.fetch_add(1, Ordering::Relaxed);
            if matches!(known.generation, Generation::Days(_)) {
                shared.computations_to_date.fetch_add(1, Ordering::Relaxed);
            }
            let span = tracing::info_span!(
                "books.window_lines",
                month = %month,
                from = window.start,
                to = window.end,
                generation = ?generation
            );
            let computed = {
                use tracing::Instrument;
                match last_30_days(known) {
                    // A month longer than 30 days: its last 30 days from the same read of the
                    // steps (the reads of a month's funds ask for them next), kept with it.
                    Some(tail) => lines_with_tail(db, config, window, tail)
                        .instrument(span)
                        .await
                        .map(|(whole, last_30)| {
                            let key = Key {
                                window: tail,
                                ..known.clone()
                            };
                            shared.keep(key, Arc::new(last_30));
                            whole
                        }),
                    None => lines_from_steps(db, config, window).instrument(span).await,
                }
            };
            match computed {
                Ok(c) => {
                    let c = Arc::new(c);
                    shared.keep(known.clone(), c.clone());
                    Some(c)
                }
                Err(e) => {
                    *failed_here = Some(e);
                    None
                }
            }
        })
        .await
        .clone();
    if computed_here {
        flights.done(&key, &cell);
    } else {
        flights.joined.fetch_add(1, Ordering::Relaxed);
    }
    match (result, failed) {
        (Some(c), _) => Ok((*c).clone()),
        (None, Some(e)) => Err(e),
        // The computation this read waited for failed: it tries once on its own.
        (None, None) => lines_from_steps(db, config, window).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_keeps_its_latest_generation_only() {
        let flights = Flights::new(10);
        let m = Month::parse("2026-10").unwrap().span();
        let key = |g| Key {
            fingerprint: "fp".into(),
            window: m,
            generation: Generation::Month(g),
        };
        flights.keep(key(1), Arc::new(WindowCosts::default()));
        flights.keep(key(2), Arc::new(WindowCosts::default()));
        assert!(flights.kept(&key(1)).is_none());
        assert!(flights.kept(&key(2)).is_some());
        for i in 0..20 {
            let mut k = key(1);
            k.window = Month::parse("2020-01").unwrap().span();
            k.generation = Generation::Month(i);
            k.fingerprint = format!("other {i}");
            flights.keep(k, Arc::new(WindowCosts::default()));
        }
        assert_eq!(
            flights.kept.lock().unwrap().len(),
            KEPT,
            "the kept results are bounded"
        );
    }

    #[test]
    fn months_to_date_are_kept_apart_from_the_months() {
        let flights = Flights::new(10);
        let month = Key {
            fingerprint: "fp".into(),
            window: Month::parse("2026-10").unwrap().span(),
            generation: Generation::Month(1),
        };
        flights.keep(month.clone(), Arc::new(WindowCosts::default()));
        let start = Month::parse("2026-11").unwrap().span().start;
        // A read of the open month every second: a new window each time.
        for s in 0..20 {
            let to_date = Key {
                fingerprint: "fp".into(),
                window: Span::new(start, start + 3600 + s),
                generation: Generation::Days(7),
            };
            flights.keep(to_date, Arc::new(WindowCosts::default()));
        }
        assert!(
            flights.kept(&month).is_some(),
            "the month the keeper stores is kept"
        );
        assert_eq!(flights.kept_to_date.lock().unwrap().len(), KEPT_TO_DATE);
        // The same window under another generation (a write came between) is not served.
        let newer = Key {
            fingerprint: "fp".into(),
            window: Span::new(start, start + 3600 + 19),
            generation: Generation::Days(8),
        };
        assert!(flights.kept(&newer).is_none());
    }

    #[test]
    fn the_heavy_computations_leave_connections_to_the_rest() {
        assert_eq!(Flights::new(10).heavy.available_permits(), 8);
        assert_eq!(Flights::new(2).heavy.available_permits(), 1);
        assert_eq!(Flights::new(1).heavy.available_permits(), 1);
    }
}
