//! Migrations for buildfund. Each one is written with sea-query's schema builder only, so the
//! same code creates the same tables on SQLite (the embedded default) and PostgreSQL.
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_tables;
mod m20261201_000001_create_hydra_jobset_holds;
mod m20261205_000001_create_app_secrets;
mod m20261206_000001_add_email_outbox_kind;
mod m20261210_000001_create_book_months;
mod m20261212_000001_create_book_month_jobs;
mod m20261213_000001_book_days;
mod m20261214_000001_gate_claims;
mod m20261216_000001_webhook_syncs;
mod m20261218_000001_create_expenses;
mod m20261220_000001_expenses_incurred_index;
mod m20261222_000001_foreign_keys;
mod m20261224_000001_build_steps_jobset_index;
mod m20261224_000002_book_day_jobs;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_tables::Migration),
            Box::new(m20261201_000001_create_hydra_jobset_holds::Migration),
            Box::new(m20261205_000001_create_app_secrets::Migration),
            Box::new(m20261206_000001_add_email_outbox_kind::Migration),
            Box::new(m20261210_000001_create_book_months::Migration),
            Box::new(m20261212_000001_create_book_month_jobs::Migration),
            Box::new(m20261213_000001_book_days::Migration),
            Box::new(m20261214_000001_gate_claims::Migration),
            Box::new(m20261216_000001_webhook_syncs::Migration),
            Box::new(m20261218_000001_create_expenses::Migration),
            Box::new(m20261220_000001_expenses_incurred_index::Migration),
            Box::new(m20261222_000001_foreign_keys::Migration),
            Box::new(m20261224_000001_build_steps_jobset_index::Migration),
            Box::new(m20261224_000002_book_day_jobs::Migration),
        ]
    }
}
