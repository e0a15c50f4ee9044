//! The in-memory [`Gate`]: the latest evaluation for the
//! hot path, refreshed on demand and on a timer; state changes are recorded in `gate_events`
//! and handed to the [`ChangeSink`]s (the outgoing actions).
use crate::calendar::rfc3339;
use crate::config::Config;
use crate::gate::evaluate::evaluate;
use crate::gate::states::{PoolGate, Snapshot, State};
use buildfund_entity::gate_events;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
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

/// The last state recorded for each pool.
async fn recorded_states(db: &impl ConnectionTrait) -> Result<HashMap<String, State>, DbErr> {
    let rows = gate_events::Entity::find()
        .filter(gate_events::Column::Kind.eq("state"))
        .order_by_asc(gate_events::Column::Id)
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
        out.insert(r.pool, s);
    }
    Ok(out)
}

/// Receives every state change (outgoing webhooks, Hydra).
pub trait ChangeSink: Send + Sync {
    fn changed(&self, changes: &[Change], snapshot: &Snapshot);
    /// Called after every successful refresh, to retry what failed before.
    fn tick(&self, _snapshot: &Snapshot) {}
}

/// The in-memory gate: the latest snapshot for the hot path, refreshed on demand and on a
/// timer; `stale` when the last refresh failed.
pub struct Gate {
    config: Arc<Config>,
    current: RwLock<Arc<Current>>,
    refresh_lock: tokio::sync::Mutex<Option<HashMap<String, State>>>,
    sinks: RwLock<Vec<Arc<dyn ChangeSink>>>,
}

/// What the hot path reads.
pub struct Current {
    pub snapshot: Option<Snapshot>,
    pub stale: bool,
}

impl Gate {
    pub fn new(config: Arc<Config>) -> Gate {
        Gate {
            config,
            current: RwLock::new(Arc::new(Current {
                snapshot: None,
                stale: true,
            })),
            refresh_lock: tokio::sync::Mutex::new(None),
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

    /// Evaluates every pool now, records the state changes and publishes the snapshot. On a
    /// database error the last snapshot stays and is marked stale.
    pub async fn refresh(&self, db: &impl ConnectionTrait) -> Result<Vec<Change>, DbErr> {
        let mut last = self.refresh_lock.lock().await;
        let result = self.refresh_locked(db, &mut last).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "gate refresh failed; answering from the last snapshot (stale)");
            self.mark_stale();
        }
        result
    }

    async fn refresh_locked(
        &self,
        db: &impl ConnectionTrait,
        last: &mut Option<HashMap<String, State>>,
    ) -> Result<Vec<Change>, DbErr> {
        if last.is_none() {
            *last = Some(recorded_states(db).await?);
        }
        let states = last.as_mut().expect("loaded");
        let snapshot = evaluate(db, &self.config, Utc::now()).await?;
        let mut changes = Vec::new();
        for (slug, g) in &snapshot.pools {
            let before = states.get(slug).copied();
            if before == Some(g.state) {
                continue;
            }
            let row = gate_events::ActiveModel {
                at: Set(snapshot.at),
                pool: Set(slug.clone()),
                kind: Set("state".into()),
                from_state: Set(before.map(|s| s.as_str().to_string())),
                to_state: Set(Some(g.state.as_str().to_string())),
                actor: Set(None),
                reason: Set(g.reason.clone()),
                until: Set(None),
                details: Set(Some(
                    serde_json::to_string(g).unwrap_or_else(|_| "{}".into()),
                )),
                ..Default::default()
            }
            .insert(db)
            .await?;
            states.insert(slug.clone(), g.state);
            changes.push(Change {
                event: "gate.state_changed",
                id: row.id,
                pool: slug.clone(),
                from: before,
                to: g.state,
                at: rfc3339(snapshot.at),
                gate: g.clone(),
            });
        }
        let sinks = self.sinks.read().expect("sinks lock").clone();
        for sink in &sinks {
            if !changes.is_empty() {
                sink.changed(&changes, &snapshot);
            }
            sink.tick(&snapshot);
        }
        *self.current.write().expect("gate lock") = Arc::new(Current {
            snapshot: Some(snapshot),
            stale: false,
        });
        Ok(changes)
    }
}
