//! `build_steps`: One build step on one machine; key (source, build, step); start/stop in unix seconds.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "build_steps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub build: i64,
    pub step: i32,
    pub project: String,
    pub jobset: String,
    pub job: Option<String>,
    pub system: Option<String>,
    pub machine: String,
    pub start_ts: i64,
    pub stop_ts: i64,
    pub status: Option<i32>,
    pub ingested_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
