//! `expenses`: A paid expense, a reversal of one, or a manual expense, in ledger cents; key
//! (source, external_id). `tags` is a JSON array of strings.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "expenses")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub kind: String,
    pub paid_at: DateTimeUtc,
    pub account_slug: String,
    pub payee: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub tags: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub incurred_at: DateTimeUtc,
    pub amount_cents: i64,
    pub fees_cents: i64,
    pub original_amount: String,
    pub original_currency: String,
    pub expense_ref: Option<String>,
    pub reversal_of: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
