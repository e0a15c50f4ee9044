//! The in-memory [`Gate`]: the latest evaluation for the hot path, refreshed on demand and on a
//! timer. A state change is claimed once across instances: it is a `gate_events` row whose
//! unique `claim` names the pool and the state event it follows, inserted with
//! `ON CONFLICT DO NOTHING` together with its webhook deliveries (`gate_deliveries`). Of
//! several instances that see the same change, the one whose insert lands owns it; the others
//! read it at their next refresh. Every refresh then hands the recorded states to the
//! [`ChangeSink`]s (webhook deliveries, Hydra), which act on what the database says.
use crate::books::shared::Flights;
use crate::clock::Clock;
use crate::config::Config;
use crate::failure::panic_message;
use crate::gate::evaluate::{evaluate, pool_slug};
use crate::gate::states::{DecisionTail, PoolGate, Snapshot, State};
use crate::gate::store::{claim_change, recorded_states};
use crate::gate::GateError;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tracing::Instrument;

/// A pool's state change, as recorded and sent out.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub event: &'static str,
    pub id: i64,
    pub pool: String,
    pub from: Option<State>,
    pub to: State,
    pub at: String,
    pub gate: PoolGate,
}

/// Acts on the recorded states after every refresh (outgoing webhooks, Hydra).
pub trait ChangeSink: Send + Sync {
    /// Called after every successful refresh with each pool's recorded state, so that what is
    /// pending (a delivery, a hold) is done, by whichever instance claims it.
    fn tick(&self, states: &HashMap<String, State>);
}

/// The in-memory gate: the latest snapshot for the hot path, refreshed on demand and on a
/// timer; `stale` when the last refresh failed.
pub struct Gate {
    config: Arc<Config>,
    /// What "now" is for each refresh.
    clock: Clock,
    current: RwLock<Arc<Current>>,
    refresh_lock: tokio::sync::Mutex<()>,
    sinks: RwLock<Vec<Arc<dyn ChangeSink>>>,
    /// The instance's shared computations the evaluation runs in, if any.
    flights: Option<Arc<Flights>>,
}

/// What the hot path reads.
pub struct Current {
    pub snapshot: Option<Snapshot>,
    pub stale: bool,
    /// Each pool's answer but its jobset, serialised once here rather than on every request.
    answers: HashMap<String, DecisionTail>,
    /// Whole answers of the `project:jobset`s asked since this snapshot was published, so that
    /// a scheduler asking again does not match the pools' patterns nor write the answer again
    /// (see [`Current::answer_of`]).
    bodies: AnswerCache,
}

/// At most this many answers are kept per snapshot ([`Current::answer_of`]): the names come
/// from anonymous callers, so the cache is bounded in entries and, by [`MAX_CACHED_KEY`], in
/// bytes (about 0.6 MiB with 425-byte answers); beyond it, answers are written per request, as
/// they are for a long name.
pub const MAX_CACHED_ANSWERS: usize = 1024;

/// The longest `project:jobset` (bytes) whose answer is kept.
pub const MAX_CACHED_KEY: usize = 128;

/// The answers of one snapshot by `project:jobset`, bounded (see [`MAX_CACHED_ANSWERS`]).
#[derive(Default)]
struct AnswerCache(RwLock<HashMap<Box<str>, bytes::Bytes>>);

impl Current {
    fn new(snapshot: Option<Snapshot>, stale: bool) -> Result<Current, GateError> {
        let mut answers = HashMap::new();
        if let Some(snapshot) = &snapshot {
            for (slug, g) in &snapshot.pools {
                let tail =
                    DecisionTail::new(g, stale).map_err(|source| GateError::EncodeAnswer {
                        pool: slug.clone(),
                        source,
                    })?;
                answers.insert(slug.clone(), tail);
            }
        }
        Ok(Current {
            snapshot,
            stale,
            answers,
            bodies: AnswerCache::default(),
        })
    }

    /// The body of `GET /api/v1/gate/{project}/{jobset}` for `jobset` in `pool`, as
    /// serialising its [`crate::gate::Decision`] gives it; `None` without a snapshot.
    pub fn answer(&self, jobset: &str, pool: &str) -> Option<Vec<u8>> {
        self.answers.get(pool).map(|tail| tail.body(jobset))
    }

    /// The body of `GET /api/v1/gate/{project}/{jobset}` (the path's segments decoded), the
    /// same bytes as [`Current::answer`] of `project:jobset` in its pool ([`pool_slug`] on
    /// `config`, the configuration this gate evaluates); `None` without a snapshot. Kept for
    /// the next request of the same jobset while this snapshot is the current one (bounded:
    /// [`MAX_CACHED_ANSWERS`], [`MAX_CACHED_KEY`]), so that a repeated request neither
    /// matches the pools' patterns nor allocates its key or its answer.
    pub fn answer_of(&self, config: &Config, project: &str, jobset: &str) -> Option<bytes::Bytes> {
        let len = project.len() + 1 + jobset.len();
        if len > MAX_CACHED_KEY {
            let key = format!("{project}:{jobset}");
            return self.answer(&key, pool_slug(config, &key)).map(Into::into);
        }
        // The key on the stack: a cached answer costs no allocation.
        let mut buf = [0u8; MAX_CACHED_KEY];
        buf[..project.len()].copy_from_slice(project.as_bytes());
        buf[project.len()] = b':';
        buf[project.len() + 1..len].copy_from_slice(jobset.as_bytes());
        let key = std::str::from_utf8(&buf[..len]).expect("two strings and a colon");
        if let Some(body) = self.bodies.0.read().expect("answers lock").get(key) {
            return Some(body.clone());
        }
        let body = bytes::Bytes::from(self.answer(key, pool_slug(config, key))?);
        let mut bodies = self.bodies.0.write().expect("answers lock");
        if bodies.len() < MAX_CACHED_ANSWERS {
            bodies.insert(key.into(), body.clone());
        }
        Some(body)
    }
}

impl Gate {
    /// A gate on `config` whose refreshes evaluate at `clock`'s now.
    pub fn new(config: Arc<Config>, clock: Clock) -> Gate {
        Gate {
            config,
            clock,
            current: RwLock::new(Arc::new(Current {
                snapshot: None,
                stale: true,
                answers: HashMap::new(),
                bodies: AnswerCache::default(),
            })),
            refresh_lock: tokio::sync::Mutex::new(()),
            sinks: RwLock::new(Vec::new()),
            flights: None,
        }
    }

    /// This gate, its refreshes computing the month to date (and any month the store cannot
    /// serve) in `flights`, shared with the reads and the keeper of the same instance
    /// ([`crate::books::shared`]).
    pub fn sharing(mut self, flights: Arc<Flights>) -> Gate {
        self.flights = Some(flights);
        self
    }

    /// The clock the refreshes read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn add_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.sinks.write().expect("sinks lock").push(sink);
    }

    pub fn current(&self) -> Arc<Current> {
        self.current.read().expect("gate lock").clone()
    }

    fn mark_stale(&self) -> Result<(), GateError> {
        let cur = self.current();
        if !cur.stale {
            *self.current.write().expect("gate lock") =
                Arc::new(Current::new(cur.snapshot.clone(), true)?);
        }
        Ok(())
    }

    /// Evaluates every pool at the clock's now, records the state changes this instance claims
    /// and publishes the snapshot; answers those changes. On an error (logged here, once, with
    /// its chain, in a `gate_refresh` span) the last snapshot stays and is marked stale.
    pub async fn refresh(&self, db: &DatabaseConnection) -> Result<Vec<Change>, GateError> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let span = tracing::info_span!("gate_refresh");
        let result = self.refresh_locked(db).instrument(span.clone()).await;
        if let Err(e) = &result {
            let _in = span.enter();
            tracing::warn!(error = %crate::failure::error_chain(e), "gate refresh failed; answering from the last snapshot (stale)");
            if let Err(e) = self.mark_stale() {
                tracing::warn!(error = %crate::failure::error_chain(&e), "the gate's answers could not be marked stale");
            }
        }
        result
    }

    async fn refresh_locked(&self, db: &DatabaseConnection) -> Result<Vec<Change>, GateError> {
        // The recorded states are read before evaluating, so a change this instance claims
        // comes from figures at least as new as the state it follows.
        let mut recorded = recorded_states(db).await?;
        let snapshot = self.evaluate(db).await?;
        let mut changes = Vec::new();
        let mut lost = false;
        for (slug, g) in &snapshot.pools {
            let before = recorded.get(slug).copied();
            if before.map(|b| b.1) == Some(g.state) {
                continue;
            }
            match claim_change(db, &self.config, &snapshot, g, before).await? {
                Some(change) => {
                    recorded.insert(slug.clone(), (change.id, g.state));
                    changes.push(change);
                }
                None => lost = true,
            }
        }
        if lost {
            // Another instance recorded a change first: act on what it recorded.
            recorded = recorded_states(db).await?;
        }
        let states: HashMap<String, State> =
            recorded.into_iter().map(|(k, (_, s))| (k, s)).collect();
        for c in &changes {
            tracing::info!(pool = %c.pool, from = ?c.from, to = %c.to, event = c.id, "gate state changed");
        }
        let sinks = self.sinks.read().expect("sinks lock").clone();
        for sink in &sinks {
            sink.tick(&states);
        }
        let current = Current::new(Some(snapshot), false)?;
        *self.current.write().expect("gate lock") = Arc::new(current);
        Ok(changes)
    }
}

impl Gate {
    /// Every pool's state at the clock's now, evaluated as a task of its own: a broken
    /// invariant of the books (a corrupt row) ends that task only and comes back as
    /// [`GateError::EvaluationPanicked`], so the gate answers from its last snapshot.
    async fn evaluate(&self, db: &DatabaseConnection) -> Result<Snapshot, GateError> {
        let (db, config, now) = (db.clone(), self.config.clone(), self.clock.now());
        let flights = self.flights.clone();
        let task = tokio::spawn(
            async move {
                // The task-local registry does not follow a spawned task: enter it here.
                match flights {
                    Some(f) => f.scope(evaluate(&db, &config, now)).await,
                    None => evaluate(&db, &config, now).await,
                }
            }
            .in_current_span(),
        );
        match task.await {
            Ok(snapshot) => Ok(snapshot?),
            Err(e) if e.is_panic() => Err(GateError::EvaluationPanicked(panic_message(
                e.into_panic().as_ref(),
            ))),
            Err(_) => Err(GateError::EvaluationCancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OTHER_POOL;
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;

    const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"
[[funds]]
slug = "general"
name = "General"
default = true
[[pools]]
slug = "cuda"
fund = "general"
jobsets = ["nixpkgs:cuda*"]
[[pools]]
slug = "docs"
fund = "general"
jobsets = ["*:docs", "nixpkgs:manual"]
"#;

    fn pool_gate(pool: &str, reason: &str) -> PoolGate {
        PoolGate {
            pool: pool.into(),
            fund: "general".into(),
            allow: true,
            state: State::Open,
            reason: reason.into(),
            spent_cents: 12345,
            budget_cents: None,
            projected_cents: 23456,
            fund_balance_cents: 100000,
            runway_days: Some(12),
            reserve_cents: 0,
            warn_at: Decimal::new(8, 1),
            paused: None,
            override_: None,
            as_of: "2026-11-25T01:00:00Z".into(),
        }
    }

    fn current(config: &Config, stale: bool) -> Current {
        let mut pools = BTreeMap::new();
        for slug in config
            .pools
            .iter()
            .map(|p| p.slug.as_str())
            .chain([OTHER_POOL])
        {
            pools.insert(slug.to_string(), pool_gate(slug, &format!("{slug} \"ok\"")));
        }
        let snapshot = Snapshot {
            at: "2026-11-25T01:00:00Z".parse().unwrap(),
            pools,
            funds: BTreeMap::new(),
        };
        Current::new(Some(snapshot), stale).unwrap()
    }

    /// The kept answers are the answers written per request, for the jobset's pool, asked
    /// once or again, short names or long, and the cache stops growing at its bound.
    #[test]
    fn a_kept_answer_is_the_answer_of_its_jobset() {
        let config = Config::parse(CONFIG, "test").unwrap();
        let long = "x".repeat(MAX_CACHED_KEY);
        let names: Vec<(&str, &str)> = vec![
            ("nixpkgs", "cuda"),
            ("nixpkgs", "cuda-12"),
            ("nixpkgs", "manual"),
            ("hydra", "docs"),
            ("nixpkgs", "trunk"),
            ("nix:pkgs", "cuda"),
            ("nixpkgs:cuda", ""),
            ("a\"b", "c\\d\u{1}\u{e9}"),
            ("nixpkgs", &long),
            (&long, "docs"),
        ];
        for stale in [false, true] {
            let c = current(&config, stale);
            for _ in 0..2 {
                for (project, jobset) in &names {
                    let key = format!("{project}:{jobset}");
                    let want = c.answer(&key, pool_slug(&config, &key)).unwrap();
                    let got = c.answer_of(&config, project, jobset).unwrap();
                    assert_eq!(got.as_ref(), want.as_slice(), "{key:?}");
                }
            }
            assert_eq!(c.bodies.0.read().unwrap().len(), names.len() - 2);
            for i in 0..2 * MAX_CACHED_ANSWERS {
                let jobset = format!("cuda-{i}");
                let key = format!("nixpkgs:{jobset}");
                let got = c.answer_of(&config, "nixpkgs", &jobset).unwrap();
                assert_eq!(got.as_ref(), c.answer(&key, "cuda").unwrap().as_slice());
            }
            assert_eq!(c.bodies.0.read().unwrap().len(), MAX_CACHED_ANSWERS);
        }
        // Without a snapshot, no answer.
        let empty = Current::new(None, true).unwrap();
        assert!(empty.answer_of(&config, "nixpkgs", "cuda").is_none());
    }
}
