//! What can go wrong with the email: the relay's configuration, the link key, building a
//! message, the outbox's and the subscribers' storage. A link that does not work is a
//! [`super::subscriptions::LinkError`] (the answer to its follower); a message the relay
//! refused is a [`super::smtp::SendError`] (the outbox records it and goes on).
use crate::config::secrets::MissingSecret;
use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error(transparent)]
    Db(#[from] DbErr),

    // The configuration and the environment.
    #[error("no [smtp] table in the configuration: cannot send email")]
    NoSmtp,
    #[error("smtp.from {from:?} is not a mailbox")]
    From {
        from: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("smtp TLS parameters")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error(transparent)]
    Secret(#[from] MissingSecret),
    #[error("the environment variable {var} (email.secret_env) holds fewer than {min} bytes; use a long random value, e.g. `openssl rand -hex 32`")]
    KeyTooShort { var: String, min: usize },

    // Storage.
    #[error("the generated email key disappeared")]
    KeyGone,
    #[error("the subscriber {email} disappeared while it was being written")]
    SubscriberGone { email: String },
    #[error("outbox insert: {0}")]
    OutboxInsert(#[source] sea_orm::sea_query::error::Error),

    // Messages.
    #[error("the outbox row {id} is not for a month")]
    BadMonth {
        id: i64,
        #[source]
        why: crate::calendar::MonthError,
    },
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Render(#[from] askama::Error),
    #[error(transparent)]
    Address(#[from] lettre::address::AddressError),
    #[error(transparent)]
    Message(#[from] lettre::error::Error),
}

impl EmailError {
    /// The error and its causes on one line (`error: cause: cause`), for a log line.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}
