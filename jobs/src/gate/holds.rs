//! The gate's holds on Hydra (`hydra_jobset_holds`), reconciled on every refresh by the one
//! instance holding the `gate_hydra` lease: a closed pool holds every jobset that belongs to it,
//! the ones Hydra lists (`GET /api/jobsets?project=` for each project the pool's patterns name
//! literally) and the ones seen in build steps; a pool that is not closed releases its holds.
//!
//! A hold is claimed by its row, unique per jobset and written **before** the PUT that disables
//! the jobset, with the `enabled` value read just before (`holding`); the PUT's success makes it
//! `held`. A PUT that failed, or whose answer was lost after Hydra applied it, leaves the row
//! `holding` with the value from before, so the next round PUTs again and the release restores
//! what the jobset had, never the 0 it was left with. A jobset Hydra refuses to change (403, a
//! declarative project) or that cannot be named in a URL is `refused`: recorded once, never
//! retried while the pool stays closed, and nothing to restore. Releasing restores exactly the
//! held jobsets to their `previous_enabled`. Before each PUT the lease's fencing token is checked.
use crate::db::leases::Lease;
use crate::gate::hydra_web::{HydraError, HydraWeb};
use crate::gate::store;
use crate::gate::{pool_slug, record_note};
use buildfund_entity::gate_events::EventKind;
use buildfund_entity::hydra_jobset_holds::HoldStatus;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The lease one instance holds while it acts on Hydra.
pub const HYDRA_LEASE: &str = "gate_hydra";

const HOLDING: HoldStatus = HoldStatus::Holding;
const HELD: HoldStatus = HoldStatus::Held;
const REFUSED: HoldStatus = HoldStatus::Refused;

/// One round of work on Hydra under `lease`, logged in with `cookie`.
pub(crate) struct Round<'a> {
    pub hydra: &'a HydraWeb,
    pub lease: &'a Lease,
    pub cookie: Option<String>,
}

/// The literal project of a `project:jobset` pattern (`None` when it is a glob).
fn literal_project(pattern: &str) -> Option<&str> {
    let (project, _) = pattern.split_once(':')?;
    (!project.is_empty() && !project.contains(['*', '?', '[', ']', '{', '}', '\\']))
        .then_some(project)
}

impl Round<'_> {
    async fn fenced(&self) -> Result<(), HydraError> {
        if !self
            .lease
            .check(&self.hydra.db, self.hydra.clock.now())
            .await?
        {
            return Err(HydraError::LeaseLost {
                token: self.lease.token,
            });
        }
        Ok(())
    }

    async fn note(&self, pool: &str, kind: EventKind, text: &str) -> Result<(), HydraError> {
        Ok(record_note(
            &self.hydra.db,
            self.hydra.clock.now(),
            pool,
            kind,
            text,
            None,
        )
        .await?)
    }

    /// The pool's jobsets: those Hydra lists for the projects its patterns name, and those
    /// seen in build steps, each where the pools' globs put it. A listing that failed is
    /// answered beside the rest, so the known jobsets are still held.
    async fn jobsets_of(
        &self,
        pool: &str,
    ) -> Result<(BTreeSet<(String, String)>, Option<HydraError>), HydraError> {
        let config = &self.hydra.config;
        let mine = |p: &str, j: &str| pool_slug(config, &format!("{p}:{j}")) == pool;
        let mut out: BTreeSet<(String, String)> = store::known_jobsets(&self.hydra.db)
            .await?
            .into_iter()
            .filter(|(project, name)| mine(project, name))
            .collect();
        let projects: BTreeSet<&str> = config
            .pools
            .iter()
            .filter(|p| p.slug == pool)
            .flat_map(|p| p.jobsets.iter().filter_map(|g| literal_project(g)))
            .collect();
        let mut error = None;
        for project in projects {
            match self.hydra.list_jobsets(project, &self.cookie).await {
                Ok(names) => out.extend(
                    names
                        .into_iter()
                        .filter(|j| mine(project, j))
                        .map(|j| (project.to_string(), j)),
                ),
                Err(e) => {
                    error = Some(HydraError::Listing {
                        project: project.to_string(),
                        source: Box::new(e),
                    })
                }
            }
        }
        Ok((out, error))
    }

    /// Holds every jobset of the closed `pool` not held yet, retries the PUTs left `holding`,
    /// and cancels the queued builds of the jobsets it held.
    pub async fn hold_pool(&self, pool: &str) -> Result<(), HydraError> {
        let db = &self.hydra.db;
        let holds = store::holds(db, None).await?;
        // The jobsets held in this round, refused ones too: their queued builds are cancelled.
        let mut held = Vec::new();
        for h in holds
            .iter()
            .filter(|h| h.pool == pool && h.status == HOLDING)
        {
            let url = self.hydra.url(&["jobset", &h.project, &h.jobset], None)?;
            let body = self.hydra.get_jobset(&url, &self.cookie).await?;
            self.disable(
                pool,
                h.id,
                &h.project,
                &h.jobset,
                h.previous_enabled,
                &url,
                body,
            )
            .await?;
            held.push((h.project.clone(), h.jobset.clone()));
        }
        let (jobsets, listing_error) = self.jobsets_of(pool).await?;
        for (project, jobset) in &jobsets {
            if holds
                .iter()
                .any(|h| &h.project == project && &h.jobset == jobset)
            {
                continue;
            }
            let url = match self.hydra.url(&["jobset", project, jobset], None) {
                Ok(url) => url,
                Err(refused) => {
                    if self
                        .claim(pool, project, jobset, 1, REFUSED)
                        .await?
                        .is_some()
                    {
                        self.note(pool, EventKind::HydraRefused, &format!(
                            "not sent to Hydra: the jobset {project:?}:{jobset:?} cannot be named in a URL ({refused}); nothing was requested for it"
                        )).await?;
                        held.push((project.clone(), jobset.clone()));
                    }
                    continue;
                }
            };
            let body = self.hydra.get_jobset(&url, &self.cookie).await?;
            let previous = body.get("enabled").and_then(Value::as_i64).unwrap_or(1);
            let status = if previous == 0 { HELD } else { HOLDING };
            let Some(id) = self.claim(pool, project, jobset, previous, status).await? else {
                continue; // held by another instance meanwhile
            };
            if previous == 0 {
                self.note(
                    pool,
                    EventKind::HydraDisabled,
                    &format!("disabled {project}:{jobset} on Hydra (enabled was 0)"),
                )
                .await?;
            } else {
                self.disable(pool, id, project, jobset, previous as i32, &url, body)
                    .await?;
            }
            held.push((project.clone(), jobset.clone()));
        }
        if !held.is_empty() {
            self.hydra.cancel_queued(pool, &held, &self.cookie).await?;
        }
        match listing_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes the hold row (before any PUT); its id, or `None` when the jobset is held already.
    async fn claim(
        &self,
        pool: &str,
        project: &str,
        jobset: &str,
        previous: i64,
        status: HoldStatus,
    ) -> Result<Option<i64>, HydraError> {
        let now = self.hydra.clock.now();
        Ok(store::claim_hold(&self.hydra.db, pool, project, jobset, previous, status, now).await?)
    }

    async fn set_status(&self, id: i64, status: HoldStatus) -> Result<(), HydraError> {
        Ok(store::set_hold_status(&self.hydra.db, id, status).await?)
    }

    /// PUTs the held jobset with `enabled = 0`; `false` when Hydra refused (403).
    #[allow(clippy::too_many_arguments)]
    async fn disable(
        &self,
        pool: &str,
        id: i64,
        project: &str,
        jobset: &str,
        previous: i32,
        url: &reqwest::Url,
        body: Map<String, Value>,
    ) -> Result<bool, HydraError> {
        self.fenced().await?;
        if !self.hydra.put_enabled(url, body, 0, &self.cookie).await? {
            self.set_status(id, REFUSED).await?;
            self.note(pool, EventKind::HydraRefused, &format!(
                "Hydra refused to disable {project}:{jobset} (403: a declarative project; change its spec file instead)"
            )).await?;
            return Ok(false);
        }
        self.set_status(id, HELD).await?;
        self.note(
            pool,
            EventKind::HydraDisabled,
            &format!("disabled {project}:{jobset} on Hydra (enabled was {previous})"),
        )
        .await?;
        Ok(true)
    }

    /// Puts each jobset `pool` holds back to its previous `enabled` and drops the hold.
    pub async fn release_pool(&self, pool: &str) -> Result<(), HydraError> {
        let db = &self.hydra.db;
        let holds = store::holds(db, Some(pool)).await?;
        for h in holds {
            let restore = h.status != REFUSED;
            if restore && h.previous_enabled != 0 {
                self.fenced().await?;
                // Only a jobset whose URL was built is ever held; this one is checked again.
                let url = self.hydra.url(&["jobset", &h.project, &h.jobset], None)?;
                let body = self.hydra.get_jobset(&url, &self.cookie).await?;
                let enabled = i64::from(h.previous_enabled);
                if !self
                    .hydra
                    .put_enabled(&url, body, enabled, &self.cookie)
                    .await?
                {
                    return Err(HydraError::RestoreRefused {
                        project: h.project,
                        jobset: h.jobset,
                        enabled: h.previous_enabled,
                    });
                }
            }
            store::drop_hold(db, h.id).await?;
            if restore {
                self.note(
                    pool,
                    EventKind::HydraRestored,
                    &format!(
                        "restored {}:{} on Hydra to enabled={}",
                        h.project, h.jobset, h.previous_enabled
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::literal_project;

    #[test]
    fn only_literal_projects_are_listed() {
        assert_eq!(literal_project("nixpkgs:cuda*"), Some("nixpkgs"));
        assert_eq!(literal_project("decl:*"), Some("decl"));
        assert_eq!(literal_project("nix*:cuda"), None);
        assert_eq!(literal_project("*:*"), None);
        assert_eq!(literal_project("nocolon"), None);
    }
}
