//! `book_days`: One whole day of the stored busy seconds (`day`, unix seconds of its 00:00 UTC):
//! the `generation` a write of steps overlapping it bumps, and the generation its busy rows were
//! `stored` from (none while none are). A day is fresh while `stored >= generation`.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "book_days")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    pub generation: i64,
    pub stored: Option<i64>,
    pub computed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::book_day_busy::Entity")]
    BookDayBusy,
}

impl Related<super::book_day_busy::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BookDayBusy.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
