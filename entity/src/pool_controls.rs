//! `pool_controls`: An admin pause or override of a pool, active until lifted or expired.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "pool_controls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub pool: String,
    pub kind: ControlKind,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub actor: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub lifted_at: Option<DateTimeUtc>,
    pub lifted_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// An admin control: a `pause` (closed until lifted) or an `override` (allowed until it expires).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    #[sea_orm(string_value = "pause")]
    Pause,
    #[sea_orm(string_value = "override")]
    Override,
}

impl ControlKind {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Pause => "pause",
            ControlKind::Override => "override",
        }
    }
}
