//! `gate_deliveries`: one webhook delivery of a gate state change, claimed with a lease.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "gate_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The state event (`gate_events.id`): the `X-Buildfund-Delivery` id.
    pub event_id: i64,
    /// The webhook's index in `[[gate.webhooks]]` when the change was recorded.
    pub hook: i32,
    pub url: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub holder: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::gate_events::Entity",
        from = "Column::EventId",
        to = "super::gate_events::Column::Id",
        on_delete = "Cascade"
    )]
    GateEvent,
}

impl Related<super::gate_events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::GateEvent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
