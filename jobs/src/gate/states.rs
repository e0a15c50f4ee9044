//! The gate's states and figures: a pool's [`State`], the admin [`Control`]s in force, one
//! pool's [`PoolGate`] with its figures and reason, every pool's [`Snapshot`] at an instant,
//! and the [`Decision`] the API answers for one jobset.
use crate::calendar::rfc3339;
use crate::gate::store::StoredControl;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// A pool's state, stored as `gate_events`' `from_state`/`to_state`.
pub use buildfund_entity::gate_events::State;

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

/// A pool's [`Decision`] serialised once per snapshot, all of it but the jobset: the body of
/// `GET /api/v1/gate/{project}/{jobset}` is `{"jobset":` + the jobset as a JSON string + this
/// tail (the pool's fields and `stale`, then `}`), byte for byte what serialising the
/// [`Decision`] gives.
#[derive(Clone, Debug)]
pub struct DecisionTail(bytes::Bytes);

impl DecisionTail {
    pub fn new(gate: &PoolGate, stale: bool) -> Result<DecisionTail, serde_json::Error> {
        let object = serde_json::to_vec(gate)?;
        // `{...}` of a struct with fields: the fields are what is between the braces.
        let fields = &object[1..object.len() - 1];
        let mut tail = Vec::with_capacity(fields.len() + 16);
        tail.push(b',');
        tail.extend_from_slice(fields);
        tail.extend_from_slice(if stale {
            b",\"stale\":true}"
        } else {
            b",\"stale\":false}"
        });
        Ok(DecisionTail(tail.into()))
    }

    /// The whole answer for `jobset`.
    pub fn body(&self, jobset: &str) -> Vec<u8> {
        const HEAD: &[u8] = b"{\"jobset\":";
        let mut body = Vec::with_capacity(HEAD.len() + jobset.len() + 2 + self.0.len());
        body.extend_from_slice(HEAD);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, jobset);
        body.extend_from_slice(&self.0);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(paused: Option<Control>) -> PoolGate {
        PoolGate {
            pool: "cuda".into(),
            fund: "general".into(),
            allow: paused.is_none(),
            state: if paused.is_some() {
                State::Closed
            } else {
                State::Warn
            },
            reason: "cuda spent 640.00 of 800.00 EUR \"this\" month\n\u{e9}".into(),
            spent_cents: 64000,
            budget_cents: Some(80000),
            projected_cents: 91240,
            fund_balance_cents: -412000,
            runway_days: None,
            reserve_cents: 5000,
            warn_at: Decimal::new(8, 1),
            paused,
            override_: None,
            as_of: "2026-11-25T01:00:00Z".into(),
        }
    }

    #[test]
    fn the_tail_gives_the_bytes_of_the_serialised_decision() {
        let controls = [
            None,
            Some(Control {
                id: 7,
                reason: "fan </script> replacement".into(),
                since: "2026-11-24T00:00:00Z".into(),
                until: Some("2026-11-26T00:00:00Z".into()),
            }),
        ];
        let jobsets = [
            "nixpkgs:cuda",
            "a\"b:c\\\\d",
            "t\u{0}ab\u{1f}:\u{2028}\u{1F600}",
            "",
        ];
        for paused in controls {
            let g = gate(paused);
            for stale in [false, true] {
                let tail = DecisionTail::new(&g, stale).unwrap();
                for jobset in jobsets {
                    let want = serde_json::to_vec(&Decision {
                        jobset: jobset.to_string(),
                        gate: &g,
                        stale,
                    })
                    .unwrap();
                    assert_eq!(
                        String::from_utf8(tail.body(jobset)).unwrap(),
                        String::from_utf8(want).unwrap()
                    );
                }
            }
        }
    }
}
