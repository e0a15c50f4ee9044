//! `book_day_busy`: The busy seconds and step pieces per (machine as stored, project, jobset)
//! from the start of `day`'s month to the end of `day`, for the stored days of `book_days`.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_day_busy")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub machine: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub project: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub jobset: String,
    pub busy_seconds: i64,
    pub steps: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Deleting a day deletes its rows; the key is checked when the writing transaction commits,
    /// since a day's rows are written before its `book_days` row.
    #[sea_orm(
        belongs_to = "super::book_days::Entity",
        from = "Column::Day",
        to = "super::book_days::Column::Day",
        on_delete = "Cascade"
    )]
    BookDay,
}

impl Related<super::book_days::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookDay.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
