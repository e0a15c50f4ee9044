//! The gate's states and figures: a pool's [`State`], the admin [`Control`]s in force, one
//! pool's [`PoolGate`] with its figures and reason, every pool's [`Snapshot`] at an instant,
//! and the [`Decision`] the API answers for one jobset.
use crate::calendar::rfc3339;
use crate::gate::store::StoredControl;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// An active admin pause or override, as the public sees it: without the admin's name, which
/// only the audit (`GET /api/v1/gate/events`, a scheduler or admin token) shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Control {
    pub id: i64,
    pub reason: String,
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl From<&StoredControl> for Control {
    fn from(m: &StoredControl) -> Self {
        Control {
            id: m.id,
            reason: m.reason.clone(),
            since: rfc3339(m.created_at),
            until: m.expires_at.map(rfc3339),
        }
    }
}

/// One pool's gate at an instant, with the figures it was decided from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// The share of the budget at which the gate warns, a decimal as text (`"0.8"`).
    #[schema(value_type = String)]
    pub warn_at: Decimal,
    pub paused: Option<Control>,
    #[serde(rename = "override")]
    pub override_: Option<Control>,
    pub as_of: String,
}

/// A fund's standing at the snapshot's instant: `balance_cents` and `runway_days` as
/// `GET /api/v1/funds` gives them for that instant (none: no spending in the last 30 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FundStanding {
    pub balance_cents: i64,
    pub runway_days: Option<i64>,
}

/// Every pool's gate at one instant (the implicit pool `other` included), with every
/// configured fund's standing it was decided from (the farm's gauges read both).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub pools: BTreeMap<String, PoolGate>,
    pub funds: BTreeMap<String, FundStanding>,
}

/// The answer of `GET /api/v1/gate/{project}/{jobset}`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Decision<'a> {
    pub jobset: String,
    #[serde(flatten)]
    pub gate: &'a PoolGate,
    pub stale: bool,
}
