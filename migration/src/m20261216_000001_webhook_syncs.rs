//! Job runs read by their last success. OpenCollective's webhooks start syncs at any instant
//! besides the scheduled ticks, and `/metrics` reports when each job last ended `ok`
//! (`buildfund_job_last_success_timestamp_seconds`): this index makes that one lookup per job
//! however many runs `job_runs` keeps, so an anonymous scrape does no work that grows with them.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_job_runs_success";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("job_runs")
                    .col("job")
                    .col("outcome")
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("job_runs").to_owned())
            .await
    }
}
