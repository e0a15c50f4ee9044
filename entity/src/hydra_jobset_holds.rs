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
    /// `holding` (written before the PUT), `held` or `refused`.
    pub status: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
