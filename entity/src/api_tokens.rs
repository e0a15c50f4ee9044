//! `api_tokens`: API tokens; only the SHA-256 of the secret is stored.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    pub scope: TokenScope,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub token_prefix: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

/// What a token may do (`api_tokens.scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    #[sea_orm(string_value = "ingest")]
    Ingest,
    #[sea_orm(string_value = "scheduler")]
    Scheduler,
    #[sea_orm(string_value = "admin")]
    Admin,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Compares with the stored text (`scope == "admin"`).
impl PartialEq<&str> for TokenScope {
    fn eq(&self, other: &&str) -> bool {
        self.to_value() == *other
    }
}
