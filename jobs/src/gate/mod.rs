//! The budget gate (cost-model.md, "Gate"): may this jobset build now?
//!
//! - [`evaluate`]: every pool's state exactly at an instant, from the books and the controls;
//! - [`controls`]: the admin's pause, override and lift, and the audit in `gate_events`;
//! - [`states`]: a pool's state and figures, every pool's snapshot, one jobset's decision;
//! - [`snapshot`]: the in-memory [`Gate`] the hot path reads,
//!   refreshed after writes and on `schedule.gate_refresh`, which records state changes and
//!   hands each to its [`ChangeSink`]s;
//! - [`actions`]: what the recorded states do outside, through [`webhooks`] (signed POSTs,
//!   claimed once across instances) and [`holds`] on [`hydra_web`] (Hydra's web API), under a
//!   lease.
pub mod actions;
pub mod controls;
mod error;
pub mod evaluate;
pub mod holds;
pub mod hydra_web;
pub mod snapshot;
pub mod states;
pub mod store;
pub mod webhooks;

pub use controls::{lift, override_until, pause, record_note};
pub use error::GateError;
pub use evaluate::{causes, evaluate, pool_slug, projected_cents, Figures, MIN_ELAPSED_SECONDS};
pub use snapshot::{Change, ChangeSink, Current, Gate};
pub use states::{Control, Decision, FundStanding, PoolGate, Snapshot, State};
pub use store::{controls_at, events, recorded_states, Event, StoredControl};
