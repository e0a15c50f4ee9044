//! `email_outbox`: One email for one subscriber, the unit of exactly-once delivery: a report for
//! one (month, subscriber) or a subscription's confirmation (`kind`; for a confirmation `month`
//! holds the instant it was requested).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub month: String,
    pub subscriber_id: i64,
    pub email: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub smtp_response: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
