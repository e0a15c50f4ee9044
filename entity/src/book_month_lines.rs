//! `book_month_lines`: One cost line (`jobset`, `idle`) or unpriced line of a stored month.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_month_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub book_month_id: i64,
    pub kind: String,
    pub machine: String,
    pub jobset: Option<String>,
    pub pool: Option<String>,
    pub fund: Option<String>,
    pub busy_seconds: i64,
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
