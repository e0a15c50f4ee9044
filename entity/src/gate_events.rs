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
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
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
