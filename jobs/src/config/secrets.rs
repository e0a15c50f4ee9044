//! Every secret buildfund reads from the environment, read in one place, once
//! ([`Secrets::from_env`]), each held in a [`SecretString`] that no `Debug` or log shows. The
//! file only names the variables (`*_env` keys); the consumers (webhook signing, Hydra's web
//! login and database, the OpenCollective token, SMTP, the link-signing key) take the values
//! from here.
use super::Config;
use secrecy::SecretString;
use std::fmt;

/// Why a named variable gives no secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    NotSet,
    /// Set, but empty or only white space.
    Empty,
    NotUnicode,
}

/// The secret in the environment variable a `*_env` key names.
#[derive(Clone)]
pub struct Secret {
    /// The configuration key that names the variable (`gate.webhooks[0].secret_env`).
    pub key: String,
    /// The variable's name.
    pub var: String,
    value: Result<SecretString, Missing>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            Ok(_) => "(redacted)".to_string(),
            Err(m) => format!("{m:?}"),
        };
        f.debug_struct("Secret")
            .field("key", &self.key)
            .field("var", &self.var)
            .field("value", &value)
            .finish()
    }
}

/// A named variable that holds no usable secret; its message names the variable and the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingSecret {
    pub key: String,
    pub var: String,
    pub why: Missing,
}

impl fmt::Display for MissingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.why {
            Missing::NotSet => "is not set",
            Missing::Empty => "is empty",
            Missing::NotUnicode => "is not UTF-8",
        };
        write!(
            f,
            "the environment variable {} ({}) {why}",
            self.var, self.key
        )
    }
}

impl std::error::Error for MissingSecret {}

impl Secret {
    /// Reads the variable `var` that the configuration key `key` names.
    pub fn read(key: impl Into<String>, var: &str) -> Secret {
        let value = match std::env::var(var) {
            Ok(v) if v.trim().is_empty() => Err(Missing::Empty),
            Ok(v) => Ok(SecretString::from(v)),
            Err(std::env::VarError::NotPresent) => Err(Missing::NotSet),
            Err(std::env::VarError::NotUnicode(_)) => Err(Missing::NotUnicode),
        };
        Secret {
            key: key.into(),
            var: var.to_string(),
            value,
        }
    }

    /// The secret (expose it only where it is used), or why there is none.
    pub fn value(&self) -> Result<&SecretString, MissingSecret> {
        self.value.as_ref().map_err(|why| MissingSecret {
            key: self.key.clone(),
            var: self.var.clone(),
            why: *why,
        })
    }

    pub fn is_available(&self) -> bool {
        self.value.is_ok()
    }
}

/// The secrets of one configuration. A key the file does not set is `None`; a named variable
/// that is unset is kept as such, so each consumer reports it when it needs it, and `serve`
/// refuses to start ([`Secrets::unavailable_for_serve`]).
#[derive(Clone, Debug)]
pub struct Secrets {
    /// `gate.webhooks[i].secret_env`, in the order of `config.gate.webhooks`.
    pub webhooks: Vec<Option<Secret>>,
    /// `hydra.database_url_env`: the Hydra PostgreSQL URL of the step pull.
    pub hydra_database_url: Option<Secret>,
    /// `hydra.password_env`: the password of `hydra.user`.
    pub hydra_password: Option<Secret>,
    /// `opencollective.token_env`: the personal token.
    pub opencollective_token: Option<Secret>,
    /// `opencollective.webhook_token_env`: the secret path segment of the webhook URL.
    pub opencollective_webhook_token: Option<Secret>,
    /// `smtp.password_env`: the password of `smtp.username`.
    pub smtp_password: Option<Secret>,
    /// `email.secret_env` (default `BUILDFUND_EMAIL_SECRET`): the link-signing key; when it is
    /// unset a generated key kept in the database signs the links.
    pub email_key: Secret,
}

impl Secrets {
    /// Reads every variable the configuration names, once.
    pub fn from_env(config: &Config) -> Secrets {
        let read = |key: String, var: &Option<String>| var.as_deref().map(|v| Secret::read(key, v));
        Secrets {
            webhooks: config
                .gate
                .webhooks
                .iter()
                .enumerate()
                .map(|(i, w)| read(format!("gate.webhooks[{i}].secret_env"), &w.secret_env))
                .collect(),
            hydra_database_url: config
                .hydra
                .as_ref()
                .and_then(|h| read("hydra.database_url_env".into(), &h.database_url_env)),
            hydra_password: config
                .hydra
                .as_ref()
                .and_then(|h| read("hydra.password_env".into(), &h.password_env)),
            opencollective_token: config
                .opencollective
                .as_ref()
                .and_then(|o| read("opencollective.token_env".into(), &o.token_env)),
            opencollective_webhook_token: config.opencollective.as_ref().and_then(|o| {
                read(
                    "opencollective.webhook_token_env".into(),
                    &o.webhook_token_env,
                )
            }),
            smtp_password: config
                .smtp
                .as_ref()
                .and_then(|s| read("smtp.password_env".into(), &s.password_env)),
            email_key: Secret::read("email.secret_env", &config.email.secret_env),
        }
    }

    /// The secret of webhook `i` (`None`: the webhook is not signed).
    pub fn webhook(&self, i: usize) -> Option<&Secret> {
        self.webhooks.get(i).and_then(Option::as_ref)
    }

    /// The configured secrets `serve` needs: every webhook's, Hydra's password when the gate
    /// acts on Hydra, the Hydra database URL and the OpenCollective token when their jobs are
    /// scheduled (the token also when the webhook may start syncs), the webhook's token, the
    /// SMTP password. The link-signing key is not among them: without it a
    /// generated key kept in the database signs the links.
    pub fn needed_by_serve(&self, config: &Config) -> Vec<&Secret> {
        let mut needed: Vec<&Secret> = self.webhooks.iter().flatten().collect();
        let acts_on_hydra = config.hydra.as_ref().is_some_and(|h| h.act_on_gate);
        if acts_on_hydra {
            needed.extend(&self.hydra_password);
        }
        if config.schedule.contains_key("hydra_pull") {
            needed.extend(&self.hydra_database_url);
        }
        if config.schedule.contains_key("opencollective_sync")
            || self.opencollective_webhook_token.is_some()
        {
            needed.extend(&self.opencollective_token);
        }
        needed.extend(&self.opencollective_webhook_token);
        needed.extend(&self.smtp_password);
        needed
    }

    /// Why `serve` cannot start: each needed secret that is missing.
    pub fn unavailable_for_serve(&self, config: &Config) -> Vec<MissingSecret> {
        self.needed_by_serve(config)
            .into_iter()
            .filter_map(|s| s.value().err())
            .collect()
    }

    /// Every named variable that gives no secret (for `check-config`'s notes), with whether
    /// `serve` needs it.
    pub fn unavailable(&self, config: &Config) -> Vec<(MissingSecret, bool)> {
        let needed: Vec<&str> = self
            .needed_by_serve(config)
            .into_iter()
            .map(|s| s.key.as_str())
            .collect();
        self.webhooks
            .iter()
            .flatten()
            .chain(&self.hydra_database_url)
            .chain(&self.hydra_password)
            .chain(&self.opencollective_token)
            .chain(&self.opencollective_webhook_token)
            .chain(&self.smtp_password)
            .chain(std::iter::once(&self.email_key))
            .filter_map(|s| s.value().err())
            .map(|m| {
                let needed = needed.contains(&m.key.as_str());
                (m, needed)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const BASE: &str = "ledger_start = \"2026-01-01\"\n";

    fn config(extra: &str) -> Config {
        Config::parse(&format!("{BASE}{extra}"), "t").unwrap()
    }

    #[test]
    fn every_named_variable_is_read_once_and_never_shown() {
        std::env::set_var("BF_UNIT_SECRETS_HOOK", "s3cret-hook");
        std::env::set_var("BF_UNIT_SECRETS_EMPTY", "  ");
        let c = config(
            "[gate]\n[[gate.webhooks]]\nurl = \"https://a.example\"\nsecret_env = \"BF_UNIT_SECRETS_HOOK\"\n\
             [[gate.webhooks]]\nurl = \"https://b.example\"\n\
             [[gate.webhooks]]\nurl = \"https://c.example\"\nsecret_env = \"BF_UNIT_SECRETS_EMPTY\"\n",
        );
        let s = Secrets::from_env(&c);
        assert_eq!(
            s.webhook(0).unwrap().value().unwrap().expose_secret(),
            "s3cret-hook"
        );
        assert!(s.webhook(1).is_none());
        assert_eq!(
            s.webhook(2).unwrap().value().unwrap_err().to_string(),
            "the environment variable BF_UNIT_SECRETS_EMPTY (gate.webhooks[2].secret_env) is empty"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("BF_UNIT_SECRETS_HOOK"), "{debug}");
    }

    #[test]
    fn the_webhook_needs_its_token_and_the_api_token_unscheduled() {
        let c = config(
            "[opencollective]\ncollective = \"c\"\ntoken_env = \"BF_UNIT_SECRETS_UNSET_OC\"\n\
             webhook_token_env = \"BF_UNIT_SECRETS_UNSET_WH\"\n[schedule]\nopencollective_sync = \"\"\n",
        );
        let s = Secrets::from_env(&c);
        let missing: Vec<String> = s
            .unavailable_for_serve(&c)
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(
            missing,
            vec![
                "opencollective.token_env",
                "opencollective.webhook_token_env"
            ]
        );
    }

    #[test]
    fn serve_needs_the_secrets_of_what_it_runs() {
        let c = config(
            "[gate]\n[[gate.webhooks]]\nurl = \"https://a.example\"\nsecret_env = \"BF_UNIT_SECRETS_UNSET_HOOK\"\n\
             [opencollective]\ncollective = \"c\"\ntoken_env = \"BF_UNIT_SECRETS_UNSET_TOKEN\"\n\
             [schedule]\nopencollective_sync = \"\"\n\
             [hydra]\nurl = \"https://hydra.example\"\nuser = \"bf\"\npassword_env = \"BF_UNIT_SECRETS_UNSET_PW\"\n",
        );
        let s = Secrets::from_env(&c);
        let missing: Vec<String> = s
            .unavailable_for_serve(&c)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            missing,
            vec![
                "the environment variable BF_UNIT_SECRETS_UNSET_HOOK (gate.webhooks[0].secret_env) is not set",
                "the environment variable BF_UNIT_SECRETS_UNSET_PW (hydra.password_env) is not set",
            ]
        );
        // The disabled sync's token and the optional link key are only noted.
        let all = s.unavailable(&c);
        assert!(all
            .iter()
            .any(|(m, needed)| m.key == "opencollective.token_env" && !needed));
        assert!(
            all.iter()
                .any(|(m, needed)| m.key == "email.secret_env" && !needed)
                || std::env::var("BUILDFUND_EMAIL_SECRET").is_ok()
        );
    }
}
