//! `book_month_jobs`: One (jobset, job) of a stored month with its busy seconds, steps and cost.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_month_jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub book_month_id: i64,
    pub jobset: String,
    pub job: String,
    pub pool: String,
    pub fund: String,
    pub busy_seconds: i64,
    pub steps: i64,
    pub cost_cents: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::book_months::Entity",
        from = "Column::BookMonthId",
        to = "super::book_months::Column::Id",
        on_delete = "Cascade"
    )]
    BookMonth,
}

impl Related<super::book_months::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookMonth.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
