//! The gate's side effects claimed once across instances (docs/src/gate.md, "Gate"):
//!
//! - `gate_events.claim`: a state change's key, `<pool>#<id of the state event it follows>`
//!   (`#0` for a pool's first), unique: of several instances that see the same change, exactly
//!   one inserts it and owns what it does outside.
//! - `gate_deliveries`: one row per (state event, webhook), written with the event; its body is
//!   fixed there, the event id is its `X-Buildfund-Delivery`, and an instance claims it with a
//!   lease (`lease_until`, `holder`) before sending.
//! - `hydra_jobset_holds.status`: `holding` (written before the PUT that disables the jobset),
//!   `held` (the PUT succeeded, or the jobset was disabled already), `refused` (Hydra or the
//!   URL check refused it: nothing to restore).
//! - `job_leases.token`: the fencing token, one more on each acquisition.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table("gate_events")
                    .add_column(ColumnDef::new("claim").string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_gate_events_claim")
                    .table("gate_events")
                    .col("claim")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("job_leases")
                    .add_column(ColumnDef::new("token").big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("hydra_jobset_holds")
                    .add_column(ColumnDef::new("status").string().not_null().default("held"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("gate_deliveries")
                    .col(big_pk_auto("id"))
                    .col(big_integer("event_id"))
                    .col(integer("hook"))
                    .col(string("url"))
                    .col(text("body"))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(string_null("holder"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone_null("failed_at"))
                    .col(text_null("last_error"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_gate_deliveries_event_hook")
                    .table("gate_deliveries")
                    .col("event_id")
                    .col("hook")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("gate_deliveries").to_owned())
            .await?;
        for (table, column) in [("hydra_jobset_holds", "status"), ("job_leases", "token")] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ux_gate_events_claim")
                    .table("gate_events")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("gate_events")
                    .drop_column("claim")
                    .to_owned(),
            )
            .await
    }
}
