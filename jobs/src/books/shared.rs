//! One computation per figure, shared (README, "Stored books"). The cost lines of a month that
//! is over and that the store cannot serve (stale or missing) are computed once per instance: a
//! read that finds the same month already being computed — by the keeper or by another read —
//! waits for that computation instead of starting its own, and every waiter gets its result.
//! The result is then kept (a few windows of them) for the keeper, which stores the month from
//! it, and for the reads that come before it is stored. The same holds for any window that
//! ends with its month (the part of a month in the last 30 days before the next month began).
//!
//! A computation is known by the configuration's fingerprint, the window and its month's stale
//! generation (`book_stale`, read before the data). A write of steps or donations dated in a
//! month that is over bumps that generation in its own transaction, so a read that comes after
//! the write sees the new generation and never joins, nor takes the kept result of, a
//! computation that may have missed the write. Only windows that end with their month (so the
//! month is over for the reader) are shared: a write into the open month does not bump its
//! generation, so a month to date is always computed by its own read.
//!
//! The registry ([`Flights`]) belongs to one instance (one database): the server makes one and
//! runs every request and the keeper inside [`Flights::scope`]. Outside a scope (the command
//! line, the library's own tests) every read computes on its own, as before. Other instances
//! have their own registries; the store's lock rows already keep their writes apart.
//!
//! The heavy computations of one instance also take a permit of a semaphore sized below the
//! connection pool, so that reads of many different months cannot hold every connection and
//! starve the keeper and the writers (whose requests would then time out waiting for one).
use crate::books::ledger::{lines_from_steps, WindowCosts};
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

/// How many computed months are kept after their computation ended.
const KEPT: usize = 8;

/// Connections of the pool left to the writers, the keeper's other queries and light reads.
const RESERVED_CONNECTIONS: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    fingerprint: String,
    window: Span,
    generation: i64,
}

/// The result of one computation: `None` when it failed (each waiter then computes on its own).
type Cell = Arc<OnceCell<Option<Arc<WindowCosts>>>>;

/// The shared computations of one instance.
pub struct Flights {
    running: Mutex<HashMap<Key, Cell>>,
    kept: Mutex<VecDeque<(Key, Arc<WindowCosts>)>>,
    heavy: Semaphore,
    computations: AtomicU64,
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
            heavy: Semaphore::new(permits as usize),
            computations: AtomicU64::new(0),
            joined: AtomicU64::new(0),
        })
    }

    /// Runs `f` with this registry: the month computations it needs are shared with everything
    /// else running in a scope of the same registry.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        FLIGHTS.scope(self.clone(), f).await
    }

    /// Months computed from the steps so far (`buildfund_books_computations_total`).
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// Reads that waited for a computation already running instead of starting their own
    /// (`buildfund_books_computations_joined_total`).
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    fn kept(&self, key: &Key) -> Option<Arc<WindowCosts>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|(k, _)| k == key).map(|(_, c)| c.clone())
    }

    fn keep(&self, key: Key, costs: Arc<WindowCosts>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(k, _)| k != &key);
        // Older generations of the same window can no longer be asked for.
        kept.retain(|(k, _)| !(k.window == key.window && k.fingerprint == key.fingerprint));
        kept.push_back((key, costs));
        while kept.len() > KEPT {
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

/// The generation `month` is marked with (0 when never marked).
pub(crate) async fn generation(db: &impl ConnectionTrait, month: Month) -> Result<i64, BooksError> {
    Ok(book_stale::Entity::find_by_id(month.to_string())
        .one(db)
        .await?
        .map_or(0, |s| s.generation))
}

/// The cost lines of `window` (inside one month, clipped to `ledger_start`) from the data, as
/// [`lines_from_steps`] gives them: when the window ends with its month, shared with every
/// other computation of the same window in this instance (see the module). `generation` is
/// the month's stale generation when the caller has read it before its other data (the
/// keeper), else it is read here.
pub(crate) async fn window_lines(
    db: &impl ConnectionTrait,
    config: &Config,
    window: Span,
    generation_read: Option<i64>,
) -> Result<WindowCosts, BooksError> {
    let month = Month::of(from_unix(window.start));
    // Shared only inside a registry's scope, and only a window that ends with its month.
    let flights = FLIGHTS
        .try_with(|f| f.clone())
        .ok()
        .filter(|_| !window.is_empty() && window.end == month.span().end);
    let key = match flights {
        Some(_) => Some(Key {
            generation: match generation_read {
                Some(g) => g,
                None => generation(db, month).await?,
            },
            fingerprint: fingerprint(config),
            window,
        }),
        None => None,
    };
    let (Some(flights), Some(key)) = (flights, key) else {
        return lines_from_steps(db, config, window).await;
    };
    let generation = key.generation;
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
            let span = tracing::info_span!(
                "books.window_lines",
                month = %month,
                from = window.start,
                generation
            );
            let computed = {
                use tracing::Instrument;
                lines_from_steps(db, config, window).instrument(span).await
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
            generation: g,
        };
        flights.keep(key(1), Arc::new(WindowCosts::default()));
        flights.keep(key(2), Arc::new(WindowCosts::default()));
        assert!(flights.kept(&key(1)).is_none());
        assert!(flights.kept(&key(2)).is_some());
        for i in 0..20 {
            let mut k = key(1);
            k.window = Month::parse("2020-01").unwrap().span();
            k.generation = i;
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
    fn the_heavy_computations_leave_connections_to_the_rest() {
        assert_eq!(Flights::new(10).heavy.available_permits(), 8);
        assert_eq!(Flights::new(2).heavy.available_permits(), 1);
        assert_eq!(Flights::new(1).heavy.available_permits(), 1);
    }
}
