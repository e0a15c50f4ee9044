//! `opencollective_checks`: one check of OpenCollective's own balance against the ledger, run
//! after a sync (`ok`, `drift` or `skipped` with a reason).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "opencollective_checks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub collective: String,
    pub checked_at: DateTimeUtc,
    pub through: DateTimeUtc,
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub reason: Option<String>,
    pub balance_oc_cents: Option<i64>,
    pub balance_oc_start_cents: Option<i64>,
    pub ledger_cents: Option<i64>,
    pub drift_cents: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
