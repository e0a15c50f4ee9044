//! Expenses (money out) and the OpenCollective check (docs/src/donations.md, "Expenses" and "The
//! OpenCollective check").
//!
//! - `expenses`: one row per paid expense, reversal of one, or manual expense, in ledger cents;
//!   key (`source`, `external_id`): for OpenCollective the id of the EXPENSE DEBIT transaction
//!   (of the CREDIT that reverses it for a reversal), for a manual expense its idempotency key.
//!   `tags` is a JSON array of the expense's tags as the source gave them; `incurred_at` is the
//!   invoice's date (00:00:00 UTC of it) or the instant given; `expense_ref` is OpenCollective's
//!   expense id (a reversal carries its expense's); `reversal_of` the `external_id` of the record
//!   a reversal reverses; `request_hash` the hash of a manual request, for replays and
//!   conflicts. Indexed by `paid_at`, the instant an expense is a cost at.
//! - `opencollective_checks`: each check of OpenCollective's own balance against the ledger,
//!   after a sync: the instant `through` the sync had read, the two balances read, the
//!   ledger's sum and the drift, or `skipped` with the reason.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn ts(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("expenses")
                    .col(big_pk_auto("id"))
                    .col(string("source"))
                    .col(string("external_id"))
                    .col(string("kind"))
                    .col(ts("paid_at"))
                    .col(string("account_slug"))
                    .col(string_null("payee"))
                    .col(text("tags"))
                    .col(text_null("description"))
                    .col(ts("incurred_at"))
                    .col(big_integer("amount_cents"))
                    .col(big_integer("fees_cents"))
                    .col(string("original_amount"))
                    .col(string("original_currency"))
                    .col(string_null("expense_ref"))
                    .col(string_null("reversal_of"))
                    .col(string_null("request_hash"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_expenses_key")
                    .table("expenses")
                    .col("source")
                    .col("external_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_expenses_paid")
                    .table("expenses")
                    .col("paid_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("opencollective_checks")
                    .col(big_pk_auto("id"))
                    .col(string("collective"))
                    .col(ts("checked_at"))
                    .col(ts("through"))
                    .col(string("status"))
                    .col(text_null("reason"))
                    .col(big_integer_null("balance_oc_cents"))
                    .col(big_integer_null("balance_oc_start_cents"))
                    .col(big_integer_null("ledger_cents"))
                    .col(big_integer_null("drift_cents"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_opencollective_checks_at")
                    .table("opencollective_checks")
                    .col("checked_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["opencollective_checks", "expenses"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
