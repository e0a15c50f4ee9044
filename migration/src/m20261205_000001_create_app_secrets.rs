//! Secrets buildfund generates for itself when the environment gives none: the key that signs
//! the links of subscription emails (docs/src/monthly-email.md, "Monthly email"). One row per name; the first
//! instance to need a secret inserts it and every instance reads the same one, so links stay
//! valid across restarts and replicas.
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
                    .table("app_secrets")
                    .col(string("name").primary_key())
                    .col(string("value"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("app_secrets").to_owned())
            .await
    }
}
