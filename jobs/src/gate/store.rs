//! The gate's storage: the audit (`gate_events`), the admin controls (`pool_controls`), and a
//! state change recorded with its webhook deliveries (`gate_deliveries`) in one transaction.
//! Queries return the gate's own types.
use crate::calendar::rfc3339;
use crate::config::Config;
use crate::gate::snapshot::Change;
use crate::gate::states::{PoolGate, Snapshot, State};
use crate::gate::GateError;
use buildfund_entity::gate_events::EventKind;
use buildfund_entity::hydra_jobset_holds::HoldStatus;
use buildfund_entity::pool_controls::ControlKind;
use buildfund_entity::{gate_deliveries, gate_events, hydra_jobset_holds, jobsets, pool_controls};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait,
};
use std::collections::HashMap;

/// A pause or an override of a pool, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredControl {
    pub id: i64,
    pub pool: String,
    pub kind: ControlKind,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<pool_controls::Model> for StoredControl {
    fn from(m: pool_controls::Model) -> Self {
        StoredControl {
            id: m.id,
            pool: m.pool,
            kind: m.kind,
            reason: m.reason,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

/// One entry of the gate's audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub pool: String,
    pub kind: EventKind,
    pub from_state: Option<State>,
    pub to_state: Option<State>,
    pub actor: Option<String>,
    pub reason: String,
    pub until: Option<DateTime<Utc>>,
    pub details: Option<String>,
}

impl From<gate_events::Model> for Event {
    fn from(m: gate_events::Model) -> Self {
        Event {
            id: m.id,
            at: m.at,
            pool: m.pool,
            kind: m.kind,
            from_state: m.from_state,
            to_state: m.to_state,
            actor: m.actor,
            reason: m.reason,
            until: m.until,
            details: m.details,
        }
    }
}

/// Pause/override rows in force at `t`: created at or before `t`, not lifted by then, not
/// expired by then.
pub async fn controls_at(
    db: &impl ConnectionTrait,
    t: DateTime<Utc>,
) -> Result<Vec<StoredControl>, DbErr> {
    use pool_controls::Column as C;
    pool_controls::Entity::find()
        .filter(C::CreatedAt.lte(t))
        .filter(
            Condition::any()
                .add(C::LiftedAt.is_null())
                .add(C::LiftedAt.gt(t)),
        )
        .filter(
            Condition::any()
                .add(C::ExpiresAt.is_null())
                .add(C::ExpiresAt.gt(t)),
        )
        .order_by_asc(C::Id)
        .all(db)
        .await
        .map(|rows| rows.into_iter().map(StoredControl::from).collect())
}

// One argument per column of `gate_events`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    pool: &str,
    kind: EventKind,
    actor: Option<&str>,
    reason: &str,
    until: Option<DateTime<Utc>>,
    details: Option<String>,
) -> Result<gate_events::Model, DbErr> {
    gate_events::ActiveModel {
        at: Set(at),
        pool: Set(pool.to_string()),
        kind: Set(kind),
        from_state: Set(None),
        to_state: Set(None),
        actor: Set(actor.map(str::to_string)),
        reason: Set(reason.to_string()),
        until: Set(until),
        details: Set(details),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub(crate) async fn insert_control(
    db: &impl ConnectionTrait,
    pool: &str,
    kind: ControlKind,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    pool_controls::ActiveModel {
        pool: Set(pool.to_string()),
        kind: Set(kind),
        reason: Set(reason.to_string()),
        actor: Set(actor.to_string()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        lifted_at: Set(None),
        lifted_by: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Ends the active controls of `pool` of the given kinds; returns how many.
pub(crate) async fn lift_controls(
    db: &impl ConnectionTrait,
    pool: &str,
    kinds: &[ControlKind],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use pool_controls::Column as C;
    let active: Vec<i64> = controls_at(db, now)
        .await?
        .into_iter()
        .filter(|c| c.pool == pool && kinds.contains(&c.kind))
        .map(|c| c.id)
        .collect();
    if active.is_empty() {
        return Ok(0);
    }
    let res = pool_controls::Entity::update_many()
        .col_expr(C::LiftedAt, sea_orm::sea_query::Expr::value(now))
        .col_expr(
            C::LiftedBy,
            sea_orm::sea_query::Expr::value(actor.to_string()),
        )
        .filter(C::Id.is_in(active))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// The audit, newest first.
pub async fn events(
    db: &impl ConnectionTrait,
    pool: Option<&str>,
    limit: u64,
) -> Result<Vec<Event>, DbErr> {
    let mut q = gate_events::Entity::find();
    if let Some(p) = pool {
        q = q.filter(gate_events::Column::Pool.eq(p));
    }
    q.order_by_desc(gate_events::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map(|rows| rows.into_iter().map(Event::from).collect())
}

/// The last state recorded for each pool, with the id of its event.
pub async fn recorded_states(
    db: &impl ConnectionTrait,
) -> Result<HashMap<String, (i64, State)>, DbErr> {
    use gate_events::Column as E;
    let latest: Vec<i64> = gate_events::Entity::find()
        .select_only()
        .column_as(E::Id.max(), "id")
        .filter(E::Kind.eq(EventKind::State))
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
        if let Some(s) = r.to_state {
            out.insert(r.pool, (r.id, s));
        }
    }
    Ok(out)
}

/// Records `g`'s state as the change after `before` (its event id and state) unless another
/// instance recorded a change after `before` already; with it, one delivery per configured
/// webhook, in one transaction. `None` when the claim was lost.
pub(crate) async fn claim_change(
    db: &impl TransactionTrait,
    config: &Config,
    snapshot: &Snapshot,
    g: &PoolGate,
    before: Option<(i64, State)>,
) -> Result<Option<Change>, GateError> {
    use gate_events::Column as E;
    let claim = format!("{}#{}", g.pool, before.map(|b| b.0).unwrap_or(0));
    let txn = db.begin().await?;
    let row = gate_events::ActiveModel {
        at: Set(snapshot.at),
        pool: Set(g.pool.clone()),
        kind: Set(EventKind::State),
        from_state: Set(before.map(|b| b.1)),
        to_state: Set(Some(g.state)),
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
        .ok_or_else(|| GateError::StateEventMissing {
            claim: claim.clone(),
        })?
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
    let body = serde_json::to_string(&change)?;
    for (i, hook) in config.gate.webhooks.iter().enumerate() {
        gate_deliveries::Entity::insert(gate_deliveries::ActiveModel {
            event_id: Set(id),
            hook: Set(i as i32),
            url: Set(hook.url.clone()),
            body: Set(body.clone()),
            attempts: Set(0),
            created_at: Set(snapshot.at),
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

/// A Hydra jobset the gate holds (or tried to), as stored in `hydra_jobset_holds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: i64,
    pub pool: String,
    pub project: String,
    pub jobset: String,
    /// The jobset's `enabled` before the hold, restored on release.
    pub previous_enabled: i32,
    pub status: HoldStatus,
}

impl From<hydra_jobset_holds::Model> for Hold {
    fn from(m: hydra_jobset_holds::Model) -> Self {
        Hold {
            id: m.id,
            pool: m.pool,
            project: m.project,
            jobset: m.jobset,
            previous_enabled: m.previous_enabled,
            status: m.status,
        }
    }
}

/// The holds, of one pool or of all.
pub async fn holds(db: &impl ConnectionTrait, pool: Option<&str>) -> Result<Vec<Hold>, DbErr> {
    let mut q = hydra_jobset_holds::Entity::find();
    if let Some(pool) = pool {
        q = q.filter(hydra_jobset_holds::Column::Pool.eq(pool));
    }
    Ok(q.all(db).await?.into_iter().map(Hold::from).collect())
}

/// Writes the hold of `project:jobset` for `pool` at `now` (before any PUT); its id, or `None`
/// when the jobset is held already.
pub async fn claim_hold(
    db: &impl ConnectionTrait,
    pool: &str,
    project: &str,
    jobset: &str,
    previous: i64,
    status: HoldStatus,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    use hydra_jobset_holds::Column as H;
    let row = hydra_jobset_holds::ActiveModel {
        pool: Set(pool.to_string()),
        project: Set(project.to_string()),
        jobset: Set(jobset.to_string()),
        previous_enabled: Set(previous.clamp(0, 2) as i32),
        held_at: Set(now),
        status: Set(status),
        ..Default::default()
    };
    let inserted = hydra_jobset_holds::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([H::Project, H::Jobset])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    Ok(hydra_jobset_holds::Entity::find()
        .filter(H::Project.eq(project))
        .filter(H::Jobset.eq(jobset))
        .one(db)
        .await?
        .map(|h| h.id))
}

pub async fn set_hold_status(
    db: &impl ConnectionTrait,
    id: i64,
    status: HoldStatus,
) -> Result<(), DbErr> {
    use hydra_jobset_holds::Column as H;
    hydra_jobset_holds::Entity::update_many()
        .col_expr(H::Status, Expr::value(status.as_str()))
        .filter(H::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn drop_hold(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    hydra_jobset_holds::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map(|_| ())
}

/// Every jobset seen in build steps, as `(project, jobset)`.
pub async fn known_jobsets(db: &impl ConnectionTrait) -> Result<Vec<(String, String)>, DbErr> {
    Ok(jobsets::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|j| (j.project, j.name))
        .collect())
}

/// A state change's webhook delivery (`gate_deliveries`), as claimed for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    /// The change's `gate_events` id: the `X-Buildfund-Delivery` header.
    pub event_id: i64,
    /// The index of the webhook in `[[gate.webhooks]]` when the change was recorded.
    pub hook: i32,
    pub url: String,
    pub body: String,
    pub attempts: i32,
}

impl From<gate_deliveries::Model> for Delivery {
    fn from(m: gate_deliveries::Model) -> Self {
        Delivery {
            id: m.id,
            event_id: m.event_id,
            hook: m.hook,
            url: m.url,
            body: m.body,
            attempts: m.attempts,
        }
    }
}

/// Not delivered, not failed, not leased by a live claim at `now`.
fn free_delivery(now: DateTime<Utc>) -> Condition {
    use gate_deliveries::Column as D;
    Condition::all()
        .add(D::DeliveredAt.is_null())
        .add(D::FailedAt.is_null())
        .add(
            Condition::any()
                .add(D::LeaseUntil.is_null())
                .add(D::LeaseUntil.lt(now)),
        )
}

/// The deliveries free at `now` (at most `limit`, oldest first).
pub async fn due_deliveries(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Delivery>, DbErr> {
    Ok(gate_deliveries::Entity::find()
        .filter(free_delivery(now))
        .order_by_asc(gate_deliveries::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Delivery::from)
        .collect())
}

/// Leases delivery `id` to `holder` until `until` if it is still free at `now`; whether it was.
pub async fn claim_delivery(
    db: &impl ConnectionTrait,
    id: i64,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    use gate_deliveries::Column as D;
    Ok(gate_deliveries::Entity::update_many()
        .col_expr(D::LeaseUntil, Expr::value(until))
        .col_expr(D::Holder, Expr::value(holder.to_string()))
        .filter(D::Id.eq(id))
        .filter(free_delivery(now))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Records delivery `id` delivered at `at` after `attempts` attempts in all.
pub async fn delivered(
    db: &impl ConnectionTrait,
    id: i64,
    attempts: i32,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    use gate_deliveries::Column as D;
    gate_deliveries::Entity::update_many()
        .col_expr(D::DeliveredAt, Expr::value(at))
        .col_expr(D::Attempts, Expr::value(attempts))
        .filter(D::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Records delivery `id` failed for good at `at`, with its last error.
pub async fn delivery_failed(
    db: &impl ConnectionTrait,
    id: i64,
    attempts: i32,
    last_error: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    use gate_deliveries::Column as D;
    gate_deliveries::Entity::update_many()
        .col_expr(D::FailedAt, Expr::value(at))
        .col_expr(D::Attempts, Expr::value(attempts))
        .col_expr(D::LastError, Expr::value(last_error.to_string()))
        .filter(D::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}
