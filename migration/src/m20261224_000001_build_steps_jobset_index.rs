//! An index on `build_steps (jobset, start_ts)`: a read of cost per job filtered by jobset
//! (`GET /api/v1/costs/jobs?jobset=…`, or by pool: the pool's jobsets) reads only those
//! jobsets' steps of the window, one index range per jobset, instead of every machine's steps
//! of the window through `(machine, start_ts)`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_build_steps_jobset_start";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("build_steps")
                    .col("jobset")
                    .col("start_ts")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("build_steps").to_owned())
            .await
    }
}
