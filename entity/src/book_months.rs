//! `book_months`: A stored closed month of the books, keyed by (fingerprint, month).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_months")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub fingerprint: String,
    pub month: String,
    pub generation: i64,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::book_month_lines::Entity")]
    BookMonthLines,
    #[sea_orm(has_many = "super::book_month_funds::Entity")]
    BookMonthFunds,
    #[sea_orm(has_many = "super::book_month_jobs::Entity")]
    BookMonthJobs,
}

impl Related<super::book_month_lines::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookMonthLines.def()
    }
}

impl Related<super::book_month_funds::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookMonthFunds.def()
    }
}

impl Related<super::book_month_jobs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookMonthJobs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
