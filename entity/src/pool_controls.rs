//! `pool_controls`: An admin pause or override of a pool, active until lifted or expired.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "pool_controls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub pool: String,
    pub kind: String,
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
