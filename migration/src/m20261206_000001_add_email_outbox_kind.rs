//! The outbox carries two kinds of email (docs/src/monthly-email.md, "Monthly email"): `report` (one per (month,
//! subscriber), as before) and `confirm` (a subscription's confirmation email, queued in the
//! same transaction as the subscriber, so a relay's 4xx delays it instead of losing it). Rows
//! already there are reports. For a confirmation, `month` holds the instant it was requested
//! (RFC 3339 to the microsecond), which keeps the unique (month, subscriber_id) index true.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("email_outbox")
                    .add_column(ColumnDef::new("kind").string().not_null().default("report"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("email_outbox")
                    .drop_column("kind")
                    .to_owned(),
            )
            .await
    }
}
