//! `[smtp]` (the relay) and `[email]` (the link-signing key's variable).
use super::walker::Walker;
use toml::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub from: String,
    /// At most this many messages a second (the outbox sender's bound).
    pub rate_per_second: u32,
}

/// The default of `[smtp] rate_per_second`.
pub const DEFAULT_SMTP_RATE: u32 = 10;
/// The default of `[email] secret_env`.
pub const DEFAULT_EMAIL_SECRET_ENV: &str = "BUILDFUND_EMAIL_SECRET";

/// Subscription emails (`[email]`).
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// The NAME of the environment variable holding the key that signs confirmation and
    /// unsubscribe links; when it is unset, a key generated once is kept in the database.
    pub secret_env: String,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            secret_env: DEFAULT_EMAIL_SECRET_ENV.into(),
        }
    }
}

impl Walker {
    pub(super) fn smtp(&mut self, t: &Table) -> Option<SmtpConfig> {
        let s = self.table(t, "smtp")?;
        let path = "smtp";
        self.unknown_keys(
            s,
            path,
            &[
                "host",
                "port",
                "security",
                "username",
                "password_env",
                "from",
                "rate_per_second",
            ],
        );
        let host = self.required_string(s, path, "host");
        let security = match self.string(s, path, "security").as_deref() {
            None | Some("starttls") => SmtpSecurity::StartTls,
            Some("none") => SmtpSecurity::None,
            Some("tls") => SmtpSecurity::Tls,
            Some(other) => {
                self.problem(
                    "smtp.security",
                    format!("{other:?} is not \"none\", \"starttls\" or \"tls\""),
                );
                SmtpSecurity::StartTls
            }
        };
        let default_port = match security {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        };
        let port = self
            .integer(s, path, "port", 1, 65535)
            .map(|p| p as u16)
            .unwrap_or(default_port);
        let username = self.string(s, path, "username");
        let password_env = self.env_name(s, path, "password_env");
        let from = self.required_string(s, path, "from");
        if let Some(f) = &from {
            if !f.contains('@') {
                self.problem("smtp.from", format!("{f:?} is not an email address"));
            }
        }
        let rate_per_second = self
            .integer(s, path, "rate_per_second", 1, 10_000)
            .map(|r| r as u32)
            .unwrap_or(DEFAULT_SMTP_RATE);
        if username.is_some() != password_env.is_some() {
            self.problem(
                "smtp.username",
                "username and password_env go together (give both or neither)",
            );
        }
        Some(SmtpConfig {
            host: host?,
            port,
            security,
            username,
            password_env,
            from: from?,
            rate_per_second,
        })
    }

    pub(super) fn email(&mut self, t: &Table) -> EmailConfig {
        let mut email = EmailConfig::default();
        let Some(e) = self.table(t, "email") else {
            return email;
        };
        self.unknown_keys(e, "email", &["secret_env"]);
        if let Some(name) = self.env_name(e, "email", "secret_env") {
            email.secret_env = name;
        }
        email
    }
}
