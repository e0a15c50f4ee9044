//! What the gate does outside, after every refresh and from the states recorded in the
//! database: [`webhooks`] to `[[gate.webhooks]]` (each state change's deliveries, claimed once
//! across instances), and on Hydra ([`crate::gate::hydra_web`]; `[hydra] url`, `act_on_gate`)
//! the holds of [`crate::gate::holds`]: a closed pool's jobsets disabled and their queued builds
//! cancelled, restored when the pool opens again, by the one instance holding the
//! [`HYDRA_LEASE`].
//!
//! Failures are retried (webhooks: with backoff; Hydra: on every gate refresh until done) and
//! each is recorded in `gate_events` (kinds `webhook_failed`, `hydra_failed`, `hydra_refused`),
//! so `GET /api/v1/gate/events` shows them. Both go through [`crate::http`]'s clients, which
//! follow no redirect to another origin.
use crate::clock::Clock;
use crate::config::{Config, Secrets};
use crate::db::leases::{self, instance_id};
use crate::failure::error_chain;
use crate::gate::holds::{Round, HYDRA_LEASE};
use crate::gate::hydra_web::{HydraError, HydraWeb};
use crate::gate::store;
use crate::gate::{record_note, webhooks, ChangeSink, State};
use crate::http;
use buildfund_entity::gate_events::EventKind;
use sea_orm::DatabaseConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// How long the Hydra lease lasts without renewal (renewed every third of it).
pub const HYDRA_LEASE_SECONDS: i64 = 120;

/// The gate's outgoing actions, registered on [`crate::gate::Gate`] as a [`ChangeSink`].
pub struct Actions {
    config: Arc<Config>,
    secrets: Arc<Secrets>,
    db: DatabaseConnection,
    clock: Clock,
    client: reqwest::Client,
    /// This instance, as it holds leases and claims deliveries.
    holder: String,
    /// Held while this instance runs a Hydra round (one at a time).
    hydra_running: Arc<tokio::sync::Mutex<()>>,
    /// The last Hydra error per pool, so a failure that repeats each minute is recorded once.
    hydra_last_error: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Actions {
    /// The actions on `config`, dated by `clock`.
    pub fn new(
        config: Arc<Config>,
        secrets: Arc<Secrets>,
        db: DatabaseConnection,
        clock: Clock,
    ) -> Actions {
        Actions {
            config,
            secrets,
            db,
            clock,
            client: http::client_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client with default TLS"),
            holder: instance_id(),
            hydra_running: Default::default(),
            hydra_last_error: Default::default(),
        }
    }

    fn hydra_enabled(&self) -> bool {
        self.config
            .hydra
            .as_ref()
            .is_some_and(|h| h.act_on_gate && h.url.is_some())
    }

    /// Runs a Hydra round in the background, unless one runs here or the lease is elsewhere.
    fn run_hydra(&self, states: HashMap<String, State>) {
        let running = self.hydra_running.clone();
        let last_error = self.hydra_last_error.clone();
        let holder = self.holder.clone();
        let hydra = HydraWeb {
            config: self.config.clone(),
            secrets: self.secrets.clone(),
            db: self.db.clone(),
            client: self.client.clone(),
            clock: self.clock.clone(),
        };
        tokio::spawn(async move {
            let Ok(_running) = running.try_lock() else {
                return; // a round is under way; the next refresh starts another
            };
            let duration = chrono::Duration::seconds(HYDRA_LEASE_SECONDS);
            let now = hydra.clock.now();
            let lease = match leases::acquire(&hydra.db, HYDRA_LEASE, &holder, duration, now).await
            {
                Ok(Ok(lease)) => lease,
                Ok(Err(_)) => return, // another instance acts on Hydra now
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the Hydra lease; retried at the next refresh");
                    return;
                }
            };
            tokio::select! {
                _ = round(&hydra, &lease, &states, &last_error) => {}
                _ = lease.keep(&hydra.db, &hydra.clock) => {}
            }
            if let Err(e) = lease.release(&hydra.db).await {
                tracing::warn!(error = %e, "cannot release the Hydra lease; it will expire");
            }
        }
        .instrument(tracing::info_span!("hydra_round", holder = %self.holder)));
    }
}

/// One round: releases the holds of pools that are not closed, then holds the closed pools'
/// jobsets. Each pool's failure is logged and recorded (once while it repeats).
async fn round(
    hydra: &HydraWeb,
    lease: &leases::Lease,
    states: &HashMap<String, State>,
    last_error: &Mutex<BTreeMap<String, String>>,
) {
    let closed: BTreeSet<&str> = states
        .iter()
        .filter(|(_, s)| **s == State::Closed)
        .map(|(p, _)| p.as_str())
        .collect();
    let held: BTreeSet<String> = match store::holds(&hydra.db, None).await {
        Ok(rows) => rows.into_iter().map(|h| h.pool).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Hydra holds; retried at the next refresh");
            return;
        }
    };
    let release: Vec<&str> = held
        .iter()
        .map(String::as_str)
        .filter(|p| !closed.contains(p))
        .collect();
    if closed.is_empty() && release.is_empty() {
        return;
    }
    let cookie = match hydra.session().await {
        Ok(c) => Some(c),
        Err(e) => {
            let e = Err(e);
            for pool in release.iter().chain(&closed) {
                report(hydra, last_error, pool, closed.contains(pool), &e).await;
            }
            None
        }
    };
    let Some(cookie) = cookie else { return };
    let work = Round {
        hydra,
        lease,
        cookie,
    };
    for pool in release {
        let result = work.release_pool(pool).await;
        report(hydra, last_error, pool, false, &result).await;
    }
    for pool in closed {
        let result = work.hold_pool(pool).await;
        report(hydra, last_error, pool, true, &result).await;
    }
}

/// Logs and records a pool's failure, once while the same error repeats.
async fn report(
    hydra: &HydraWeb,
    last_error: &Mutex<BTreeMap<String, String>>,
    pool: &str,
    hold: bool,
    result: &Result<(), HydraError>,
) {
    let Err(e) = result else {
        last_error.lock().expect("lock").remove(pool);
        return;
    };
    let msg = error_chain(e);
    tracing::warn!(%pool, error = %msg, "acting on Hydra failed; retried at the next refresh");
    let repeat = last_error
        .lock()
        .expect("lock")
        .insert(pool.to_string(), msg.clone())
        == Some(msg.clone());
    if !repeat {
        let _ = record_note(
            &hydra.db,
            hydra.clock.now(),
            pool,
            EventKind::HydraFailed,
            &format!(
                "{} the Hydra jobsets failed (retried each refresh): {msg}",
                if hold { "disabling" } else { "restoring" }
            ),
            None,
        )
        .await;
    }
}

impl ChangeSink for Actions {
    fn tick(&self, states: &HashMap<String, State>) {
        if !self.config.gate.webhooks.is_empty() {
            let (config, secrets, client, db, holder, clock) = (
                self.config.clone(),
                self.secrets.clone(),
                self.client.clone(),
                self.db.clone(),
                self.holder.clone(),
                self.clock.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) =
                    webhooks::deliver_pending(&config, &secrets, &client, &db, &holder, &clock)
                        .await
                {
                    tracing::warn!(error = %e, "cannot claim webhook deliveries; retried at the next refresh");
                }
            }
            .instrument(tracing::info_span!("webhook_deliveries")));
        }
        if self.hydra_enabled() {
            self.run_hydra(states.clone());
        }
    }
}
