//! The configuration: one TOML file (interfaces.md, "Config"), loaded and validated here and
//! nowhere else. Validation walks the raw TOML table so that every problem is found in one pass
//! and reported with its key path (`machines[2].monthly: "12,50" is not a decimal amount`);
//! array indexes in key paths count from 0, in the order of the file.
//!
//! Secrets never appear in the file: only the names of the environment variables that hold
//! them (`token_env`, `password_env`).
//!
//! The walker ([`walker`]) holds the typed readers; each section of the file has its own module
//! (its types and its `impl Walker` part). Secrets are read from the environment once, in
//! [`secrets`]; every URL shown is shown through [`redact_url`].
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use toml::Table;

mod email;
mod funds;
mod gate;
mod hydra;
mod machines;
mod opencollective;
mod redact;
mod schedule;
pub mod secrets;
mod server;
mod walker;

pub use email::{
    EmailConfig, SmtpConfig, SmtpSecurity, DEFAULT_EMAIL_SECRET_ENV, DEFAULT_SMTP_RATE,
};
pub use funds::{Fund, Pool};
pub use gate::{GateConfig, Webhook};
pub use hydra::{
    HydraConfig, DEFAULT_HYDRA_OVERLAP_SECONDS, DEFAULT_HYDRA_SOURCE, MAX_HYDRA_OVERLAP_SECONDS,
};
pub use machines::{tag_warnings, Billing, CostModel, Machine, MachineChange, Terms};
pub use opencollective::{
    OpenCollectiveConfig, DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS,
    DEFAULT_OPENCOLLECTIVE_TIMEOUT_SECONDS, MAX_OPENCOLLECTIVE_OVERLAP_SECONDS,
};
pub use redact::{describe_database, redact_url, sqlite_path};
pub use schedule::{JobSchedule, DEFAULT_SCHEDULE};
pub use secrets::{Secret, Secrets};
pub use server::{DatabaseConfig, IpNet, ServerConfig};
use walker::Walker;

mod plans;
pub use plans::Plan;

/// The file read when neither `--config` nor `BUILDFUND_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "buildfund.toml";
/// The embedded database used when no URL is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://buildfund.sqlite?mode=rwc";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The slug of the implicit pool of jobsets that match no configured pool.
pub const OTHER_POOL: &str = "other";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    Separate,
    Proportional,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the configuration came from, for messages ("built-in defaults" when no file).
    pub source: String,
    pub currency: String,
    pub ledger_start: DateTime<Utc>,
    /// No `ledger_start` was configured (the built-in defaults, an empty file): the books begin
    /// at the start of the month of the first run recorded in the database
    /// ([`Config::start_books_at_first_run`]).
    pub ledger_start_from_first_run: bool,
    pub idle: IdlePolicy,
    pub public_url: String,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub opencollective: Option<OpenCollectiveConfig>,
    pub hydra: Option<HydraConfig>,
    pub gate: GateConfig,
    pub smtp: Option<SmtpConfig>,
    pub email: EmailConfig,
    /// Enabled jobs only; a job set to "" in `[schedule]` is absent.
    pub schedule: BTreeMap<String, JobSchedule>,
    /// Conversion rates into the ledger currency (`[rates] USD = "0.92"`).
    pub rates: BTreeMap<String, Decimal>,
    pub funds: Vec<Fund>,
    pub pools: Vec<Pool>,
    pub machines: Vec<Machine>,
    /// `[[plans]]`, in file order (what more money would build).
    pub plans: Vec<Plan>,
}

/// Every problem found in a configuration, each prefixed by its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub source: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}:",
            self.source,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// What is allowed but probably a mistake, each prefixed by its key path (`check-config`
    /// prints them; `serve` logs them): an invoice tag claimed by two machines.
    pub fn warnings(&self) -> Vec<String> {
        tag_warnings(&self.machines)
    }

    /// Loads the configuration the way every subcommand does: the named file if any (it must
    /// exist), else `./buildfund.toml` when present, else built-in defaults; then
    /// `DATABASE_URL` from the environment overrides the database URL.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigErrors> {
        let database_url = std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty());
        let mut config = match explicit {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Self::defaults(),
        };
        if let Some(url) = database_url {
            config.database.url = url;
        }
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            source: source.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Self::parse(&text, &source)
    }

    /// The built-in defaults: one default fund `general`, no pools or machines, the embedded
    /// SQLite database. Enough for `buildfund serve` to start with no file at all.
    pub fn defaults() -> Config {
        Self::parse("", "built-in defaults").expect("the built-in defaults are valid")
    }

    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigErrors> {
        let table: Table = match text.parse::<Table>() {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigErrors {
                    source: source.to_string(),
                    problems: vec![format!("not valid TOML: {}", e.to_string().trim())],
                })
            }
        };
        let mut v = Walker {
            problems: Vec::new(),
        };
        let config = v.config(&table, source);
        if v.problems.is_empty() {
            Ok(config.expect("a config without problems is complete"))
        } else {
            Err(ConfigErrors {
                source: source.to_string(),
                problems: v.problems,
            })
        }
    }

    /// Whether no configuration was given: the built-in defaults (or an empty file).
    pub fn is_builtin_defaults(&self) -> bool {
        self.ledger_start_from_first_run
    }

    /// With no `ledger_start` configured, the books begin at the start (00:00:00 UTC of the 1st)
    /// of the month of `first_run`, the first start recorded in the database
    /// ([`crate::db::prepare`]); a configured `ledger_start` is kept as it is.
    pub fn start_books_at_first_run(&mut self, first_run: DateTime<Utc>) {
        if self.ledger_start_from_first_run {
            self.ledger_start = crate::calendar::Month::of(first_run).start();
        }
    }

    /// The whole months a configured `ledger_start` lies before the month of `first_run`:
    /// the months the books charge backwards at the first start (0 when none).
    pub fn months_before_first_run(&self, first_run: DateTime<Utc>) -> u32 {
        let (from, to) = (
            crate::calendar::Month::of(self.ledger_start),
            crate::calendar::Month::of(first_run),
        );
        let months = (to.year() - from.year()) * 12 + to.number() as i32 - from.number() as i32;
        months.max(0) as u32
    }

    pub fn default_fund(&self) -> &Fund {
        self.funds
            .iter()
            .find(|f| f.default)
            .expect("validated: exactly one default fund")
    }

    pub fn fund(&self, slug: &str) -> Option<&Fund> {
        self.funds.iter().find(|f| f.slug == slug)
    }

    pub fn pool(&self, slug: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.slug == slug)
    }

    /// The pool of a `project:jobset`: the first configured pool with a matching pattern, else
    /// `None`, which means the implicit pool [`OTHER_POOL`] of the default fund.
    pub fn pool_of(&self, jobset_key: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.matches(jobset_key))
    }

    /// The machine a build step's machine name (or alias) refers to.
    pub fn machine_by_name(&self) -> HashMap<&str, &Machine> {
        let mut map = HashMap::new();
        for m in &self.machines {
            map.insert(m.name.as_str(), m);
            for a in &m.aliases {
                map.insert(a.as_str(), m);
            }
        }
        map
    }

    pub fn is_sqlite(&self) -> bool {
        self.database.url.starts_with("sqlite:")
    }
}

/// The top-level keys; each table is its section's.
impl Walker {
    fn config(&mut self, t: &Table, source: &str) -> Option<Config> {
        self.unknown_keys(
            t,
            "",
            &[
                "currency",
                "ledger_start",
                "idle",
                "public_url",
                "server",
                "database",
                "opencollective",
                "hydra",
                "gate",
                "smtp",
                "email",
                "schedule",
                "rates",
                "funds",
                "pools",
                "machines",
                "plans",
            ],
        );
        let currency = self
            .string(t, "", "currency")
            .unwrap_or_else(|| "EUR".into());
        if !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase())) {
            self.problem(
                "currency",
                format!("{currency:?} is not an ISO 4217 code such as \"EUR\""),
            );
        }
        let ledger_start_from_first_run = !t.contains_key("ledger_start") && t.is_empty();
        let ledger_start = if t.contains_key("ledger_start") {
            self.instant(t, "", "ledger_start")
        } else if t.is_empty() {
            // Built-in defaults only (a file must say where its books begin): a placeholder
            // until the database names the first run (`start_books_at_first_run`).
            Some(DateTime::<Utc>::UNIX_EPOCH)
        } else {
            self.problem(
                "ledger_start",
                "missing (the date the books begin, such as 2026-01-01)",
            );
            None
        };
        let idle = match self.string(t, "", "idle").as_deref() {
            None | Some("separate") => IdlePolicy::Separate,
            Some("proportional") => IdlePolicy::Proportional,
            Some(other) => {
                self.problem(
                    "idle",
                    format!("{other:?} is not \"separate\" or \"proportional\""),
                );
                IdlePolicy::Separate
            }
        };
        let public_url = self
            .string(t, "", "public_url")
            .unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            self.problem(
                "public_url",
                format!("{public_url:?} is not an http:// or https:// URL"),
            );
        }
        let public_url = public_url.trim_end_matches('/').to_string();

        let server = self.server(t);
        let database = self.database(t);
        let opencollective = self.opencollective(t);
        let hydra = self.hydra(t);
        let gate = self.gate(t);
        let smtp = self.smtp(t);
        let email = self.email(t);
        let schedule = self.schedule(t);
        let rates = self.rates(t, &currency);
        let funds = self.funds(t);
        let pools = self.pools(t, &funds);
        let default_fund = funds.iter().find(|f| f.default).map(|f| f.slug.clone());
        let machines = self.machines(t, &funds, default_fund.as_deref().unwrap_or(""));
        let plans = self.plans(t, &funds);

        Some(Config {
            source: source.to_string(),
            currency,
            ledger_start: ledger_start?,
            ledger_start_from_first_run,
            idle,
            public_url,
            server,
            database,
            opencollective,
            hydra,
            gate,
            smtp,
            email,
            schedule,
            rates,
            funds,
            pools,
            machines,
            plans,
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod example_file {
    #[test]
    fn the_example_configuration_of_the_book_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../buildfund.example.toml");
        let config = super::Config::from_file(std::path::Path::new(path)).unwrap();
        assert_eq!(config.funds.len(), 2);
        assert_eq!(config.pools[0].slug, "cuda");
        assert_eq!(config.machines[0].aliases, vec!["build03.example.org"]);
        // The book's configuration reference shows the same text.
        let readme = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/src/configuration.md"
        ))
        .unwrap();
        let file = std::fs::read_to_string(path).unwrap();
        let body = file.split_once('\n').unwrap().1;
        assert!(
            readme.contains(&format!("```toml\n{body}```")),
            "docs/src/configuration.md and buildfund.example.toml differ"
        );
    }
}
