//! What the gate does outside on a state change: signed webhooks to `[[gate.webhooks]]`, and
//! on Hydra (`[hydra] url`, `act_on_gate`) disabling the closed pool's jobsets, cancelling
//! their queued builds, and restoring them when the pool opens again.
//!
//! Failures are retried (webhooks: with backoff; Hydra: on every gate refresh until done) and
//! each is recorded in `gate_events` (kinds `webhook_failed`, `hydra_failed`, `hydra_refused`),
//! so `GET /api/v1/gate/events` shows them.
use crate::config::{redact_url, Config, Secrets};
use crate::gate::{pool_slug, record_note, Change, ChangeSink, Snapshot, State};
use buildfund_entity::{hydra_jobset_holds, jobsets};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Buildfund-Signature";
/// Delivery attempts per webhook and change, and the first delay (doubled each time).
pub const WEBHOOK_ATTEMPTS: u32 = 5;
pub const WEBHOOK_FIRST_DELAY: Duration = Duration::from_millis(500);

/// HMAC-SHA256 (RFC 2104) of `body` under `key`.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(body);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

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
            client: reqwest::Client::builder()
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

    fn send_webhooks(&self, change: &Change) {
        let body = match serde_json::to_vec(change) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a gate change");
                return;
            }
        };
        for (i, hook) in self.config.gate.webhooks.iter().enumerate() {
            let url = hook.url.clone();
            let shown = redact_url(&url);
            // A configured secret that is missing sends nothing rather than an unsigned body.
            let secret: Option<SecretString> = match self.secrets.webhook(i).map(|s| s.value()) {
                None => None,
                Some(Ok(s)) => Some(s.clone()),
                Some(Err(e)) => {
                    tracing::error!(url = %shown, error = %e, "webhook not sent");
                    continue;
                }
            };
            let body = body.clone();
            let client = self.client.clone();
            let db = self.db.clone();
            let pool = change.pool.clone();
            let id = change.id;
            tokio::spawn(async move {
                let mut delay = WEBHOOK_FIRST_DELAY;
                let mut last_error = String::new();
                for attempt in 1..=WEBHOOK_ATTEMPTS {
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("X-Buildfund-Event", "gate.state_changed")
                        .header("X-Buildfund-Delivery", id.to_string())
                        .body(body.clone());
                    if let Some(s) = &secret {
                        req = req.header(SIGNATURE_HEADER, signature(s.expose_secret(), &body));
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            tracing::info!(url = %shown, attempt, event = id, "webhook delivered");
                            return;
                        }
                        Ok(r) => last_error = format!("answered {}", r.status()),
                        Err(e) => last_error = e.without_url().to_string(),
                    }
                    tracing::warn!(url = %shown, attempt, error = %last_error, "webhook delivery failed");
                    if attempt < WEBHOOK_ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
                let _ = record_note(
                    &db,
                    &pool,
                    "webhook_failed",
                    &format!(
                        "webhook {shown} failed {WEBHOOK_ATTEMPTS} times for event {id}: {last_error}"
                    ),
                    None,
                )
                .await;
            });
        }
    }

    /// Runs the pending Hydra work in the background (one run at a time).
    fn run_hydra(&self) {
        if !self.hydra_enabled() {
            return;
        }
        let pending = self.hydra_pending.clone();
        let last_error = self.hydra_last_error.clone();
        let hydra = Hydra {
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
            self.send_webhooks(c);
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

/// Hydra's HTTP API as the README of `shared/reference/hydra` describes it: GET the jobset,
/// PUT it back whole with `enabled` changed, `Referer` set; cancel queued builds one by one.
struct Hydra {
    config: Arc<Config>,
    secrets: Arc<Secrets>,
    db: DatabaseConnection,
    client: reqwest::Client,
}

impl Hydra {
    fn base(&self) -> &str {
        self.config
            .hydra
            .as_ref()
            .and_then(|h| h.url.as_deref())
            .unwrap_or("")
    }

    /// Logs in when `[hydra] user` is set; returns the Cookie header to send.
    async fn session(&self) -> anyhow::Result<Option<String>> {
        let Some(h) = &self.config.hydra else {
            return Ok(None);
        };
        let Some(user) = &h.user else {
            return Ok(None);
        };
        let password = match &self.secrets.hydra_password {
            Some(secret) => secret.value()?.clone(),
            None => SecretString::from(""),
        };
        let res = self
            .client
            .post(format!("{}/login", self.base()))
            .header("Referer", self.base())
            .header("Accept", "application/json")
            .json(&serde_json::json!({"username": user, "password": password.expose_secret()}))
            .send()
            .await?;
        if !res.status().is_success() {
            anyhow::bail!("Hydra login as {user:?} answered {}", res.status());
        }
        let cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_string)
            .collect();
        Ok(Some(cookies.join("; ")))
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &Option<String>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base());
        let mut r = self
            .client
            .request(method, &url)
            .header("Accept", "application/json")
            .header("Referer", url.clone());
        if let Some(c) = cookie {
            r = r.header("Cookie", c.clone());
        }
        r
    }

    /// The pool's jobsets as buildfund knows them (from the build steps seen).
    async fn jobsets_of(&self, pool: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(jobsets::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|j| pool_slug(&self.config, &format!("{}:{}", j.project, j.name)) == pool)
            .map(|j| (j.project, j.name))
            .collect())
    }

    async fn get_jobset(
        &self,
        project: &str,
        jobset: &str,
        cookie: &Option<String>,
    ) -> anyhow::Result<serde_json::Map<String, Value>> {
        let res = self
            .request(
                reqwest::Method::GET,
                &format!("/jobset/{project}/{jobset}"),
                cookie,
            )
            .send()
            .await?;
        if !res.status().is_success() {
            anyhow::bail!("GET /jobset/{project}/{jobset} answered {}", res.status());
        }
        match res.json::<Value>().await? {
            Value::Object(m) => Ok(m),
            _ => anyhow::bail!("GET /jobset/{project}/{jobset} did not answer a JSON object"),
        }
    }

    /// PUTs the jobset back whole with `enabled` set. `Ok(false)` when Hydra refuses with 403
    /// (a declarative project).
    async fn put_enabled(
        &self,
        project: &str,
        jobset: &str,
        mut body: serde_json::Map<String, Value>,
        enabled: i64,
        cookie: &Option<String>,
    ) -> anyhow::Result<bool> {
        body.insert("enabled".into(), Value::from(enabled));
        // Hydra reads these flags as true whenever the key is present: leave false ones out.
        for flag in ["visible", "enableemail", "enable_dynamic_run_command"] {
            let falsy = match body.get(flag) {
                Some(Value::Bool(b)) => !b,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::Null) => true,
                _ => false,
            };
            if falsy {
                body.remove(flag);
            }
        }
        let res = self
            .request(
                reqwest::Method::PUT,
                &format!("/jobset/{project}/{jobset}"),
                cookie,
            )
            .json(&body)
            .send()
            .await?;
        if res.status() == reqwest::StatusCode::FORBIDDEN {
            return Ok(false);
        }
        if !res.status().is_success() {
            anyhow::bail!("PUT /jobset/{project}/{jobset} answered {}", res.status());
        }
        Ok(true)
    }

    async fn hold_pool(&self, pool: &str) -> anyhow::Result<()> {
        let cookie = self.session().await?;
        let jobsets = self.jobsets_of(pool).await?;
        for (project, jobset) in &jobsets {
            let held = hydra_jobset_holds::Entity::find()
                .filter(hydra_jobset_holds::Column::Project.eq(project.as_str()))
                .filter(hydra_jobset_holds::Column::Jobset.eq(jobset.as_str()))
                .one(&self.db)
                .await?;
            if held.is_some() {
                continue;
            }
            let body = self.get_jobset(project, jobset, &cookie).await?;
            let previous = body.get("enabled").and_then(Value::as_i64).unwrap_or(1);
            if previous != 0 && !self.put_enabled(project, jobset, body, 0, &cookie).await? {
                record_note(
                    &self.db,
                    pool,
                    "hydra_refused",
                    &format!(
                        "Hydra refused to disable {project}:{jobset} (403: a declarative project; change its spec file instead)"
                    ),
                    None,
                )
                .await?;
                continue;
            }
            hydra_jobset_holds::ActiveModel {
                pool: Set(pool.to_string()),
                project: Set(project.clone()),
                jobset: Set(jobset.clone()),
                previous_enabled: Set(previous as i32),
                held_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
            record_note(
                &self.db,
                pool,
                "hydra_disabled",
                &format!("disabled {project}:{jobset} on Hydra (enabled was {previous})"),
                None,
            )
            .await?;
        }
        self.cancel_queued(pool, &jobsets, &cookie).await
    }

    /// Cancels the unfinished builds of the pool's jobsets (`GET /api/queue`, then
    /// `POST /build/{id}/cancel`).
    async fn cancel_queued(
        &self,
        pool: &str,
        jobsets: &[(String, String)],
        cookie: &Option<String>,
    ) -> anyhow::Result<()> {
        let res = self
            .request(reqwest::Method::GET, "/api/queue?nr=100000", cookie)
            .send()
            .await?;
        if !res.status().is_success() {
            anyhow::bail!("GET /api/queue answered {}", res.status());
        }
        let queue: Vec<Value> = res.json().await?;
        let mut cancelled = Vec::new();
        for b in queue {
            let (Some(id), Some(p), Some(j)) = (
                b.get("id").and_then(Value::as_i64),
                b.get("project").and_then(Value::as_str),
                b.get("jobset").and_then(Value::as_str),
            ) else {
                continue;
            };
            if b.get("finished").and_then(Value::as_i64).unwrap_or(0) != 0
                || !jobsets.iter().any(|(pp, jj)| pp == p && jj == j)
            {
                continue;
            }
            let r = self
                .request(
                    reqwest::Method::POST,
                    &format!("/build/{id}/cancel"),
                    cookie,
                )
                .send()
                .await?;
            if !r.status().is_success() && !r.status().is_redirection() {
                anyhow::bail!("POST /build/{id}/cancel answered {}", r.status());
            }
            cancelled.push(id.to_string());
        }
        if !cancelled.is_empty() {
            record_note(
                &self.db,
                pool,
                "hydra_cancelled",
                &format!("cancelled {} queued build(s) on Hydra", cancelled.len()),
                Some(cancelled.join(",")),
            )
            .await?;
        }
        Ok(())
    }

    async fn release_pool(&self, pool: &str) -> anyhow::Result<()> {
        let holds = hydra_jobset_holds::Entity::find()
            .filter(hydra_jobset_holds::Column::Pool.eq(pool))
            .all(&self.db)
            .await?;
        if holds.is_empty() {
            return Ok(());
        }
        let cookie = self.session().await?;
        for h in holds {
            if h.previous_enabled != 0 {
                let body = self.get_jobset(&h.project, &h.jobset, &cookie).await?;
                if !self
                    .put_enabled(
                        &h.project,
                        &h.jobset,
                        body,
                        h.previous_enabled as i64,
                        &cookie,
                    )
                    .await?
                {
                    anyhow::bail!(
                        "Hydra refused (403) to restore {}:{} to enabled={}",
                        h.project,
                        h.jobset,
                        h.previous_enabled
                    );
                }
            }
            hydra_jobset_holds::Entity::delete_by_id(h.id)
                .exec(&self.db)
                .await?;
            record_note(
                &self.db,
                pool,
                "hydra_restored",
                &format!(
                    "restored {}:{} on Hydra to enabled={}",
                    h.project, h.jobset, h.previous_enabled
                ),
                None,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
