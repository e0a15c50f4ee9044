//! Cost per job of stored months, and an index for the per-machine queries behind it.
//!
//! - `book_month_jobs`: one row per (jobset, job) of a stored month (`book_month_id` of
//!   `book_months`), with its pool, fund, busy seconds, distinct steps and cents.
//! - `ix_build_steps_machine_start` on `build_steps (machine, start_ts)`: the cost per job runs
//!   one grouped query per (machine, window part), which reads only that machine's steps that
//!   start in the part or within the longest step before it (`book_bounds`).
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
                    .table("book_month_jobs")
                    .col(big_pk_auto("id"))
                    .col(big_integer("book_month_id"))
                    .col(string("jobset"))
                    .col(text("job"))
                    .col(string("pool"))
                    .col(string("fund"))
                    .col(big_integer("busy_seconds"))
                    .col(big_integer("steps"))
                    .col(big_integer("cost_cents"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_book_month_jobs_month")
                    .table("book_month_jobs")
                    .col("book_month_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_build_steps_machine_start")
                    .table("build_steps")
                    .col("machine")
                    .col("start_ts")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_build_steps_machine_start")
                    .table("build_steps")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("book_month_jobs").to_owned())
            .await
    }
}
