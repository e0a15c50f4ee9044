//! `donations`: A donation, fee or refund record in ledger cents; key (source, external_id).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "donations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub kind: String,
    pub occurred_at: DateTimeUtc,
    pub account_slug: String,
    pub tier_slug: Option<String>,
    pub contributor_name: Option<String>,
    pub contributor_slug: Option<String>,
    pub contributor_url: Option<String>,
    pub anonymous: bool,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub original_amount: String,
    pub original_currency: String,
    pub refund_of: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
