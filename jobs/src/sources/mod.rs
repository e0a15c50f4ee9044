//! What comes in from outside: build steps ([`ingest`], uploaded or pulled from Hydra's
//! database by [`hydra_pull`]) and donations ([`opencollective`]); incremental syncs keep their
//! place in [`cursors`].
pub mod cursors;
pub mod hydra_pull;
pub mod ingest;
pub mod opencollective;
pub mod opencollective_client;
