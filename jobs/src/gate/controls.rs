//! The admin's controls (pause, override until a time, lift; each with a reason and recorded
//! with who and when) and the gate's audit in `gate_events`.
use crate::calendar::rfc3339;
use crate::config::{Config, OTHER_POOL};
use crate::gate::GateError;
use buildfund_entity::{gate_events, pool_controls};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

/// Pause/override rows in force at `t`: created at or before `t`, not lifted by then, not
/// expired by then.
pub async fn controls_at(
    db: &impl ConnectionTrait,
    t: DateTime<Utc>,
) -> Result<Vec<pool_controls::Model>, DbErr> {
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
}

fn known_pool(config: &Config, pool: &str) -> Result<(), GateError> {
    if pool == OTHER_POOL || config.pools.iter().any(|p| p.slug == pool) {
        Ok(())
    } else {
        Err(GateError::UnknownPool(pool.to_string()))
    }
}

fn check_reason(reason: &str) -> Result<(), GateError> {
    if reason.trim().is_empty() {
        return Err(GateError::Invalid("a reason is required".into()));
    }
    if reason.len() > 1000 {
        return Err(GateError::Invalid(
            "the reason is longer than 1000 bytes".into(),
        ));
    }
    Ok(())
}

// One argument per column of `gate_events`.
#[allow(clippy::too_many_arguments)]
async fn record(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    pool: &str,
    kind: &str,
    actor: Option<&str>,
    reason: &str,
    until: Option<DateTime<Utc>>,
    details: Option<String>,
) -> Result<gate_events::Model, DbErr> {
    gate_events::ActiveModel {
        at: Set(at),
        pool: Set(pool.to_string()),
        kind: Set(kind.to_string()),
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

/// Records a note about the gate's outgoing actions (a failed webhook, a Hydra refusal) made
/// at `at`.
pub async fn record_note(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    pool: &str,
    kind: &str,
    reason: &str,
    details: Option<String>,
) -> Result<(), DbErr> {
    record(db, at, pool, kind, None, reason, None, details)
        .await
        .map(|_| ())
}

async fn insert_control(
    db: &impl ConnectionTrait,
    pool: &str,
    kind: &str,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    pool_controls::ActiveModel {
        pool: Set(pool.to_string()),
        kind: Set(kind.to_string()),
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
async fn lift_controls(
    db: &impl ConnectionTrait,
    pool: &str,
    kinds: &[&str],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use pool_controls::Column as C;
    let active: Vec<i64> = controls_at(db, now)
        .await?
        .into_iter()
        .filter(|c| c.pool == pool && kinds.contains(&c.kind.as_str()))
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

/// Pauses `pool` (closed whatever its budget) until lifted. A pause also ends an override
/// in force: the latest admin word wins.
pub async fn pause(
    db: &impl ConnectionTrait,
    config: &Config,
    pool: &str,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), GateError> {
    known_pool(config, pool)?;
    check_reason(reason)?;
    let ended = lift_controls(db, pool, &["override"], actor, now).await?;
    insert_control(db, pool, "pause", actor, reason, now, None).await?;
    let details = (ended > 0).then(|| format!("ended {ended} override(s) in force"));
    record(db, now, pool, "pause", Some(actor), reason, None, details).await?;
    Ok(())
}

/// Lets a closed pool's jobsets through until `until` (the state stays closed; `allow` is
/// true).
pub async fn override_until(
    db: &impl ConnectionTrait,
    config: &Config,
    pool: &str,
    actor: &str,
    reason: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), GateError> {
    known_pool(config, pool)?;
    check_reason(reason)?;
    if until <= now {
        return Err(GateError::Invalid(format!(
            "until {} is not in the future",
            rfc3339(until)
        )));
    }
    insert_control(db, pool, "override", actor, reason, now, Some(until)).await?;
    record(
        db,
        now,
        pool,
        "override",
        Some(actor),
        reason,
        Some(until),
        None,
    )
    .await?;
    Ok(())
}

/// Lifts the pause and the override in force on `pool`.
pub async fn lift(
    db: &impl ConnectionTrait,
    config: &Config,
    pool: &str,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), GateError> {
    known_pool(config, pool)?;
    check_reason(reason)?;
    let n = lift_controls(db, pool, &["pause", "override"], actor, now).await?;
    if n == 0 {
        return Err(GateError::NothingToLift(format!(
            "pool {pool:?} has no pause or override in force"
        )));
    }
    record(
        db,
        now,
        pool,
        "lift",
        Some(actor),
        reason,
        None,
        Some(format!("lifted {n} control(s)")),
    )
    .await?;
    Ok(())
}

/// The audit, newest first.
pub async fn events(
    db: &impl ConnectionTrait,
    pool: Option<&str>,
    limit: u64,
) -> Result<Vec<gate_events::Model>, DbErr> {
    let mut q = gate_events::Entity::find();
    if let Some(p) = pool {
        q = q.filter(gate_events::Column::Pool.eq(p));
    }
    q.order_by_desc(gate_events::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
