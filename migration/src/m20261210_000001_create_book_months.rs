//! Stored month books (docs/src/http-api.md, "Stored books"): a closed month's cost lines, its donation sums
//! per fund and each fund's figures at the month's end, keyed by the fingerprint of the config
//! they were computed under; and the stale marks that writes leave on the months they touch.
//!
//! - `book_months`: one row per (fingerprint, month) (unique), with the stale-mark generation
//!   of the month it was computed from.
//! - `book_month_lines`: the month's lines (`kind` = `jobset`, `idle` or `unpriced`).
//! - `book_month_funds`: per fund, the month's donation sums and cost, the sums from
//!   `ledger_start` to the month's end, the balance there and the cost of its last 30 days.
//! - `book_stale`: per month, a generation a write bumps in its own transaction.
//! - `book_locks`: one row per lock name; storing a month holds its row for the transaction.
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
                    .table("book_months")
                    .col(big_pk_auto("id"))
                    .col(string("fingerprint"))
                    .col(string("month"))
                    .col(big_integer("generation"))
                    .col(timestamp_with_time_zone("computed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_book_months_key")
                    .table("book_months")
                    .col("fingerprint")
                    .col("month")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_month_lines")
                    .col(big_pk_auto("id"))
                    .col(big_integer("book_month_id"))
                    .col(string("kind"))
                    .col(string("machine"))
                    .col(string_null("jobset"))
                    .col(string_null("pool"))
                    .col(string_null("fund"))
                    .col(big_integer("busy_seconds"))
                    .col(big_integer("cost_cents"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_book_month_lines_month")
                    .table("book_month_lines")
                    .col("book_month_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_month_funds")
                    .col(big_pk_auto("id"))
                    .col(big_integer("book_month_id"))
                    .col(string("fund"))
                    .col(big_integer("gross_cents"))
                    .col(big_integer("fees_cents"))
                    .col(big_integer("net_cents"))
                    .col(big_integer("spent_cents"))
                    .col(big_integer("net_to_date_cents"))
                    .col(big_integer("spent_to_date_cents"))
                    .col(big_integer("balance_cents"))
                    .col(big_integer("cost_30_days_cents"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_book_month_funds_fund")
                    .table("book_month_funds")
                    .col("book_month_id")
                    .col("fund")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_stale")
                    .col(string("month").primary_key())
                    .col(big_integer("generation"))
                    .col(timestamp_with_time_zone("marked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("book_locks")
                    .col(string("name").primary_key())
                    .col(timestamp_with_time_zone("taken_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "book_locks",
            "book_stale",
            "book_month_funds",
            "book_month_lines",
            "book_months",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
