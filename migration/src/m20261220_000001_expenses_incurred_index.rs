//! An index on `expenses.incurred_at`: the reconciliation of a month reads the invoices that
//! pay for it by the month of their `incurred_at` (arrears: the month after; advance: the
//! month), so that read stays one index range however many expenses are stored.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_expenses_incurred")
                    .table("expenses")
                    .col("incurred_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_expenses_incurred")
                    .table("expenses")
                    .to_owned(),
            )
            .await
    }
}
