//! Stored days of busy seconds (docs/src/http-api.md, "Stored books"): for every whole day that is over, the
//! busy seconds of the build steps per (machine as stored, project, jobset) from the start of
//! the day's month to the end of the day, each step clipped, and the number of step pieces
//! (a step counted once per day it overlaps), so the whole days of any window inside a month
//! are the difference of two stored days and only its edge days are computed from the steps.
//! Busy seconds are additive; cents are not, so nothing priced is stored per day.
//!
//! - `book_days`: one row per day (`day`, unix seconds of its 00:00 UTC): `generation`, which
//!   a write of steps overlapping the day bumps in its own transaction, and `stored`, the
//!   generation its busy rows were computed from (`NULL` while none are stored). A day is fresh
//!   while `stored >= generation`.
//! - `book_day_busy`: the busy rows of the stored days (`busy_seconds`, `steps`: month to the
//!   end of `day`).
//! - `book_bounds`: named monotonic figures; `longest_step_seconds` is the longest step ever
//!   written (raised in the ingest's transaction, never lowered), so a query of the steps
//!   overlapping a window can bound `start_ts` from below by the window's start minus it and
//!   use the `start_ts` index instead of reading every step that started before the window's
//!   end. It starts as the longest step already stored.
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
                    .table("book_days")
                    .col(big_integer("day").primary_key())
                    .col(big_integer("generation"))
                    .col(big_integer_null("stored"))
                    .col(timestamp_with_time_zone_null("computed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_day_busy")
                    .col(big_integer("day"))
                    .col(string("machine"))
                    .col(string("project"))
                    .col(string("jobset"))
                    .col(big_integer("busy_seconds"))
                    .col(big_integer("steps"))
                    .primary_key(
                        Index::create()
                            .col("day")
                            .col("machine")
                            .col("project")
                            .col("jobset"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_bounds")
                    .col(string("name").primary_key())
                    .col(big_integer("value"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO book_bounds (name, value) \
                 SELECT 'longest_step_seconds', COALESCE(MAX(stop_ts - start_ts), 0) FROM build_steps",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["book_bounds", "book_day_busy", "book_days"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
