//! The configuration: one TOML file (interfaces.md, "Config"), loaded and validated here and
//! nowhere else. Validation walks the raw TOML table so that every problem is found in one pass
//! and reported with its key path (`machines[2].monthly: "12,50" is not a decimal amount`);
//! array indexes in key paths count from 0, in the order of the file.
//!
//! Secrets never appear in the file: only the names of the environment variables that hold
//! them (`token_env`, `password_env`).
use crate::calendar::parse_instant;
use crate::money::{parse_cents, parse_fraction, Price};
use chrono::{DateTime, Utc};
use globset::GlobMatcher;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::{Table, Value};

/// The file read when neither `--config` nor `BUILDFUND_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "buildfund.toml";
/// The embedded database used when no URL is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://buildfund.sqlite?mode=rwc";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The slug of the implicit pool of jobsets that match no configured pool.
pub const OTHER_POOL: &str = "other";

/// The scheduled jobs and their default cron expressions (six fields:
/// `sec min hour day-of-month month day-of-week`, UTC).
pub const DEFAULT_SCHEDULE: &[(&str, &str)] = &[
    ("opencollective_sync", "0 */15 * * * *"),
    ("hydra_pull", "0 */5 * * * *"),
    ("gate_refresh", "0 * * * * *"),
    ("outbox_drain", "30 * * * * *"),
    ("monthly_report", "0 0 9 1 * *"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    Separate,
    Proportional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostModel {
    /// Price of one calendar month, accrued per second of that month.
    Monthly(Price),
    /// Price of one hour of being provisioned, busy or not.
    Hourly(Price),
    /// Price of one busy hour; no idle cost.
    Metered(Price),
}

impl CostModel {
    pub fn kind(&self) -> &'static str {
        match self {
            CostModel::Monthly(_) => "monthly",
            CostModel::Hourly(_) => "hourly",
            CostModel::Metered(_) => "metered",
        }
    }

    pub fn price(&self) -> Price {
        match self {
            CostModel::Monthly(p) | CostModel::Hourly(p) | CostModel::Metered(p) => *p,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub aliases: Vec<String>,
    pub slots: u32,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
    /// The fund that pays this machine's idle cost (already defaulted to the default fund).
    pub idle_fund: String,
    pub cost: CostModel,
}

#[derive(Clone, Debug)]
pub struct Fund {
    pub slug: String,
    pub name: String,
    pub default: bool,
    pub monthly_goal_cents: Option<i64>,
    pub opening_balance_cents: i64,
    pub reserve_cents: i64,
    pub accounts: Vec<String>,
    pub tiers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Pool {
    pub slug: String,
    pub fund: String,
    pub jobsets: Vec<String>,
    matchers: Vec<GlobMatcher>,
    pub monthly_budget_cents: Option<i64>,
    pub warn_at: Decimal,
}

impl Pool {
    pub fn matches(&self, jobset_key: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(jobset_key))
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest accepted body of an ordinary JSON request.
    pub max_body_bytes: usize,
    /// Largest accepted build-step upload.
    pub max_ingest_bytes: usize,
    /// HTTP worker threads (default: the number of cores).
    pub workers: Option<usize>,
    /// Reverse proxies / load balancers whose `X-Forwarded-For` names the client (addresses or
    /// networks); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest accepted build-step record (an NDJSON line, a CSV row, a JSON array element).
    pub max_record_bytes: usize,
    /// A request body that sends nothing for this long is answered 408.
    pub body_idle_timeout_seconds: u64,
}

/// An IP network `address/prefix` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug)]
pub struct OpenCollectiveConfig {
    pub endpoint: String,
    pub collective: String,
    /// The NAME of the environment variable holding a personal token (sent as `Personal-Token`);
    /// without it the public API is read anonymously (at a lower rate limit).
    pub token_env: Option<String>,
    /// How far back before the stored cursor each sync reads again, in seconds, to catch
    /// transactions recorded late (default [`DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS`]).
    pub overlap_seconds: i64,
    /// The web base of profile pages (`<website>/<slug>`), without a trailing slash.
    pub website: String,
    /// The timeout of one API request, in seconds.
    pub timeout_seconds: i64,
}

pub const DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS: i64 = 86_400;
/// The largest accepted `opencollective.overlap_seconds`: 30 days.
pub const MAX_OPENCOLLECTIVE_OVERLAP_SECONDS: i64 = 30 * 86_400;
pub const DEFAULT_OPENCOLLECTIVE_TIMEOUT_SECONDS: i64 = 60;

/// Where the Hydra pull reads finished build steps (`[hydra]`; see `crate::sources::hydra_pull`).
#[derive(Clone, Debug)]
pub struct HydraConfig {
    /// The NAME of the environment variable holding the (read-only) Hydra PostgreSQL URL;
    /// `None` when buildfund only acts on Hydra's web API (no step pull).
    pub database_url_env: Option<String>,
    /// The build-step source the pulled rows are stored under (default [`DEFAULT_HYDRA_SOURCE`]).
    pub source: String,
    /// How far back before the stored cursor each pull reads again, in seconds, to catch steps
    /// committed late (default [`DEFAULT_HYDRA_OVERLAP_SECONDS`]).
    pub overlap_seconds: i64,
    /// Hydra's web base URL (http or https, no trailing slash), for links and, when
    /// `act_on_gate`, for disabling and re-enabling jobsets of closed pools.
    pub url: Option<String>,
    /// The Hydra user buildfund logs in as to change jobsets and cancel builds.
    pub user: Option<String>,
    /// The NAME of the environment variable holding that user's password.
    pub password_env: Option<String>,
    /// Whether a closing pool disables its Hydra jobsets and cancels their queued builds
    /// (default true when `url` is set).
    pub act_on_gate: bool,
}

/// The gate (`[gate]`): outgoing webhooks on every pool state change.
#[derive(Clone, Debug, Default)]
pub struct GateConfig {
    pub webhooks: Vec<Webhook>,
}

/// One webhook receiver (`[[gate.webhooks]]`).
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// The NAME of the environment variable holding the HMAC-SHA256 secret.
    pub secret_env: Option<String>,
}

pub const DEFAULT_HYDRA_SOURCE: &str = "hydra";
pub const DEFAULT_HYDRA_OVERLAP_SECONDS: i64 = 3600;
/// The largest accepted `hydra.overlap_seconds`: one week.
pub const MAX_HYDRA_OVERLAP_SECONDS: i64 = 7 * 86_400;

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

#[derive(Clone, Debug)]
pub struct JobSchedule {
    pub expression: String,
    pub schedule: cron::Schedule,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the configuration came from, for messages ("built-in defaults" when no file).
    pub source: String,
    pub currency: String,
    pub ledger_start: DateTime<Utc>,
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
        let mut v = Validator {
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

/// The walker that turns a raw TOML table into a [`Config`], collecting problems.
struct Validator {
    problems: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Validator {
    fn problem(&mut self, path: impl AsRef<str>, msg: impl fmt::Display) {
        self.problems.push(format!("{}: {msg}", path.as_ref()));
    }

    /// Reports keys of `t` that are not in `known`.
    fn unknown_keys(&mut self, t: &Table, path: &str, known: &[&str]) {
        for key in t.keys() {
            if !known.contains(&key.as_str()) {
                self.problem(
                    join(path, key),
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    fn string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match t.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn required_string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        if !t.contains_key(key) {
            self.problem(join(path, key), "missing");
            return None;
        }
        let s = self.string(t, path, key)?;
        if s.trim().is_empty() {
            self.problem(join(path, key), "must not be empty");
            return None;
        }
        Some(s)
    }

    fn integer(&mut self, t: &Table, path: &str, key: &str, min: i64, max: i64) -> Option<i64> {
        match t.get(key)? {
            Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            Value::Integer(i) => {
                self.problem(
                    join(path, key),
                    format!("{i} is not between {min} and {max}"),
                );
                None
            }
            other => {
                self.problem(
                    join(path, key),
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, t: &Table, path: &str, key: &str) -> Option<bool> {
        match t.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be true or false, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn string_list(&mut self, t: &Table, path: &str, key: &str) -> Vec<String> {
        let Some(value) = t.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(
                join(path, key),
                format!("must be an array of strings, not {}", type_name(value)),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                Value::String(_) => {
                    self.problem(format!("{}[{i}]", join(path, key)), "must not be empty")
                }
                other => self.problem(
                    format!("{}[{i}]", join(path, key)),
                    format!("must be a string, not {}", type_name(other)),
                ),
            }
        }
        out
    }

    /// A decimal amount given as a string ("120.00"); a bare TOML number is refused because
    /// floats cannot hold money exactly.
    fn amount_text(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match t.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            other => {
                self.problem(
                    join(path, key),
                    format!(
                        "must be a decimal amount in quotes (\"12.50\"), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn cents(&mut self, t: &Table, path: &str, key: &str, allow_negative: bool) -> Option<i64> {
        let text = self.amount_text(t, path, key)?;
        match parse_cents(&text) {
            Ok(c) if c < 0 && !allow_negative => {
                self.problem(join(path, key), format!("{text:?} must not be negative"));
                None
            }
            Ok(c) => Some(c),
            Err(e) => {
                self.problem(join(path, key), e);
                None
            }
        }
    }

    /// A date (`2026-01-01`, quoted or as a TOML date) or an RFC 3339 instant; a date means
    /// 00:00:00 UTC of that day.
    fn instant(&mut self, t: &Table, path: &str, key: &str) -> Option<DateTime<Utc>> {
        let text = match t.get(key)? {
            Value::String(s) => s.clone(),
            Value::Datetime(d) => d.to_string(),
            other => {
                self.problem(
                    join(path, key),
                    format!(
                        "must be a date such as 2026-01-01, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match parse_instant(&text) {
            Some(t) => Some(t),
            None => {
                self.problem(
                    join(path, key),
                    format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"),
                );
                None
            }
        }
    }

    fn table<'a>(&mut self, t: &'a Table, key: &str) -> Option<&'a Table> {
        match t.get(key)? {
            Value::Table(inner) => Some(inner),
            other => {
                self.problem(
                    key,
                    format!("must be a table ([{key}]), not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn array_of_tables<'a>(&mut self, t: &'a Table, key: &str) -> Vec<&'a Table> {
        match t.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::Table(inner) => Some(inner),
                    other => {
                        self.problem(
                            format!("{key}[{i}]"),
                            format!("must be a table, not {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.problem(
                    key,
                    format!(
                        "must be an array of tables ([[{key}]]), not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }

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
        let ledger_start = if t.contains_key("ledger_start") {
            self.instant(t, "", "ledger_start")
        } else if t.is_empty() {
            // Built-in defaults only: a file must say where its books begin.
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

        Some(Config {
            source: source.to_string(),
            currency,
            ledger_start: ledger_start?,
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
        })
    }

    fn server(&mut self, t: &Table) -> ServerConfig {
        let mut server = ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            max_body_bytes: 1 << 20,
            max_ingest_bytes: 512 << 20,
            workers: None,
            trusted_proxies: Vec::new(),
            max_record_bytes: 64 << 10,
            body_idle_timeout_seconds: 30,
        };
        let Some(s) = self.table(t, "server") else {
            return server;
        };
        self.unknown_keys(
            s,
            "server",
            &[
                "listen",
                "max_body_bytes",
                "max_ingest_bytes",
                "workers",
                "trusted_proxies",
                "max_record_bytes",
                "body_idle_timeout_seconds",
            ],
        );
        if let Some(listen) = self.string(s, "server", "listen") {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                self.problem(
                    "server.listen",
                    format!("{listen:?} is not an address such as \"127.0.0.1:8080\""),
                );
            }
            server.listen = listen;
        }
        if let Some(n) = self.integer(s, "server", "max_body_bytes", 1024, 1 << 30) {
            server.max_body_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "max_ingest_bytes", 1024, 16 << 30) {
            server.max_ingest_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "max_record_bytes", 1024, 16 << 20) {
            server.max_record_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "body_idle_timeout_seconds", 1, 3600) {
            server.body_idle_timeout_seconds = n as u64;
        }
        server.workers = self
            .integer(s, "server", "workers", 1, 256)
            .map(|n| n as usize);
        for (i, p) in self
            .string_list(s, "server", "trusted_proxies")
            .iter()
            .enumerate()
        {
            match IpNet::parse(p) {
                Some(net) => server.trusted_proxies.push(net),
                None => self.problem(
                    format!("server.trusted_proxies[{i}]"),
                    format!("{p:?} is not an IP address or network such as \"10.0.0.0/8\""),
                ),
            }
        }
        server
    }

    fn database(&mut self, t: &Table) -> DatabaseConfig {
        let mut db = DatabaseConfig {
            url: DEFAULT_DATABASE_URL.into(),
            max_connections: 10,
        };
        let Some(d) = self.table(t, "database") else {
            return db;
        };
        self.unknown_keys(d, "database", &["url", "max_connections"]);
        if let Some(url) = self.string(d, "database", "url") {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                self.problem(
                    "database.url",
                    "must start with sqlite:, postgres:// or postgresql://",
                );
            }
            db.url = url;
        }
        if let Some(n) = self.integer(d, "database", "max_connections", 1, 1000) {
            db.max_connections = n as u32;
        }
        db
    }

    fn env_name(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        let name = self.string(t, path, key)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // A value that looks like a URL or credentials may be the secret itself: not echoed.
            let shown = if name.contains([':', '@', '/']) {
                "the value (not shown, it may be a secret)".to_string()
            } else {
                format!("{name:?}")
            };
            self.problem(
                join(path, key),
                format!("{shown} is not the name of an environment variable (the secret itself never goes in the file)"),
            );
            return None;
        }
        Some(name)
    }

    fn opencollective(&mut self, t: &Table) -> Option<OpenCollectiveConfig> {
        let o = self.table(t, "opencollective")?;
        let path = "opencollective";
        self.unknown_keys(
            o,
            path,
            &[
                "endpoint",
                "collective",
                "token_env",
                "overlap_seconds",
                "website",
                "timeout_seconds",
            ],
        );
        let endpoint = self
            .string(o, path, "endpoint")
            .unwrap_or_else(|| "https://api.opencollective.com/graphql/v2".into());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            self.problem(
                "opencollective.endpoint",
                format!("{endpoint:?} is not an http(s) URL"),
            );
        }
        let overlap_seconds = self
            .integer(
                o,
                path,
                "overlap_seconds",
                0,
                MAX_OPENCOLLECTIVE_OVERLAP_SECONDS,
            )
            .unwrap_or(DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS);
        let timeout_seconds = self
            .integer(o, path, "timeout_seconds", 1, 600)
            .unwrap_or(DEFAULT_OPENCOLLECTIVE_TIMEOUT_SECONDS);
        let website = self
            .string(o, path, "website")
            .unwrap_or_else(|| "https://opencollective.com".into());
        if !(website.starts_with("http://") || website.starts_with("https://")) {
            self.problem(
                "opencollective.website",
                format!("{website:?} is not an http(s) URL"),
            );
        }
        let collective = self.required_string(o, path, "collective")?;
        let token_env = self.env_name(o, path, "token_env");
        Some(OpenCollectiveConfig {
            endpoint,
            collective,
            token_env,
            overlap_seconds,
            website: website.trim_end_matches('/').to_string(),
            timeout_seconds,
        })
    }

    fn hydra(&mut self, t: &Table) -> Option<HydraConfig> {
        let h = self.table(t, "hydra")?;
        let path = "hydra";
        self.unknown_keys(
            h,
            path,
            &[
                "database_url_env",
                "source",
                "overlap_seconds",
                "url",
                "user",
                "password_env",
                "act_on_gate",
            ],
        );
        let database_url_env = self.env_name(h, path, "database_url_env");
        let has_database = h.contains_key("database_url_env");
        if !has_database && !h.contains_key("url") {
            self.problem(
                "hydra",
                "needs database_url_env (the NAME of the environment variable holding the Hydra database URL, to pull build steps) or url (Hydra's web address, to act on the gate), or both",
            );
        }
        let source = match self.string(h, path, "source") {
            None => Some(DEFAULT_HYDRA_SOURCE.to_string()),
            Some(s) if s.trim().is_empty() => {
                self.problem("hydra.source", "must not be empty");
                None
            }
            // The same limits as the `source` field of an ingested record.
            Some(s) if s.len() > 64 || s.chars().any(char::is_control) => {
                self.problem(
                    "hydra.source",
                    format!("{s:?} must be at most 64 bytes without control characters"),
                );
                None
            }
            Some(s) => Some(s),
        };
        let overlap_seconds = self
            .integer(h, path, "overlap_seconds", 0, MAX_HYDRA_OVERLAP_SECONDS)
            .unwrap_or(DEFAULT_HYDRA_OVERLAP_SECONDS);
        let url = self.string(h, path, "url");
        if let Some(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                self.problem("hydra.url", format!("{u:?} is not an http(s) URL"));
            }
        }
        let user = self.string(h, path, "user");
        let password_env = self.env_name(h, path, "password_env");
        let act_on_gate = self
            .boolean(h, path, "act_on_gate")
            .unwrap_or(url.is_some());
        if act_on_gate && url.is_none() {
            self.problem("hydra.act_on_gate", "needs hydra.url (the Hydra to act on)");
        }
        if password_env.is_some() && user.is_none() {
            self.problem("hydra.user", "missing (hydra.password_env is set)");
        }
        if has_database && database_url_env.is_none() {
            return None;
        }
        Some(HydraConfig {
            database_url_env,
            source: source?,
            overlap_seconds,
            url: url.map(|u| u.trim_end_matches('/').to_string()),
            user,
            password_env,
            act_on_gate,
        })
    }

    fn gate(&mut self, t: &Table) -> GateConfig {
        let mut gate = GateConfig::default();
        let Some(g) = self.table(t, "gate") else {
            return gate;
        };
        self.unknown_keys(g, "gate", &["webhooks"]);
        let hooks = match g.get("webhooks") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => {
                self.problem(
                    "gate.webhooks",
                    format!(
                        "must be an array of tables ([[gate.webhooks]]), not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        };
        for (i, item) in hooks.into_iter().enumerate() {
            let path = format!("gate.webhooks[{i}]");
            let Value::Table(w) = item else {
                self.problem(&path, format!("must be a table, not {}", type_name(item)));
                continue;
            };
            self.unknown_keys(w, &path, &["url", "secret_env"]);
            let url = self.required_string(w, &path, "url");
            if let Some(u) = &url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    self.problem(join(&path, "url"), format!("{u:?} is not an http(s) URL"));
                }
            }
            let secret_env = self.env_name(w, &path, "secret_env");
            if let Some(url) = url {
                gate.webhooks.push(Webhook { url, secret_env });
            }
        }
        gate
    }

    fn smtp(&mut self, t: &Table) -> Option<SmtpConfig> {
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

    fn email(&mut self, t: &Table) -> EmailConfig {
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

    fn schedule(&mut self, t: &Table) -> BTreeMap<String, JobSchedule> {
        let mut exprs: BTreeMap<String, String> = DEFAULT_SCHEDULE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(s) = self.table(t, "schedule") {
            let known: Vec<&str> = DEFAULT_SCHEDULE.iter().map(|(k, _)| *k).collect();
            self.unknown_keys(s, "schedule", &known);
            for key in known {
                if let Some(expr) = self.string(s, "schedule", key) {
                    exprs.insert(key.to_string(), expr);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (job, expression) in exprs {
            if expression.trim().is_empty() {
                continue; // disabled
            }
            match cron::Schedule::from_str(&expression) {
                Ok(schedule) => {
                    out.insert(job, JobSchedule { expression, schedule });
                }
                Err(e) => self.problem(
                    format!("schedule.{job}"),
                    format!("{expression:?} is not a cron expression (sec min hour day month weekday): {e}"),
                ),
            }
        }
        out
    }

    fn rates(&mut self, t: &Table, ledger: &str) -> BTreeMap<String, Decimal> {
        let mut out = BTreeMap::new();
        let Some(r) = self.table(t, "rates") else {
            return out;
        };
        for key in r.keys() {
            let path = format!("rates.{key}");
            if !(key.len() == 3 && key.chars().all(|c| c.is_ascii_uppercase())) || key == ledger {
                self.problem(
                    &path,
                    "must be an ISO 4217 code other than the ledger currency",
                );
                continue;
            }
            let Some(text) = self.amount_text(r, "rates", key) else {
                continue;
            };
            match Decimal::from_str(text.trim()) {
                Ok(d) if d > Decimal::ZERO => {
                    out.insert(key.clone(), d);
                }
                _ => self.problem(&path, format!("{text:?} is not a positive decimal rate")),
            }
        }
        out
    }

    fn slug(&mut self, t: &Table, path: &str) -> Option<String> {
        let slug = self.required_string(t, path, "slug")?;
        if !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            self.problem(
                join(path, "slug"),
                format!("{slug:?} may only contain a-z, 0-9, '-' and '_'"),
            );
        }
        Some(slug)
    }

    fn funds(&mut self, t: &Table) -> Vec<Fund> {
        let tables = self.array_of_tables(t, "funds");
        if tables.is_empty() && !t.contains_key("funds") {
            return vec![Fund {
                slug: "general".into(),
                name: "General fund".into(),
                default: true,
                monthly_goal_cents: None,
                opening_balance_cents: 0,
                reserve_cents: 0,
                accounts: Vec::new(),
                tiers: Vec::new(),
            }];
        }
        let mut funds: Vec<Fund> = Vec::new();
        for (i, f) in tables.into_iter().enumerate() {
            let path = format!("funds[{i}]");
            self.unknown_keys(
                f,
                &path,
                &[
                    "slug",
                    "name",
                    "default",
                    "monthly_goal",
                    "opening_balance",
                    "reserve",
                    "accounts",
                    "tiers",
                ],
            );
            let slug = self.slug(f, &path);
            let name = self.string(f, &path, "name");
            let default = self.boolean(f, &path, "default").unwrap_or(false);
            let monthly_goal_cents = self.cents(f, &path, "monthly_goal", false);
            let opening_balance_cents = self.cents(f, &path, "opening_balance", true).unwrap_or(0);
            let reserve_cents = self.cents(f, &path, "reserve", false).unwrap_or(0);
            let accounts = self.string_list(f, &path, "accounts");
            let tiers = self.string_list(f, &path, "tiers");
            let Some(slug) = slug else { continue };
            if let Some(j) = funds.iter().position(|o| o.slug == slug) {
                self.problem(
                    join(&path, "slug"),
                    format!("{slug:?} is already the slug of funds[{j}]"),
                );
                continue;
            }
            funds.push(Fund {
                name: name.unwrap_or_else(|| slug.clone()),
                slug,
                default,
                monthly_goal_cents,
                opening_balance_cents,
                reserve_cents,
                accounts,
                tiers,
            });
        }
        let defaults = funds.iter().filter(|f| f.default).count();
        if defaults != 1 {
            self.problem(
                "funds",
                format!("exactly one fund must have default = true (found {defaults})"),
            );
        }
        funds
    }

    fn fund_ref(&mut self, t: &Table, path: &str, key: &str, funds: &[Fund]) -> Option<String> {
        let slug = self.string(t, path, key)?;
        if !funds.iter().any(|f| f.slug == slug) {
            let known: Vec<&str> = funds.iter().map(|f| f.slug.as_str()).collect();
            self.problem(
                join(path, key),
                format!("{slug:?} is not a fund (funds: {})", known.join(", ")),
            );
            return None;
        }
        Some(slug)
    }

    fn pools(&mut self, t: &Table, funds: &[Fund]) -> Vec<Pool> {
        let mut pools: Vec<Pool> = Vec::new();
        for (i, p) in self.array_of_tables(t, "pools").into_iter().enumerate() {
            let path = format!("pools[{i}]");
            self.unknown_keys(
                p,
                &path,
                &["slug", "fund", "jobsets", "monthly_budget", "warn_at"],
            );
            let slug = self.slug(p, &path);
            if !p.contains_key("fund") {
                self.problem(join(&path, "fund"), "missing");
            }
            let fund = self.fund_ref(p, &path, "fund", funds);
            let jobsets = self.string_list(p, &path, "jobsets");
            if jobsets.is_empty() && !p.contains_key("jobsets") {
                self.problem(
                    join(&path, "jobsets"),
                    "missing (glob patterns over project:jobset)",
                );
            }
            let mut matchers = Vec::new();
            for (j, pattern) in jobsets.iter().enumerate() {
                // `*` and `?` stop at `/`: no name ingested since the name check has one, and
                // one stored before must not slip into a pool through it.
                let glob = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build();
                match glob {
                    Ok(g) => matchers.push(g.compile_matcher()),
                    Err(e) => self.problem(
                        format!("{path}.jobsets[{j}]"),
                        format!("{pattern:?} is not a glob: {e}"),
                    ),
                }
            }
            let monthly_budget_cents = self.cents(p, &path, "monthly_budget", false);
            let warn_at = match p.get("warn_at") {
                None => Some(Decimal::new(8, 1)),
                Some(Value::String(s)) => self.fraction(&path, s),
                Some(Value::Float(f)) => self.fraction(&path, &f.to_string()),
                Some(Value::Integer(i)) => self.fraction(&path, &i.to_string()),
                Some(other) => {
                    self.problem(
                        join(&path, "warn_at"),
                        format!("must be a fraction such as 0.8, not {}", type_name(other)),
                    );
                    None
                }
            };
            let Some(slug) = slug else { continue };
            if slug == OTHER_POOL {
                self.problem(
                    join(&path, "slug"),
                    "\"other\" is the implicit pool of unmatched jobsets; choose another slug",
                );
                continue;
            }
            if let Some(j) = pools.iter().position(|o| o.slug == slug) {
                self.problem(
                    join(&path, "slug"),
                    format!("{slug:?} is already the slug of pools[{j}]"),
                );
                continue;
            }
            let (Some(fund), Some(warn_at)) = (fund, warn_at) else {
                continue;
            };
            pools.push(Pool {
                slug,
                fund,
                jobsets,
                matchers,
                monthly_budget_cents,
                warn_at,
            });
        }
        pools
    }

    fn fraction(&mut self, path: &str, text: &str) -> Option<Decimal> {
        match parse_fraction(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(join(path, "warn_at"), e);
                None
            }
        }
    }

    fn machines(&mut self, t: &Table, funds: &[Fund], default_fund: &str) -> Vec<Machine> {
        let mut machines: Vec<Machine> = Vec::new();
        // Every name and alias seen so far, with the key path that claimed it.
        let mut names: HashMap<String, String> = HashMap::new();
        for (i, m) in self.array_of_tables(t, "machines").into_iter().enumerate() {
            let path = format!("machines[{i}]");
            self.unknown_keys(
                m,
                &path,
                &[
                    "name",
                    "aliases",
                    "slots",
                    "active_from",
                    "active_until",
                    "idle_fund",
                    "monthly",
                    "hourly",
                    "metered",
                ],
            );
            let name = self.required_string(m, &path, "name");
            let aliases = self.string_list(m, &path, "aliases");
            let slots = self.integer(m, &path, "slots", 1, 100_000).unwrap_or(1) as u32;
            let active_from = self.instant(m, &path, "active_from");
            let active_until = self.instant(m, &path, "active_until");
            if let (Some(from), Some(until)) = (active_from, active_until) {
                if until <= from {
                    self.problem(join(&path, "active_until"), "must be after active_from");
                }
            }
            let idle_fund = if m.contains_key("idle_fund") {
                self.fund_ref(m, &path, "idle_fund", funds)
            } else {
                Some(default_fund.to_string())
            };
            let models: Vec<&str> = ["monthly", "hourly", "metered"]
                .into_iter()
                .filter(|k| m.contains_key(*k))
                .collect();
            let cost = match models.as_slice() {
                [kind] => {
                    let kind = *kind;
                    self.amount_text(m, &path, kind)
                        .and_then(|text| match Price::parse(&text) {
                            Ok(p) => Some(match kind {
                                "monthly" => CostModel::Monthly(p),
                                "hourly" => CostModel::Hourly(p),
                                _ => CostModel::Metered(p),
                            }),
                            Err(e) => {
                                self.problem(join(&path, kind), e);
                                None
                            }
                        })
                }
                [] => {
                    self.problem(&path, "needs a price: one of monthly, hourly or metered");
                    None
                }
                _ => {
                    self.problem(
                        &path,
                        format!(
                            "has {} prices; give exactly one of monthly, hourly or metered",
                            models.join(" and ")
                        ),
                    );
                    None
                }
            };
            let Some(name) = name else { continue };
            let mut claims = vec![(name.clone(), join(&path, "name"))];
            claims.extend(
                aliases
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (a.clone(), format!("{path}.aliases[{j}]"))),
            );
            for (claimed, at) in claims {
                if let Some(previous) = names.get(&claimed) {
                    self.problem(&at, format!("{claimed:?} is already used by {previous}"));
                } else {
                    names.insert(claimed, at);
                }
            }
            let (Some(cost), Some(idle_fund)) = (cost, idle_fund) else {
                continue;
            };
            machines.push(Machine {
                name,
                aliases,
                slots,
                active_from,
                active_until,
                idle_fund,
                cost,
            });
        }
        machines
    }
}

/// Where a relative SQLite path in a URL would live, for messages.
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or(rest);
        let abs = std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| PathBuf::from(path));
        format!("SQLite file {}", abs.display())
    } else {
        // Never print credentials that may be in a PostgreSQL URL.
        let without_user = match url.split_once('@') {
            Some((scheme_user, host)) => {
                let scheme = scheme_user.split("://").next().unwrap_or("postgres");
                format!("{scheme}://…@{host}")
            }
            None => url.to_string(),
        };
        format!("PostgreSQL {without_user}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"
idle = "separate"

[[funds]]
slug = "general"
name = "General"
default = true
opening_balance = "100.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
monthly_goal = "1500"
tiers = ["cuda-sponsor"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "800.00"

[[machines]]
name = "build03"
aliases = ["b3"]
slots = 4
monthly = "120.00"

[[machines]]
name = "jetson01"
hourly = "0.35"
idle_fund = "cuda"
active_from = 2026-10-15
"#;

    #[test]
    fn a_good_file_loads_into_typed_values() {
        let c = Config::parse(GOOD, "test").unwrap();
        assert_eq!(c.default_fund().slug, "general");
        assert_eq!(c.funds[0].opening_balance_cents, 10000);
        assert_eq!(c.funds[1].monthly_goal_cents, Some(150000));
        assert_eq!(c.pools[0].monthly_budget_cents, Some(80000));
        assert_eq!(c.pools[0].warn_at, Decimal::new(8, 1));
        assert_eq!(
            c.pool_of("nixpkgs:cuda-12").map(|p| p.slug.as_str()),
            Some("cuda")
        );
        assert!(c.pool_of("nixpkgs:trunk").is_none());
        assert!(
            c.pool_of("nixpkgs:cuda/../trunk").is_none(),
            "`*` stops at `/`"
        );
        assert_eq!(
            c.machines[0].cost,
            CostModel::Monthly(Price::parse("120").unwrap())
        );
        assert_eq!(c.machines[0].idle_fund, "general");
        assert_eq!(c.machines[1].idle_fund, "cuda");
        assert_eq!(
            c.machines[1].active_from,
            Some("2026-10-15T00:00:00Z".parse().unwrap())
        );
        assert_eq!(c.machine_by_name()["b3"].name, "build03");
        assert!(c.schedule.contains_key("opencollective_sync"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let bad = GOOD
            .replace("monthly = \"120.00\"", "monthly = \"12,50\"")
            .replace("fund = \"cuda\"\njobsets", "fund = \"gpu\"\njobsets")
            .replace("aliases = [\"b3\"]", "aliases = [\"jetson01\"]");
        let err = Config::parse(&bad, "test").unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "pools[0].fund: \"gpu\" is not a fund (funds: general, cuda)".to_string(),
                "machines[0].monthly: \"12,50\" is not a decimal amount".to_string(),
                "machines[1].name: \"jetson01\" is already used by machines[0].aliases[0]"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn type_errors_do_not_hide_later_problems() {
        let err = Config::parse(
            "ledger_start = 5\nidle = \"sometimes\"\n[server]\nlisten = \"nowhere\"\nport = 1\n[schedule]\nhydra_pull = \"every five minutes\"",
            "t",
        )
        .unwrap_err();
        let joined = err.problems.join("\n");
        assert!(joined.contains("ledger_start: must be a date"), "{joined}");
        assert!(joined.contains("idle: \"sometimes\""), "{joined}");
        assert!(joined.contains("server.listen: \"nowhere\""), "{joined}");
        assert!(joined.contains("server.port: unknown key"), "{joined}");
        assert!(
            joined.contains("schedule.hydra_pull: \"every five minutes\" is not a cron expression"),
            "{joined}"
        );
        assert_eq!(err.problems.len(), 5, "{joined}");
    }

    #[test]
    fn default_fund_rules() {
        let none = "ledger_start = \"2026-01-01\"\n[[funds]]\nslug = \"a\"\n";
        assert_eq!(
            Config::parse(none, "t").unwrap_err().problems,
            vec!["funds: exactly one fund must have default = true (found 0)"]
        );
        let two = "ledger_start = \"2026-01-01\"\n[[funds]]\nslug = \"a\"\ndefault = true\n[[funds]]\nslug = \"b\"\ndefault = true\n";
        assert!(Config::parse(two, "t").unwrap_err().problems[0].contains("found 2"));
    }

    #[test]
    fn machine_needs_exactly_one_price_and_a_sane_interval() {
        let text = "ledger_start = \"2026-01-01\"\n[[machines]]\nname = \"a\"\n[[machines]]\nname = \"b\"\nhourly = \"1\"\nmetered = \"2\"\n[[machines]]\nname = \"c\"\nmonthly = \"1\"\nslots = 0\nactive_from = \"2026-02-01\"\nactive_until = \"2026-01-01\"\n";
        let problems = Config::parse(text, "t").unwrap_err().problems;
        assert_eq!(
            problems,
            vec![
                "machines[0]: needs a price: one of monthly, hourly or metered",
                "machines[1]: has hourly and metered prices; give exactly one of monthly, hourly or metered",
                "machines[2].slots: 0 is not between 1 and 100000",
                "machines[2].active_until: must be after active_from",
            ]
        );
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::defaults();
        assert_eq!(c.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(c.default_fund().slug, "general");
        assert!(c.machines.is_empty());
        assert_eq!(c.server.listen, DEFAULT_LISTEN);
    }

    #[test]
    fn secrets_are_env_names_only() {
        let text = "ledger_start = \"2026-01-01\"\n[opencollective]\ncollective = \"nixos\"\ntoken_env = \"hunter2 is my token\"\n";
        let problems = Config::parse(text, "t").unwrap_err().problems;
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("opencollective.token_env: "));
    }

    #[test]
    fn gate_webhooks_are_checked_with_their_key_paths() {
        let base = "ledger_start = \"2026-01-01\"\n";
        let c = Config::parse(
            &format!("{base}[gate]\n[[gate.webhooks]]\nurl = \"https://hooks.example.org/bf\"\nsecret_env = \"BF_HOOK_SECRET\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.gate.webhooks.len(), 1);
        assert_eq!(
            c.gate.webhooks[0].secret_env.as_deref(),
            Some("BF_HOOK_SECRET")
        );
        let bad = format!(
            "{base}[gate]\nfoo = 1\n[[gate.webhooks]]\nurl = \"ftp://x\"\nsecret_env = \"s3cr:t@\"\n[[gate.webhooks]]\nsecret_env = \"A\"\n"
        );
        let problems = Config::parse(&bad, "t").unwrap_err().problems;
        assert_eq!(
            problems,
            vec![
                "gate.foo: unknown key (expected one of: webhooks)".to_string(),
                "gate.webhooks[0].url: \"ftp://x\" is not an http(s) URL".to_string(),
                "gate.webhooks[0].secret_env: the value (not shown, it may be a secret) is not the name of an environment variable (the secret itself never goes in the file)".to_string(),
                "gate.webhooks[1].url: missing".to_string(),
            ]
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let c = Config::parse(
            "ledger_start = \"2026-01-01\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\"]\n",
            "t",
        )
        .unwrap();
        let nets = &c.server.trusted_proxies;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(nets[0].contains(ip("10.200.3.4")));
        assert!(!nets[0].contains(ip("11.0.0.1")));
        assert!(nets[0].contains(ip("::ffff:10.0.0.1")), "IPv4-mapped");
        assert!(nets[1].contains(ip("192.0.2.7")) && !nets[1].contains(ip("192.0.2.8")));
        assert!(nets[2].contains(ip("fd12::1")) && !nets[2].contains(ip("fe80::1")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let problems = Config::parse(
            "ledger_start = \"2026-01-01\"\n[server]\ntrusted_proxies = [\"10.0.0.0/33\", \"proxy.local\"]\n",
            "t",
        )
        .unwrap_err()
        .problems;
        assert_eq!(
            problems,
            vec![
                "server.trusted_proxies[0]: \"10.0.0.0/33\" is not an IP address or network such as \"10.0.0.0/8\"",
                "server.trusted_proxies[1]: \"proxy.local\" is not an IP address or network such as \"10.0.0.0/8\"",
            ]
        );
    }

    #[test]
    fn hydra_table_defaults_and_bad_values() {
        let base = "ledger_start = \"2026-01-01\"\n";
        assert!(Config::parse(base, "t").unwrap().hydra.is_none());

        let c = Config::parse(
            &format!("{base}[hydra]\ndatabase_url_env = \"HYDRA_DATABASE_URL\"\n"),
            "t",
        )
        .unwrap();
        let h = c.hydra.unwrap();
        assert_eq!(h.database_url_env.as_deref(), Some("HYDRA_DATABASE_URL"));
        assert_eq!(h.source, "hydra");
        assert_eq!(h.overlap_seconds, 3600);
        assert_eq!(h.url, None);

        let c = Config::parse(
            &format!("{base}[hydra]\ndatabase_url_env = \"H\"\nsource = \"nix-community\"\noverlap_seconds = 0\nurl = \"https://hydra.nix-community.org/\"\n"),
            "t",
        )
        .unwrap();
        let h = c.hydra.unwrap();
        assert_eq!(
            (h.source.as_str(), h.overlap_seconds, h.url.as_deref()),
            ("nix-community", 0, Some("https://hydra.nix-community.org"))
        );

        // Only the web API (the gate's actions), no step pull; but one of the two is needed.
        let c = Config::parse(
            &format!("{base}[hydra]\nurl = \"https://hydra.example.org\"\n"),
            "t",
        )
        .unwrap();
        let h = c.hydra.unwrap();
        assert_eq!((h.database_url_env, h.act_on_gate), (None, true));
        let problems = Config::parse(&format!("{base}[hydra]\nsource = \"x\"\n"), "t")
            .unwrap_err()
            .problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("hydra: needs database_url_env"),
            "{problems:?}"
        );

        let bad = format!(
            "{base}[hydra]\ndatabase_url_env = \"postgres://hydra:secret@db/hydra\"\nsource = \"\"\noverlap_seconds = 604801\nurl = \"hydra.example.org\"\nlogin = \"x\"\n"
        );
        let problems = Config::parse(&bad, "t").unwrap_err().problems;
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(
            problems[0],
            "hydra.login: unknown key (expected one of: database_url_env, source, overlap_seconds, url, user, password_env, act_on_gate)"
        );
        assert_eq!(
            problems[1],
            "hydra.database_url_env: the value (not shown, it may be a secret) is not the name of an environment variable (the secret itself never goes in the file)"
        );
        assert!(!problems.join("\n").contains("secret@"));
        assert_eq!(problems[2], "hydra.source: must not be empty");
        assert_eq!(
            problems[3],
            "hydra.overlap_seconds: 604801 is not between 0 and 604800"
        );
        assert_eq!(
            problems[4],
            "hydra.url: \"hydra.example.org\" is not an http(s) URL"
        );
    }

    #[test]
    fn database_description_hides_credentials() {
        let d = describe_database("postgres://user:secret@db.example:5432/bf");
        assert!(!d.contains("secret"));
        assert!(d.contains("db.example:5432/bf"));
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn the_example_configuration_of_the_readme_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../buildfund.example.toml");
        let config = super::Config::from_file(std::path::Path::new(path)).unwrap();
        assert_eq!(config.funds.len(), 2);
        assert_eq!(config.pools[0].slug, "cuda");
        assert_eq!(config.machines[0].aliases, vec!["build03.example.org"]);
        // The README shows the same text.
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let file = std::fs::read_to_string(path).unwrap();
        let body = file.split_once('\n').unwrap().1;
        assert!(
            readme.contains(&format!("```toml\n{body}```")),
            "README and buildfund.example.toml differ"
        );
    }
}
