//! `gate_events`: Audit of gate state changes and admin actions.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "gate_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub pool: String,
    pub kind: EventKind,
    pub from_state: Option<State>,
    pub to_state: Option<State>,
    pub actor: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub details: Option<String>,
    /// A state change's claim, `<pool>#<previous state event id>` (unique); none otherwise.
    #[serde(skip_serializing)]
    pub claim: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::gate_deliveries::Entity")]
    GateDeliveries,
}

impl Related<super::gate_deliveries::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::GateDeliveries.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// What a gate event records: a pool's state change, an admin action, or the outcome of an
/// outgoing action (a webhook, a call to Hydra).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[sea_orm(string_value = "state")]
    State,
    #[sea_orm(string_value = "pause")]
    Pause,
    #[sea_orm(string_value = "override")]
    Override,
    #[sea_orm(string_value = "lift")]
    Lift,
    #[sea_orm(string_value = "webhook_failed")]
    WebhookFailed,
    #[sea_orm(string_value = "hydra_failed")]
    HydraFailed,
    #[sea_orm(string_value = "hydra_refused")]
    HydraRefused,
    #[sea_orm(string_value = "hydra_disabled")]
    HydraDisabled,
    #[sea_orm(string_value = "hydra_restored")]
    HydraRestored,
    #[sea_orm(string_value = "hydra_cancelled")]
    HydraCancelled,
}

impl EventKind {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Pause => "pause",
            EventKind::Override => "override",
            EventKind::Lift => "lift",
            EventKind::WebhookFailed => "webhook_failed",
            EventKind::HydraFailed => "hydra_failed",
            EventKind::HydraRefused => "hydra_refused",
            EventKind::HydraDisabled => "hydra_disabled",
            EventKind::HydraRestored => "hydra_restored",
            EventKind::HydraCancelled => "hydra_cancelled",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool's gate state: `open` (within budget), `warn` (near it) or `closed`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "warn")]
    Warn,
    #[sea_orm(string_value = "closed")]
    Closed,
}

impl State {
    /// The stored string.
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
