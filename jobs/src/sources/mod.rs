//! What comes in from outside: build steps ([`ingest`], uploaded or pulled from Hydra's
//! database by [`hydra_pull`]) and donations ([`opencollective`], synced on schedule or on a
//! hint from [`opencollective_webhook`]); incremental syncs keep their place in [`cursors`].
pub mod cursors;
pub mod error;
pub mod hydra_pull;
pub mod ingest;
pub mod opencollective;
pub mod opencollective_client;
pub mod opencollective_webhook;

pub use error::SourceError;
