//! `recurring_contributions`: An active or ended recurring contribution (monthly or yearly order).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "recurring_contributions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub account_slug: String,
    pub tier_slug: Option<String>,
    pub contributor_name: Option<String>,
    pub contributor_slug: Option<String>,
    pub contributor_url: Option<String>,
    pub anonymous: bool,
    pub frequency: String,
    pub amount_cents: i64,
    pub status: String,
    pub started_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
