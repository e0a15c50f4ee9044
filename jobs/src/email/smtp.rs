//! The SMTP side: at most two connections to the relay, kept open between messages, built from
//! `[smtp]` (`security = none|starttls|tls`, the password from the environment variable
//! `password_env` names), and the classification of failures into transient (4xx, connection,
//! timeout: retry later) and permanent (5xx: give up on that message).
//!
//! For `none` and `starttls` the connection is lettre's `AsyncSmtpConnection` over a TCP stream
//! of our own with `TCP_NODELAY`: lettre writes a message's data and its final dot in two
//! writes, and with Nagle's algorithm the second waits for the relay's delayed ACK (about 40 ms
//! a message on Linux), which capped a send at about 23 messages a second. For `tls` (implicit
//! TLS from the first byte) lettre's pooled transport keeps its own socket.
use super::EmailError;
use crate::config::{Secrets, SmtpConfig, SmtpSecurity};
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a message's conversation may take (and a connection attempt).
const TIMEOUT: Duration = Duration::from_secs(30);
/// A connection idle longer than this is closed and a new one opened for the next message.
const IDLE: Duration = Duration::from_secs(60);
/// Connections kept to the relay (`none` and `starttls`): one carries a message's content while
/// the next message's transaction is opened on the other.
const CONNECTIONS: usize = 2;

/// A place for one kept connection, with when it was last used; held by the message on it.
type Slot<'a> = tokio::sync::MutexGuard<'a, Option<(AsyncSmtpConnection, Instant)>>;

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
    transport: Transport,
    from: Mailbox,
    /// The domain of `from`, used in Message-IDs.
    pub domain: String,
    pub rate_per_second: u32,
}

#[derive(Clone)]
enum Transport {
    /// `none` and `starttls`: our own streams with `TCP_NODELAY`, up to [`CONNECTIONS`] kept.
    Direct(Arc<Direct>),
    /// `tls`: lettre's pooled transport (at most one connection).
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
}

struct Direct {
    host: String,
    port: u16,
    /// `Some` for STARTTLS, required before anything else is said.
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// The kept connections, each with when it was last used.
    open: [tokio::sync::Mutex<Option<(AsyncSmtpConnection, Instant)>>; CONNECTIONS],
    /// Set once the relay refused a second connection while one of ours was open: from then on
    /// one connection at a time.
    single: AtomicBool,
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
        let credentials = match (&config.username, &secrets.smtp_password) {
            (Some(user), Some(secret)) => {
                let password: &SecretString = secret.value()?;
                Some(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_string(),
                ))
            }
            _ => None,
        };
        let transport = match config.security {
            SmtpSecurity::None | SmtpSecurity::StartTls => {
                let starttls = match config.security {
                    SmtpSecurity::StartTls => {
                        Some(TlsParameters::new(config.host.clone()).map_err(EmailError::Tls)?)
                    }
                    _ => None,
                };
                Transport::Direct(Arc::new(Direct {
                    host: config.host.clone(),
                    port: config.port,
                    starttls,
                    credentials,
                    hello: ClientId::default(),
                    open: std::array::from_fn(|_| tokio::sync::Mutex::new(None)),
                    single: AtomicBool::new(false),
                }))
            }
            SmtpSecurity::Tls => {
                let tls =
                    Tls::Wrapper(TlsParameters::new(config.host.clone()).map_err(EmailError::Tls)?);
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                        .port(config.port)
                        .tls(tls)
                        .timeout(Some(TIMEOUT))
                        .pool_config(PoolConfig::new().max_size(1).idle_timeout(IDLE));
                if let Some(c) = credentials {
                    builder = builder.credentials(c);
                }
                Transport::Pooled(builder.build())
            }
        };
        Ok(Mailer {
            transport,
            from,
            domain,
            rate_per_second: config.rate_per_second,
        })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one message over a kept connection (opening it when needed): [`Mailer::open`]
    /// then [`Opened::finish`].
    pub async fn send(&self, message: Message) -> Result<Accepted, SendError> {
        self.open(message.into()).await?.finish().await
    }

    /// Opens the mail transaction of `message` on a kept connection that no other message holds
    /// (opening it when needed; waiting when all are held): `MAIL FROM`, `RCPT TO` and `DATA`
    /// answered, none of the message's content sent.
    /// The relay delivers nothing until [`Opened::finish`] sends the content and its final dot;
    /// dropped unfinished, the connection is closed and the relay discards the transaction
    /// (RFC 5321, 4.1.1.4). The outbox opens the next message on one connection while the last
    /// one's content goes on the other and its outcome is recorded.
    /// With `security = "tls"` (lettre's pooled transport) nothing is said before `finish`.
    pub async fn open(&self, message: Outgoing) -> Result<Opened<'_>, SendError> {
        let state = match &self.transport {
            Transport::Direct(direct) => direct.open(message).await?,
            Transport::Pooled(transport) => OpenedState::Pooled { transport, message },
        };
        Ok(Opened { state })
    }
}

/// A message formatted for the wire (its headers and encoded parts as bytes), without a word to
/// the relay yet: the outbox formats the next message while the relay takes the last one.
pub struct Outgoing {
    envelope: Envelope,
    data: Vec<u8>,
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Outgoing {
        Outgoing {
            envelope: message.envelope().clone(),
            data: message.formatted(),
        }
    }
}

/// A mail transaction the relay has been told of (envelope and `DATA`), whose content is not
/// sent yet: see [`Mailer::open`]. It holds the connection until it is finished or dropped.
pub struct Opened<'a> {
    state: OpenedState<'a>,
}

enum OpenedState<'a> {
    Direct {
        direct: &'a Direct,
        slot: Slot<'a>,
        conn: Box<AsyncSmtpConnection>,
        data: Vec<u8>,
    },
    Pooled {
        transport: &'a AsyncSmtpTransport<Tokio1Executor>,
        message: Outgoing,
    },
}

impl Opened<'_> {
    /// Sends the content and the final dot, and waits for the relay's answer: the moment it
    /// accepts (250) the message is handed over.
    pub async fn finish(self) -> Result<Accepted, SendError> {
        let response = match self.state {
            OpenedState::Direct {
                direct,
                mut slot,
                mut conn,
                data,
            } => match tokio::time::timeout(TIMEOUT, conn.message(&data)).await {
                Ok(Ok(response)) => {
                    *slot = Some((*conn, Instant::now()));
                    response
                }
                Ok(Err(e)) => {
                    conn.abort().await;
                    return Err(classify(&e));
                }
                Err(_) => {
                    conn.abort().await;
                    return Err(direct.no_answer());
                }
            },
            OpenedState::Pooled { transport, message } => transport
                .send_raw(&message.envelope, &message.data)
                .await
                .map_err(|e| classify(&e))?,
        };
        let lines: Vec<&str> = response.message().collect();
        Ok(Accepted {
            response: format!("{} {}", response.code(), lines.join(" "))
                .trim()
                .to_string(),
        })
    }
}

impl Direct {
    /// Opens `message`'s transaction on a free kept connection, or on a new one when there is
    /// none, it broke or it idled past [`IDLE`]. A connection that fails is closed (as lettre's
    /// own `send` closes it on any error), so the next message on it opens a fresh one.
    async fn open(&self, message: Outgoing) -> Result<OpenedState<'_>, SendError> {
        let Outgoing { envelope, data } = message;
        let (slot, mut conn) = self.connection().await?;
        let said = tokio::time::timeout(TIMEOUT, say_envelope(&mut conn, &envelope, &data));
        match said.await {
            Ok(Ok(())) => Ok(OpenedState::Direct {
                direct: self,
                slot,
                conn: Box::new(conn),
                data,
            }),
            Ok(Err(e)) => {
                conn.abort().await;
                Err(e)
            }
            Err(_) => {
                conn.abort().await;
                Err(self.no_answer())
            }
        }
    }

    /// A connection no other message holds, with its slot: a free slot's kept connection, or a
    /// new one. When a new one fails while another of ours is open, the relay is taken to allow
    /// one connection from us (many answer a second with 421): the sender goes on over the open
    /// one, and uses one at a time from then on.
    async fn connection(&self) -> Result<(Slot<'_>, AsyncSmtpConnection), SendError> {
        if self.single.load(Ordering::Relaxed) {
            return self.single_connection().await;
        }
        let free = (0..CONNECTIONS).find_map(|i| self.open[i].try_lock().ok().map(|s| (i, s)));
        let (i, mut slot) = match free {
            Some(free) => free,
            None => (0, self.open[0].lock().await),
        };
        if let Some(conn) = kept(&mut slot).await {
            return Ok((slot, conn));
        }
        match self.connect().await {
            Ok(conn) => Ok((slot, conn)),
            Err(e) => {
                // Another of ours is open: a message is on it, or it is kept in its slot.
                let another_open = (0..CONNECTIONS).any(|j| {
                    j != i
                        && self.open[j]
                            .try_lock()
                            .map_or(true, |other| other.is_some())
                });
                if !another_open {
                    return Err(e);
                }
                tracing::warn!(error = %e, "the relay refused a second connection; sending over one from now on");
                self.single.store(true, Ordering::Relaxed);
                drop(slot);
                self.single_connection().await
            }
        }
    }

    /// One connection at a time: the kept one, whichever slot holds it (waiting while a message
    /// is on it), else a new one.
    async fn single_connection(&self) -> Result<(Slot<'_>, AsyncSmtpConnection), SendError> {
        for place in &self.open {
            let mut slot = place.lock().await;
            if let Some(conn) = kept(&mut slot).await {
                return Ok((slot, conn));
            }
        }
        let slot = self.open[0].lock().await;
        let conn = self.connect().await?;
        Ok((slot, conn))
    }

    fn no_answer(&self) -> SendError {
        unreachable_relay(format!(
            "no answer from {}:{} within {TIMEOUT:?}",
            self.host, self.port
        ))
    }

    /// A new connection: TCP with `TCP_NODELAY`, the greeting and EHLO, STARTTLS when asked
    /// for, then AUTH when credentials are configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let at = format!("{}:{}", self.host, self.port);
        let stream = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| unreachable_relay(format!("cannot connect to {at} within {TIMEOUT:?}")))?
        .map_err(|e| unreachable_relay(format!("cannot connect to {at}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable_relay(format!("cannot set TCP_NODELAY on {at}: {e}")))?;
        let mut conn = tokio::time::timeout(
            TIMEOUT,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await
        .map_err(|_| unreachable_relay(format!("no greeting from {at} within {TIMEOUT:?}")))?
        .map_err(|e| classify(&e))?;
        if let Some(tls) = &self.starttls {
            conn.starttls(tls.clone(), &self.hello)
                .await
                .map_err(|e| classify(&e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(conn)
    }
}

/// The slot's connection while it is good; a broken one, or one idle past [`IDLE`], is closed.
async fn kept(slot: &mut Slot<'_>) -> Option<AsyncSmtpConnection> {
    match slot.take() {
        Some((conn, used)) if !conn.has_broken() && used.elapsed() < IDLE => Some(conn),
        Some((mut stale, _)) => {
            stale.abort().await;
            None
        }
        None => None,
    }
}

/// `MAIL FROM` (with `SMTPUTF8` and `BODY=8BITMIME` when needed, as lettre's `send` does),
/// `RCPT TO` for each recipient and `DATA`, each answered before the next.
async fn say_envelope(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    data: &[u8],
) -> Result<(), SendError> {
    let mut options = Vec::new();
    let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
    let non_ascii = envelope.from().is_some_and(|a| !ascii(a)) || !envelope.to().iter().all(ascii);
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent {
                message:
                    "the envelope has non-ASCII addresses and the relay does not support SMTPUTF8"
                        .into(),
            });
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !data.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent {
                message: "the message is not ASCII and the relay does not support 8BITMIME".into(),
            });
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(|e| classify(&e))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(|e| classify(&e))?;
    }
    conn.command(Data).await.map_err(|e| classify(&e))?;
    Ok(())
}

/// The relay could not be talked to at all: every other message would fail the same way now.
fn unreachable_relay(message: String) -> SendError {
    SendError::Transient {
        message,
        connection: true,
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
