//! `funds`: Funds as last loaded from the configuration.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "funds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub slug: String,
    pub name: String,
    pub is_default: bool,
    pub monthly_goal_cents: Option<i64>,
    pub opening_balance_cents: i64,
    pub reserve_cents: i64,
    #[sea_orm(column_type = "Text")]
    pub accounts: String,
    #[sea_orm(column_type = "Text")]
    pub tiers: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
