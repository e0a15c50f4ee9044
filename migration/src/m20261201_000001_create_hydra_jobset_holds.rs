//! Hydra jobsets the gate disabled when their pool closed, with the `enabled` value they had,
//! so the gate can put it back when the pool opens again (docs/src/gate.md, "Gate").
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("hydra_jobset_holds")
                    .col(big_pk_auto("id"))
                    .col(string("pool"))
                    .col(string("project"))
                    .col(string("jobset"))
                    .col(integer("previous_enabled"))
                    .col(timestamp_with_time_zone("held_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_hydra_jobset_holds_jobset")
                    .table("hydra_jobset_holds")
                    .col("project")
                    .col("jobset")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("hydra_jobset_holds").to_owned())
            .await
    }
}
