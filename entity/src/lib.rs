//! sea-orm entities of buildfund, one module per table of `migration/`.
//! They hold data only; behaviour lives in `buildfund-jobs`.

pub mod api_tokens;
pub mod app_secrets;
pub mod book_bounds;
pub mod book_day_busy;
pub mod book_day_jobs;
pub mod book_days;
pub mod book_locks;
pub mod book_month_funds;
pub mod book_month_jobs;
pub mod book_month_lines;
pub mod book_months;
pub mod book_stale;
pub mod build_steps;
pub mod donations;
pub mod email_outbox;
pub mod expenses;
pub mod funds;
pub mod gate_deliveries;
pub mod gate_events;
pub mod hydra_jobset_holds;
pub mod job_leases;
pub mod job_runs;
pub mod jobsets;
pub mod machines;
pub mod opencollective_checks;
pub mod pool_controls;
pub mod pools;
pub mod recurring_contributions;
pub mod subscribers;
pub mod sync_cursors;

pub mod prelude {
    pub use super::api_tokens::Entity as ApiTokens;
    pub use super::app_secrets::Entity as AppSecrets;
    pub use super::book_bounds::Entity as BookBounds;
    pub use super::book_day_busy::Entity as BookDayBusy;
    pub use super::book_day_jobs::Entity as BookDayJobs;
    pub use super::book_days::Entity as BookDays;
    pub use super::book_locks::Entity as BookLocks;
    pub use super::book_month_funds::Entity as BookMonthFunds;
    pub use super::book_month_jobs::Entity as BookMonthJobs;
    pub use super::book_month_lines::Entity as BookMonthLines;
    pub use super::book_months::Entity as BookMonths;
    pub use super::book_stale::Entity as BookStale;
    pub use super::build_steps::Entity as BuildSteps;
    pub use super::donations::Entity as Donations;
    pub use super::email_outbox::Entity as EmailOutbox;
    pub use super::expenses::Entity as Expenses;
    pub use super::funds::Entity as Funds;
    pub use super::gate_deliveries::Entity as GateDeliveries;
    pub use super::gate_events::Entity as GateEvents;
    pub use super::hydra_jobset_holds::Entity as HydraJobsetHolds;
    pub use super::job_leases::Entity as JobLeases;
    pub use super::job_runs::Entity as JobRuns;
    pub use super::jobsets::Entity as Jobsets;
    pub use super::machines::Entity as Machines;
    pub use super::opencollective_checks::Entity as OpencollectiveChecks;
    pub use super::pool_controls::Entity as PoolControls;
    pub use super::pools::Entity as Pools;
    pub use super::recurring_contributions::Entity as RecurringContributions;
    pub use super::subscribers::Entity as Subscribers;
    pub use super::sync_cursors::Entity as SyncCursors;
}
