//! `hydra_jobset_holds`: Hydra jobsets the gate disabled, with their previous `enabled` value.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "hydra_jobset_holds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub pool: String,
    pub project: String,
    pub jobset: String,
    pub previous_enabled: i32,
    pub held_at: DateTimeUtc,
    pub status: HoldStatus,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A hold's status: `holding` (written before the PUT), `held` or `refused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    #[sea_orm(string_value = "holding")]
    Holding,
    #[sea_orm(string_value = "held")]
    Held,
    #[sea_orm(string_value = "refused")]
    Refused,
}

impl HoldStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Holding => "holding",
            HoldStatus::Held => "held",
            HoldStatus::Refused => "refused",
        }
    }
}
