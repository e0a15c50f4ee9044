//! The admin's controls (pause, override until a time, lift; each with a reason and recorded
//! with who and when) and the gate's audit in `gate_events` (stored by [`crate::gate::store`]).
use crate::calendar::rfc3339;
use crate::config::{Config, OTHER_POOL};
use crate::gate::store::{insert_control, lift_controls, record};
use crate::gate::GateError;
use buildfund_entity::gate_events::EventKind;
use buildfund_entity::pool_controls::ControlKind;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

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

/// Records a note about the gate's outgoing actions (a failed webhook, a Hydra refusal) made
/// at `at`.
pub async fn record_note(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    pool: &str,
    kind: EventKind,
    reason: &str,
    details: Option<String>,
) -> Result<(), DbErr> {
    record(db, at, pool, kind, None, reason, None, details)
        .await
        .map(|_| ())
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
    let ended = lift_controls(db, pool, &[ControlKind::Override], actor, now).await?;
    insert_control(db, pool, ControlKind::Pause, actor, reason, now, None).await?;
    let details = (ended > 0).then(|| format!("ended {ended} override(s) in force"));
    record(
        db,
        now,
        pool,
        EventKind::Pause,
        Some(actor),
        reason,
        None,
        details,
    )
    .await?;
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
    insert_control(
        db,
        pool,
        ControlKind::Override,
        actor,
        reason,
        now,
        Some(until),
    )
    .await?;
    record(
        db,
        now,
        pool,
        EventKind::Override,
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
    let n = lift_controls(
        db,
        pool,
        &[ControlKind::Pause, ControlKind::Override],
        actor,
        now,
    )
    .await?;
    if n == 0 {
        return Err(GateError::NothingToLift(format!(
            "pool {pool:?} has no pause or override in force"
        )));
    }
    record(
        db,
        now,
        pool,
        EventKind::Lift,
        Some(actor),
        reason,
        None,
        Some(format!("lifted {n} control(s)")),
    )
    .await?;
    Ok(())
}
