//! The budget gate (cost-model.md, "Gate"): may this jobset build now?
//!
//! [`evaluate`] computes every pool's state exactly at an instant. [`Gate`] keeps the latest
//! evaluation in memory for the hot path, refreshes it (after ingests and admin changes, and
//! on a timer), records state changes in `gate_events`, and hands each change to the outgoing
//! actions ([`crate::gate::actions`]: webhooks and Hydra).
pub mod actions;

use crate::books::costs::month_costs;
use crate::books::funds::standing;
use crate::calendar::{rfc3339, Month};
use crate::config::{Config, OTHER_POOL};
use crate::money::format_cents;
use crate::money::round_half_away_from_zero;
use buildfund_entity::{gate_events, pool_controls};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// The smallest `elapsed` of the projection: one hour (cost-model.md).
pub const MIN_ELAPSED_SECONDS: i64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Open,
    Warn,
    Closed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Warn => "warn",
            State::Closed => "closed",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An active admin pause or override.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Control {
    pub id: i64,
    pub actor: String,
    pub reason: String,
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl From<&pool_controls::Model> for Control {
    fn from(m: &pool_controls::Model) -> Self {
        Control {
            id: m.id,
            actor: m.actor.clone(),
            reason: m.reason.clone(),
            since: rfc3339(m.created_at),
            until: m.expires_at.map(rfc3339),
        }
    }
}

/// One pool's gate at an instant, with the figures it was decided from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolGate {
    pub pool: String,
    pub fund: String,
    pub allow: bool,
    pub state: State,
    pub reason: String,
    pub spent_cents: i64,
    pub budget_cents: Option<i64>,
    pub projected_cents: i64,
    pub fund_balance_cents: i64,
    pub runway_days: Option<i64>,
    pub reserve_cents: i64,
    pub warn_at: Decimal,
    pub paused: Option<Control>,
    #[serde(rename = "override")]
    pub override_: Option<Control>,
    pub as_of: String,
}

/// Every pool's gate at one instant (the implicit pool `other` included).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub pools: BTreeMap<String, PoolGate>,
}

/// The answer of `GET /api/v1/gate/{project}/{jobset}`.
#[derive(Clone, Debug, Serialize)]
pub struct Decision<'a> {
    pub jobset: String,
    #[serde(flatten)]
    pub gate: &'a PoolGate,
    pub stale: bool,
}

/// `projected = spent * seconds_in_month / max(elapsed, 3600)`, rounded half away from zero.
pub fn projected_cents(spent_cents: i64, seconds_in_month: i64, elapsed: i64) -> i64 {
    let elapsed = elapsed.max(MIN_ELAPSED_SECONDS);
    round_half_away_from_zero(
        spent_cents as i128 * seconds_in_month as i128,
        elapsed as i128,
    ) as i64
}

/// The figures a state is decided from.
#[derive(Clone, Debug)]
pub struct Figures {
    pub spent: i64,
    pub budget: Option<i64>,
    pub warn_at: Decimal,
    pub projected: i64,
    pub balance: i64,
    pub reserve: i64,
}

/// Why a pool is in its state, each cause a short phrase.
pub fn causes(f: &Figures, paused: bool) -> (State, Vec<String>) {
    let mut closed = Vec::new();
    if paused {
        closed.push("paused by an admin".to_string());
    }
    if let Some(b) = f.budget {
        if f.spent >= b {
            closed.push("the budget is spent".to_string());
        }
    }
    if f.balance <= f.reserve {
        closed.push(format!(
            "the fund's balance {} is at or below its reserve {}",
            format_cents(f.balance),
            format_cents(f.reserve)
        ));
    }
    if !closed.is_empty() {
        return (State::Closed, closed);
    }
    let mut warn = Vec::new();
    if let Some(b) = f.budget {
        if Decimal::from(f.spent) >= f.warn_at * Decimal::from(b) {
            warn.push(format!(
                "{}% of the budget is spent",
                (f.warn_at * Decimal::ONE_HUNDRED).normalize()
            ));
        }
        if f.projected > b {
            warn.push("the projection exceeds the budget".to_string());
        }
    }
    if (f.balance as i128) - (f.projected as i128 - f.spent as i128) <= f.reserve as i128 {
        warn.push(format!(
            "the projected spending would take the fund's balance {} to its reserve {}",
            format_cents(f.balance),
            format_cents(f.reserve)
        ));
    }
    if !warn.is_empty() {
        return (State::Warn, warn);
    }
    (State::Open, Vec::new())
}

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

/// Every pool's gate exactly at `t`.
pub async fn evaluate(
    db: &impl ConnectionTrait,
    config: &Config,
    t: DateTime<Utc>,
) -> Result<Snapshot, DbErr> {
    let month = Month::of(t);
    let span = month.span();
    let seconds_in_month = span.end - span.start;
    let elapsed = t.timestamp() - span.start;
    let costs = month_costs(db, config, month, t).await?;
    let mut spent: HashMap<&str, i64> = HashMap::new();
    for line in &costs.lines {
        if let Some(pool) = &line.pool {
            *spent.entry(pool.as_str()).or_insert(0) += line.cost_cents;
        }
    }
    let standing = standing(db, config, t).await?;
    let controls = controls_at(db, t).await?;
    let default_fund = config.default_fund();
    let mut pools: Vec<(&str, &str, Option<i64>, Decimal)> = config
        .pools
        .iter()
        .map(|p| {
            (
                p.slug.as_str(),
                p.fund.as_str(),
                p.monthly_budget_cents,
                p.warn_at,
            )
        })
        .collect();
    pools.push((
        OTHER_POOL,
        default_fund.slug.as_str(),
        None,
        Decimal::new(8, 1),
    ));
    let mut out = BTreeMap::new();
    for (slug, fund_slug, budget, warn_at) in pools {
        let fund = config
            .funds
            .iter()
            .find(|f| f.slug == fund_slug)
            .unwrap_or(default_fund);
        let spent_cents = spent.get(slug).copied().unwrap_or(0);
        let figures = Figures {
            spent: spent_cents,
            budget,
            warn_at,
            projected: projected_cents(spent_cents, seconds_in_month, elapsed),
            balance: standing.balance.get(fund_slug).copied().unwrap_or(0),
            reserve: fund.reserve_cents,
        };
        // The latest pause and the latest override in force.
        let paused = controls
            .iter()
            .rev()
            .find(|c| c.pool == slug && c.kind == "pause")
            .map(Control::from);
        let override_ = controls
            .iter()
            .rev()
            .find(|c| c.pool == slug && c.kind == "override")
            .map(Control::from);
        let (state, why) = causes(&figures, paused.is_some());
        let allow = state != State::Closed || override_.is_some();
        out.insert(
            slug.to_string(),
            PoolGate {
                pool: slug.to_string(),
                fund: fund_slug.to_string(),
                allow,
                state,
                reason: reason(
                    slug,
                    &config.currency,
                    &figures,
                    &why,
                    paused.as_ref(),
                    override_.as_ref(),
                ),
                spent_cents,
                budget_cents: budget,
                projected_cents: figures.projected,
                fund_balance_cents: figures.balance,
                runway_days: standing.runway_days(fund_slug),
                reserve_cents: figures.reserve,
                warn_at,
                paused,
                override_,
                as_of: rfc3339(t),
            },
        );
    }
    Ok(Snapshot { at: t, pools: out })
}

/// "gpu-tests spent 57.33 of 60.00 EUR this month; projected 91.14", then the causes.
fn reason(
    pool: &str,
    currency: &str,
    f: &Figures,
    causes: &[String],
    paused: Option<&Control>,
    override_: Option<&Control>,
) -> String {
    let mut s = match f.budget {
        Some(b) => format!(
            "{pool} spent {} of {} {currency} this month; projected {}",
            format_cents(f.spent),
            format_cents(b),
            format_cents(f.projected)
        ),
        None => format!(
            "{pool} spent {} {currency} this month (no budget); projected {}",
            format_cents(f.spent),
            format_cents(f.projected)
        ),
    };
    for c in causes {
        s.push_str("; ");
        match (c.as_str(), paused) {
            ("paused by an admin", Some(p)) => {
                s.push_str(&format!("paused by {}: {}", p.actor, p.reason))
            }
            _ => s.push_str(c),
        }
    }
    if let Some(o) = override_ {
        s.push_str(&format!(
            "; allowed by {}'s override until {}: {}",
            o.actor,
            o.until.as_deref().unwrap_or("?"),
            o.reason
        ));
    }
    s
}

/// The pool a jobset belongs to: the first configured pool matching `project:jobset`, else
/// the implicit pool `other`.
pub fn pool_slug<'a>(config: &'a Config, jobset_key: &str) -> &'a str {
    config
        .pool_of(jobset_key)
        .map(|p| p.slug.as_str())
        .unwrap_or(OTHER_POOL)
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0:?} is not a pool")]
    UnknownPool(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NothingToLift(String),
    #[error(transparent)]
    Db(#[from] DbErr),
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

/// Records a note about the gate's outgoing actions (a failed webhook, a Hydra refusal).
pub async fn record_note(
    db: &impl ConnectionTrait,
    pool: &str,
    kind: &str,
    reason: &str,
    details: Option<String>,
) -> Result<(), DbErr> {
    record(db, Utc::now(), pool, kind, None, reason, None, details)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(spent: i64, budget: Option<i64>, projected: i64, balance: i64, reserve: i64) -> Figures {
        Figures {
            spent,
            budget,
            warn_at: Decimal::new(8, 1),
            projected,
            balance,
            reserve,
        }
    }

    #[test]
    fn projection_rounds_half_away_from_zero_with_an_hour_floor() {
        // 5733 * 2592000 / 1630800 = 9112.05... -> 9112
        assert_eq!(projected_cents(5733, 2_592_000, 1_630_800), 9112);
        // elapsed below an hour counts as an hour: 100 * 2592000 / 3600 = 72000
        assert_eq!(projected_cents(100, 2_592_000, 60), 72000);
        // exactly half: 1 * 3 / 2 = 1.5 -> 2
        assert_eq!(projected_cents(1, 3 * 3600, 2 * 3600), 2);
    }

    #[test]
    fn states_follow_the_contract_order() {
        assert_eq!(causes(&f(0, Some(100), 0, 1000, 0), false).0, State::Open);
        // warn_at: 80 >= 0.8 * 100
        assert_eq!(causes(&f(80, Some(100), 80, 1000, 0), false).0, State::Warn);
        assert_eq!(causes(&f(79, Some(100), 79, 1000, 0), false).0, State::Open);
        // projection over budget
        assert_eq!(
            causes(&f(10, Some(100), 101, 1000, 0), false).0,
            State::Warn
        );
        // spent reaches budget
        assert_eq!(
            causes(&f(100, Some(100), 100, 1000, 0), false).0,
            State::Closed
        );
        // balance at the reserve
        assert_eq!(causes(&f(0, None, 0, 50, 50), false).0, State::Closed);
        // balance minus the projected rest at the reserve: 150 - (110 - 10) = 50
        assert_eq!(causes(&f(10, None, 110, 150, 50), false).0, State::Warn);
        assert_eq!(causes(&f(10, None, 109, 150, 50), false).0, State::Open);
        // a pause closes whatever the figures
        assert_eq!(causes(&f(0, None, 0, 1000, 0), true).0, State::Closed);
    }
}
