//! The monthly sponsor email (README, "Monthly email"): subscriptions with double opt-in,
//! signed links, the report rendered from `templates/email/`, the outbox that sends each
//! (month, subscriber) once, and the SMTP transport. No HTTP framework types: the HTTP handlers,
//! the CLI and the scheduled jobs call these functions.
pub mod error;
pub mod key;
pub mod links;
pub mod outbox;
pub mod queue;
pub mod render;
pub mod smtp;
pub mod subscriptions;

pub use error::EmailError;
pub use key::EmailKey;
pub use smtp::Mailer;
