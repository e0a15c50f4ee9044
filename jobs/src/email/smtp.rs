//! The SMTP side: one lettre `AsyncSmtpTransport` with a pool of at most one connection, built
//! from `[smtp]` (`security = none|starttls|tls`, the password from the environment variable
//! `password_env` names), and the classification of failures into transient (4xx, connection,
//! timeout: retry later) and permanent (5xx: give up on that message).
use super::EmailError;
use crate::config::{Secrets, SmtpConfig, SmtpSecurity};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// What the server said when it accepted a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// "250 2.0.0 Ok: queued as 4F1D", the whole reply on one line.
    pub response: String,
}

/// Why a message was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// A 4xx reply, or no reply at all (connection refused or dropped, timeout, TLS): the
    /// message may be tried again later. `connection` is true when the server could not be
    /// talked to at all, so every other message would fail the same way now.
    Transient { message: String, connection: bool },
    /// A 5xx reply: this message will not be accepted by trying again.
    Permanent { message: String },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient { message, .. } | SendError::Permanent { message } => {
                f.write_str(message)
            }
        }
    }
}

/// The configured SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `from`, used in Message-IDs.
    pub domain: String,
    pub rate_per_second: u32,
}

impl Mailer {
    /// Builds the transport (no connection is made until the first message). Fails when the
    /// `from` address does not parse or `password_env` names an unset variable.
    pub fn new(config: &SmtpConfig, secrets: &Secrets) -> Result<Mailer, EmailError> {
        let from: Mailbox = config.from.parse().map_err(|source| EmailError::From {
            from: config.from.clone(),
            source,
        })?;
        let domain = from.email.domain().to_string();
        let tls = match config.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => {
                Tls::Required(TlsParameters::new(config.host.clone()).map_err(EmailError::Tls)?)
            }
            SmtpSecurity::Tls => {
                Tls::Wrapper(TlsParameters::new(config.host.clone()).map_err(EmailError::Tls)?)
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(
                PoolConfig::new()
                    .max_size(1)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let (Some(user), Some(secret)) = (&config.username, &secrets.smtp_password) {
            let password: &SecretString = secret.value()?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            domain,
            rate_per_second: config.rate_per_second,
        })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one message over the pooled connection (opening it when needed).
    pub async fn send(&self, message: Message) -> Result<Accepted, SendError> {
        match self.transport.send(message).await {
            Ok(response) => {
                let lines: Vec<&str> = response.message().collect();
                Ok(Accepted {
                    response: format!("{} {}", response.code(), lines.join(" "))
                        .trim()
                        .to_string(),
                })
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    // lettre's Display of a response error is "permanent error (550): …"; keep the chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_permanent() {
        SendError::Permanent { message }
    } else {
        // 421 is the server closing the channel: down for everyone, like no answer at all.
        let closing = e.status().is_some_and(|c| c.to_string() == "421");
        SendError::Transient {
            connection: !e.is_transient() || closing,
            message,
        }
    }
}
