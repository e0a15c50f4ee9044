//! `book_day_jobs`: the open month's stored day of jobs: busy seconds and steps per (machine
//! as stored, project, jobset, job) from the start of `day`'s month to the end of `day`,
//! computed from `generation` of `day` in `book_days`.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_day_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    pub generation: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub machine: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub project: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub jobset: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub job: String,
    pub busy_seconds: i64,
    pub steps: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
