//! `jobsets`: Jobsets (`project:jobset`) as first seen in build steps.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "jobsets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub project: String,
    pub name: String,
    pub first_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
