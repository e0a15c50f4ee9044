//! The in-memory [`Gate`]: the latest evaluation for the hot path, refreshed on demand and on a
//! timer. A state change is claimed once across instances: it is a `gate_events` row whose
//! unique `claim` names the pool and the state event it follows, inserted with
//! `ON CONFLICT DO NOTHING` together with its webhook deliveries (`gate_deliveries`). Of
//! several instances that see the same change, the one whose insert lands owns it; the others
//! read it at their next refresh. Every refresh then hands the recorded states to the
//! [`ChangeSink`]s (webhook deliveries, Hydra), which act on what the database says.
use crate::calendar::rfc3339;
use crate::config::Config;
use crate::gate::evaluate::evaluate;
use crate::gate::states::{PoolGate, Snapshot, State};
use buildfund_entity::{gate_deliveries, gate_events};
use chrono::Utc;
use futures_util::FutureExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionSession, TransactionTrait,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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

/// The last state recorded for each pool, with the id of its event.
pub async fn recorded_states(
    db: &impl ConnectionTrait,
) -> Result<HashMap<String, (i64, State)>, DbErr> {
    use gate_events::Column as E;
    let latest: Vec<i64> = gate_events::Entity::find()
        .select_only()
        .column_as(E::Id.max(), "id")
        .filter(E::Kind.eq("state"))
        .group_by(E::Pool)
        .into_tuple()
        .all(db)
        .await?;
    let rows = gate_events::Entity::find()
        .filter(E::Id.is_in(latest))
        .all(db)
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let s = match r.to_state.as_deref() {
            Some("open") => State::Open,
            Some("warn") => State::Warn,
            Some("closed") => State::Closed,
            _ => continue,
        };
        out.insert(r.pool, (r.id, s));
    }
    Ok(out)
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
    current: RwLock<Arc<Current>>,
    refresh_lock: tokio::sync::Mutex<()>,
    sinks: RwLock<Vec<Arc<dyn ChangeSink>>>,
}

/// What the hot path reads.
pub struct Current {
    pub snapshot: Option<Snapshot>,
    pub stale: bool,
}

/// A panic's message.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

impl Gate {
    pub fn new(config: Arc<Config>) -> Gate {
        Gate {
            config,
            current: RwLock::new(Arc::new(Current {
                snapshot: None,
                stale: true,
            })),
            refresh_lock: tokio::sync::Mutex::new(()),
            sinks: RwLock::new(Vec::new()),
        }
    }

    pub fn add_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.sinks.write().expect("sinks lock").push(sink);
    }

    pub fn current(&self) -> Arc<Current> {
        self.current.read().expect("gate lock").clone()
    }

    fn mark_stale(&self) {
        let cur = self.current();
        if !cur.stale {
            *self.current.write().expect("gate lock") = Arc::new(Current {
                snapshot: cur.snapshot.clone(),
                stale: true,
            });
        }
    }

    /// Evaluates every pool now, records the state changes this instance claims and publishes
    /// the snapshot; answers those changes. On a database error, or a panic in the evaluation
    /// (logged as an error), the last snapshot stays and is marked stale.
    pub async fn refresh(
        &self,
        db: &(impl ConnectionTrait + TransactionTrait),
    ) -> Result<Vec<Change>, DbErr> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let result = std::panic::AssertUnwindSafe(self.refresh_locked(db))
            .catch_unwind()
            .await;
        match result {
            Ok(Ok(changes)) => Ok(changes),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "gate refresh failed; answering from the last snapshot (stale)");
                self.mark_stale();
                Err(e)
            }
            Err(panic) => {
                let msg = panic_message(panic.as_ref());
                tracing::error!(panic = %msg, "gate refresh panicked; answering from the last snapshot (stale)");
                self.mark_stale();
                Err(DbErr::Custom(format!("the gate refresh panicked: {msg}")))
            }
        }
    }

    async fn refresh_locked(
        &self,
        db: &(impl ConnectionTrait + TransactionTrait),
    ) -> Result<Vec<Change>, DbErr> {
        // The recorded states are read before evaluating, so a change this instance claims
        // comes from figures at least as new as the state it follows.
        let mut recorded = recorded_states(db).await?;
        // Until the gate has an error type of its own, the books' non-storage errors pass as
        // a storage fault here.
        let snapshot = evaluate(db, &self.config, Utc::now())
            .await
            .map_err(|e| match e {
                crate::books::BooksError::Db(db) => db,
                other => DbErr::Custom(other.to_string()),
            })?;
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
        *self.current.write().expect("gate lock") = Arc::new(Current {
            snapshot: Some(snapshot),
            stale: false,
        });
        Ok(changes)
    }
}

/// Records `g`'s state as the change after `before` (its event id and state) unless another
/// instance recorded a change after `before` already; with it, one delivery per configured
/// webhook, in one transaction. `None` when the claim was lost.
async fn claim_change(
    db: &impl TransactionTrait,
    config: &Config,
    snapshot: &Snapshot,
    g: &PoolGate,
    before: Option<(i64, State)>,
) -> Result<Option<Change>, DbErr> {
    use gate_events::Column as E;
    let claim = format!("{}#{}", g.pool, before.map(|b| b.0).unwrap_or(0));
    let txn = db.begin().await?;
    let row = gate_events::ActiveModel {
        at: Set(snapshot.at),
        pool: Set(g.pool.clone()),
        kind: Set("state".into()),
        from_state: Set(before.map(|b| b.1.as_str().to_string())),
        to_state: Set(Some(g.state.as_str().to_string())),
        actor: Set(None),
        reason: Set(g.reason.clone()),
        until: Set(None),
        details: Set(Some(
            serde_json::to_string(g).unwrap_or_else(|_| "{}".into()),
        )),
        claim: Set(Some(claim.clone())),
        ..Default::default()
    };
    let inserted = gate_events::Entity::insert(row)
        .on_conflict(OnConflict::column(E::Claim).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let id = gate_events::Entity::find()
        .filter(E::Claim.eq(claim.as_str()))
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("the state event {claim} disappeared")))?
        .id;
    let change = Change {
        event: "gate.state_changed",
        id,
        pool: g.pool.clone(),
        from: before.map(|b| b.1),
        to: g.state,
        at: rfc3339(snapshot.at),
        gate: g.clone(),
    };
    let body = serde_json::to_string(&change)
        .map_err(|e| DbErr::Custom(format!("cannot encode a gate change: {e}")))?;
    for (i, hook) in config.gate.webhooks.iter().enumerate() {
        gate_deliveries::Entity::insert(gate_deliveries::ActiveModel {
            event_id: Set(id),
            hook: Set(i as i32),
            url: Set(hook.url.clone()),
            body: Set(body.clone()),
            attempts: Set(0),
            created_at: Set(Utc::now()),
            lease_until: Set(None),
            holder: Set(None),
            delivered_at: Set(None),
            failed_at: Set(None),
            last_error: Set(None),
            ..Default::default()
        })
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(Some(change))
}
