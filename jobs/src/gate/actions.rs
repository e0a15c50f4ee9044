//! What the gate does outside on a state change: [`webhooks`] to `[[gate.webhooks]]`, and on
//! Hydra ([`crate::gate::hydra_web`]; `[hydra] url`, `act_on_gate`) disabling the closed pool's jobsets,
//! cancelling their queued builds, and restoring them when the pool opens again.
//!
//! Failures are retried (webhooks: with backoff; Hydra: on every gate refresh until done) and
//! each is recorded in `gate_events` (kinds `webhook_failed`, `hydra_failed`, `hydra_refused`),
//! so `GET /api/v1/gate/events` shows them. Both go through [`crate::http`]'s clients, which
//! follow no redirect to another origin.
use crate::config::{Config, Secrets};
use crate::gate::hydra_web::HydraWeb;
use crate::gate::webhooks;
use crate::gate::{record_note, Change, ChangeSink, Snapshot, State};
use crate::http;
use sea_orm::DatabaseConnection;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The gate's outgoing actions, registered on [`crate::gate::Gate`] as a [`ChangeSink`].
pub struct Actions {
    config: Arc<Config>,
    secrets: Arc<Secrets>,
    db: DatabaseConnection,
    client: reqwest::Client,
    /// Hydra work not yet done: pool -> whether its jobsets should be held (disabled).
    hydra_pending: Arc<tokio::sync::Mutex<BTreeMap<String, bool>>>,
    /// The last Hydra error per pool, so a failure that repeats each minute is recorded once.
    hydra_last_error: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Actions {
    pub fn new(config: Arc<Config>, secrets: Arc<Secrets>, db: DatabaseConnection) -> Actions {
        Actions {
            config,
            secrets,
            db,
            client: http::client_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client with default TLS"),
            hydra_pending: Default::default(),
            hydra_last_error: Default::default(),
        }
    }

    fn hydra_enabled(&self) -> bool {
        self.config
            .hydra
            .as_ref()
            .is_some_and(|h| h.act_on_gate && h.url.is_some())
    }

    /// Runs the pending Hydra work in the background (one run at a time).
    fn run_hydra(&self) {
        if !self.hydra_enabled() {
            return;
        }
        let pending = self.hydra_pending.clone();
        let last_error = self.hydra_last_error.clone();
        let hydra = HydraWeb {
            config: self.config.clone(),
            secrets: self.secrets.clone(),
            db: self.db.clone(),
            client: self.client.clone(),
        };
        tokio::spawn(async move {
            let Ok(mut pending) = pending.try_lock() else {
                return; // a run is under way; the next refresh retries
            };
            let work: Vec<(String, bool)> = pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (pool, hold) in work {
                let result = if hold {
                    hydra.hold_pool(&pool).await
                } else {
                    hydra.release_pool(&pool).await
                };
                match result {
                    Ok(()) => {
                        pending.remove(&pool);
                        last_error.lock().expect("lock").remove(&pool);
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        tracing::warn!(%pool, error = %msg, "acting on Hydra failed; retried at the next refresh");
                        let repeat = last_error
                            .lock()
                            .expect("lock")
                            .insert(pool.clone(), msg.clone())
                            == Some(msg.clone());
                        if !repeat {
                            let _ = record_note(
                                &hydra.db,
                                &pool,
                                "hydra_failed",
                                &format!(
                                    "{} the Hydra jobsets failed (retried each refresh): {msg}",
                                    if hold { "disabling" } else { "restoring" }
                                ),
                                None,
                            )
                            .await;
                        }
                    }
                }
            }
        });
    }
}

impl ChangeSink for Actions {
    fn changed(&self, changes: &[Change], _snapshot: &Snapshot) {
        for c in changes {
            webhooks::send(&self.config, &self.secrets, &self.client, &self.db, c);
            if self.hydra_enabled() {
                let hold = c.to == State::Closed;
                let was = c.from == Some(State::Closed);
                // The first state ever recorded for a pool only acts when it is closed.
                if hold != was && (c.from.is_some() || hold) {
                    if let Ok(mut p) = self.hydra_pending.try_lock() {
                        p.insert(c.pool.clone(), hold);
                    } else {
                        let pending = self.hydra_pending.clone();
                        let pool = c.pool.clone();
                        tokio::spawn(async move {
                            pending.lock().await.insert(pool, hold);
                        });
                    }
                }
            }
        }
    }

    fn tick(&self, _snapshot: &Snapshot) {
        self.run_hydra();
    }
}
