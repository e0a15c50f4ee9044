//! The open month's stored day of jobs (`book_day_jobs`): the busy seconds and steps per
//! (machine as stored, project, jobset, job) of the build steps from the start of the open
//! month to the end of its last whole day that is over (`day`), each step clipped, with the
//! generation of that day (`book_days`) the rows were computed from. A read of the open
//! month's cost per job takes these rows and computes only the rest of the month to date from
//! the steps. One day's rows are kept (the latest).
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
                    .table("book_day_jobs")
                    .col(big_integer("day"))
                    .col(big_integer("generation"))
                    .col(string("machine"))
                    .col(string("project"))
                    .col(string("jobset"))
                    .col(text("job"))
                    .col(big_integer("busy_seconds"))
                    .col(big_integer("steps"))
                    .primary_key(
                        Index::create()
                            .col("day")
                            .col("machine")
                            .col("project")
                            .col("jobset")
                            .col("job"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("book_day_jobs").to_owned())
            .await
    }
}
