//! `book_month_funds`: One fund's figures of a stored month and at its end.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_month_funds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub book_month_id: i64,
    pub fund: String,
    pub gross_cents: i64,
    pub fees_cents: i64,
    pub net_cents: i64,
    pub spent_cents: i64,
    pub net_to_date_cents: i64,
    pub spent_to_date_cents: i64,
    pub balance_cents: i64,
    pub cost_30_days_cents: i64,
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
