//! The `buildfund` command line (interfaces.md, "Binary and CLI"). Command output goes to
//! stdout; errors go to stderr as one sentence naming the input at fault, with a non-zero exit.
use crate::commands::{gate, ingest_file, open_database, serve, sync_hydra, sync_opencollective};
use anyhow::Context;
use buildfund_jobs::api_tokens::{self as tokens, Scope};
use buildfund_jobs::books::{costs, job_costs, plans};
use buildfund_jobs::bounds::At;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::clock::Clock;
use buildfund_jobs::config::{describe_database, Secrets};
use buildfund_jobs::email;
use buildfund_jobs::Config;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "buildfund",
    version,
    about = "Sponsorship and cost tracking for shared build infrastructure"
)]
struct Cli {
    /// The configuration file (default: ./buildfund.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "BUILDFUND_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then serve HTTP and run the scheduled jobs in one process.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration: exit 0, or print every problem and exit 1.
    CheckConfig,
    /// Load build steps, as `POST /api/v1/build-steps` does.
    Ingest {
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// The month's cost lines grouped by fund, pool, jobset and machine.
    Costs {
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        /// Evaluate as of this RFC 3339 instant (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Print the JSON of GET /api/v1/costs (with --jobs: /api/v1/costs/jobs) instead of a
        /// table.
        #[arg(long)]
        json: bool,
        /// The month's cost per job instead of its lines.
        #[arg(long)]
        jobs: bool,
        /// With --jobs: only the jobs of this jobset, PROJECT:JOBSET.
        #[arg(long, requires = "jobs")]
        jobset: Option<String>,
        /// With --jobs: only the jobs of this pool.
        #[arg(long, requires = "jobs")]
        pool: Option<String>,
        /// With --jobs: list at most this many jobs (default 100, at most 10000).
        #[arg(long, requires = "jobs")]
        limit: Option<String>,
    },
    /// The month's reconciliation: every machine's modeled cost against the invoices paying
    /// for the month, the other expenses by fund, and cash (GET /api/v1/reconciliation).
    Reconcile {
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        /// Evaluate as of this RFC 3339 instant (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Print the JSON of GET /api/v1/reconciliation instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every expense record paid in the month, with the machine and month an invoice pays for
    /// or the fund of an other expense (GET /api/v1/expenses).
    Expenses {
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        /// Print the JSON of GET /api/v1/expenses instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Export the month's costs for other tools.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// What more money would build: each fund's plans, how much of each its recent income
    /// covers, and the runway if adopted.
    Plans {
        /// Evaluate as of this RFC 3339 instant (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Print the JSON of GET /api/v1/plans instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ask a running server's gate whether PROJECT:JOBSET may build now: prints the reason,
    /// exits 0 allowed, 1 refused, 2 undecided (server unreachable, bad answer).
    Gate {
        /// The jobset, PROJECT:JOBSET.
        jobset: String,
        /// Print the server's JSON answer instead of the reason.
        #[arg(long)]
        json: bool,
        /// The buildfund server to ask.
        #[arg(long, env = "BUILDFUND_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// What to answer when the server cannot decide: allow (exit 0), deny (exit 1);
        /// without it, exit 2.
        #[arg(long, value_parser = ["allow", "deny"])]
        on_error: Option<String>,
    },
    /// Run one sync with an outside source now.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// The monthly sponsor report email.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Manage the subscribers of the monthly report.
    Subscribers {
        #[command(subcommand)]
        command: SubscribersCommand,
    },
    /// The stored books of closed months (docs/src/http-api.md, "Stored books").
    Books {
        #[command(subcommand)]
        command: BooksCommand,
    },
    /// The database itself: copy it (to move to PostgreSQL, or as a backup).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy everything the configured database holds into an empty database at URL (SQLite or
    /// PostgreSQL, either way), from one consistent snapshot, in one transaction, and compare
    /// every table's rows and digest on both sides. A copy to an SQLite file is a backup; a
    /// copy back restores it.
    Copy {
        /// The target: `sqlite://PATH` (created when missing) or `postgres://…`; it must hold
        /// no rows.
        #[arg(
            long,
            value_name = "URL",
            env = "BUILDFUND_COPY_TO",
            hide_env_values = true
        )]
        to: String,
    },
}

#[derive(Subcommand)]
enum BooksCommand {
    /// The fingerprint of the configuration in force and every closed month: stored, stale
    /// (data dated in it changed since) or missing.
    Status {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Recompute and store the closed months from --from (default: the ledger's first), with a
    /// progress line; then whatever else is stale or missing.
    Rebuild {
        /// The first month to recompute, YYYY-MM.
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The month's cost lines as a FOCUS 1.0 CSV (FinOps Open Cost and Usage Specification),
    /// exactly what GET /api/v1/costs/focus answers.
    Focus {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Evaluate as of this RFC 3339 instant (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Write the CSV to this file (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Write the month's report as subscribers would get it: report-YYYY-MM.txt and .html.
    Preview {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// The directory to write into (default: the current one).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Queue the month's report for every confirmed subscriber (once per subscriber, however
    /// often this runs), then send what is queued over SMTP.
    Send {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// How long to keep waiting for retries of transient failures, in seconds.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
}

#[derive(Subcommand)]
enum SubscribersCommand {
    /// Every subscriber with its status.
    List,
    /// Add an address: pending (a confirmation email is sent when [smtp] is configured) or,
    /// with --confirmed, subscribed at once.
    Add {
        email: String,
        #[arg(long)]
        confirmed: bool,
    },
    /// Delete an address.
    Remove { email: String },
}

/// The outside sources `buildfund sync` reads; each also runs on its `[schedule]` entry.
#[derive(Subcommand)]
enum SyncCommand {
    /// Pull the build steps finished since the last pull from Hydra's PostgreSQL database
    /// (`[hydra]` in the configuration).
    Hydra,
    /// Read the donations (contributions, added funds, refunds) and active recurring
    /// contributions that are new since the last sync from OpenCollective
    /// (`[opencollective]` in the configuration).
    Opencollective,
}

#[derive(Subcommand)]
enum IngestCommand {
    /// Ingest build steps from FILE, or `-` for stdin: NDJSON, a JSON array (`.json`) or CSV
    /// (`.csv`); `--format` overrides the guess from the file name.
    BuildSteps {
        file: String,
        #[arg(long, value_parser = ["ndjson", "json", "csv"])]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new API token once; only its hash is stored.
    Create {
        /// ingest, scheduler or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// A name to recognise the token by in logs and audit records.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (names, scopes and prefixes; never secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i32 },
}

fn parse_month(s: &str) -> anyhow::Result<Month> {
    Month::parse(s).map_err(|e| anyhow::anyhow!("--month {e}"))
}

/// `--month` of the books: [`Month::parse_until`], no month after the current one.
fn parse_books_month(s: &str, clock: &Clock) -> anyhow::Result<Month> {
    Month::parse_until(s, clock.now()).map_err(|e| anyhow::anyhow!("--month {e}"))
}

/// `--at`, the domain's bounded [`At`]: an RFC 3339 instant from 1970 to now (plus the HTTP
/// API's minute of clock skew); now without it.
fn parse_at(s: Option<&str>, clock: &Clock) -> anyhow::Result<At> {
    At::parse_or_now(s, clock.now()).map_err(|e| anyhow::anyhow!("--at: {e}"))
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse().map_err(|e: tokens::TokenError| e.to_string())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `report send` is one sequential conversation with the relay and the database: on one
    // thread its steps hand over to each other without waking a second worker thread (the
    // profile of a 10,000-message send spent about a third of its CPU switching threads).
    let one_thread = matches!(
        &cli.command,
        Command::Report {
            command: ReportCommand::Send { .. }
        }
    );
    let mut builder = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Config::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // What "now" is for every command (the instants they are asked about are bounded by it).
    let clock = Clock::system();
    match &cli.command {
        Command::CheckConfig => {
            return Ok(match Config::load(cli.config.as_deref()) {
                Ok(c) => {
                    println!(
                        "{}: OK ({} funds, {} pools, {} machines, {} scheduled jobs; database: {})",
                        c.source,
                        c.funds.len(),
                        c.pools.len(),
                        c.machines.len(),
                        c.schedule.len(),
                        describe_database(&c.database.url)
                    );
                    for w in c.warnings() {
                        eprintln!("warning: {w}");
                    }
                    // The secrets may be absent where the file is checked: noted, not failed.
                    for (missing, needed) in Secrets::from_env(&c).unavailable(&c) {
                        if needed {
                            eprintln!(
                                "warning: {missing}: `buildfund serve` refuses to start without it"
                            );
                        } else {
                            eprintln!(
                                "note: {missing} (serve does not need it with this configuration)"
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    ExitCode::FAILURE
                }
            });
        }
        Command::Serve => serve(load_config(&cli)?).await?,
        Command::Gate {
            jobset,
            json,
            server,
            timeout,
            on_error,
        } => return Ok(gate(jobset, *json, server, *timeout, on_error.as_deref()).await),
        Command::Migrate => {
            let mut config = load_config(&cli)?;
            open_database(&mut config).await?;
            println!(
                "migrations applied ({})",
                describe_database(&config.database.url)
            );
        }
        Command::Ingest {
            command: IngestCommand::BuildSteps { file, format },
        } => {
            let mut config = load_config(&cli)?;
            let conn = open_database(&mut config).await?;
            let config = Arc::new(config);
            return ingest_file(&conn, config, file, format.as_deref(), &clock).await;
        }
        Command::Reconcile { month, at, json } => {
            let mut config = load_config(&cli)?;
            let at = parse_at(at.as_deref(), &clock)?;
            let month = match month {
                Some(m) => parse_books_month(m, &clock)?,
                None => at.month(),
            };
            let conn = open_database(&mut config).await?;
            let period =
                buildfund_jobs::calendar::Period::new(month, at.instant(), config.ledger_start);
            let r = buildfund_jobs::books::reconciliation::reconciliation(&conn, &config, &period)
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!(
                    "{}",
                    buildfund_jobs::report::table::render_reconciliation(&r)
                );
            }
        }
        Command::Expenses { month, json } => {
            let mut config = load_config(&cli)?;
            let month = match month {
                Some(m) => parse_books_month(m, &clock)?,
                None => Month::of(clock.now()),
            };
            let conn = open_database(&mut config).await?;
            let period =
                buildfund_jobs::calendar::Period::new(month, clock.now(), config.ledger_start);
            let e =
                buildfund_jobs::books::reconciliation::expenses_of_month(&conn, &config, &period)
                    .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{}", buildfund_jobs::report::table::render_expenses(&e));
            }
        }
        Command::Costs {
            month,
            at,
            json,
            jobs,
            jobset,
            pool,
            limit,
        } => {
            let mut config = load_config(&cli)?;
            let at = parse_at(at.as_deref(), &clock)?;
            let month = match month {
                Some(m) => parse_books_month(m, &clock)?,
                None => at.month(),
            };
            let conn = open_database(&mut config).await?;
            if *jobs {
                let filter = crate::routes::books::jobs_filter(
                    &config,
                    jobset.as_deref(),
                    pool.as_deref(),
                    limit.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
                let report = job_costs::month_jobs(&conn, &config, month, at, &filter).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", buildfund_jobs::report::table::render_jobs(&report));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let report = costs::costs_report(&conn, &config, month, at).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!(
                    "{}",
                    buildfund_jobs::report::table::render(&config, &report, month, at.instant())
                );
            }
        }
        Command::Export {
            command: ExportCommand::Focus { month, at, out },
        } => {
            let mut config = load_config(&cli)?;
            let month = parse_books_month(month, &clock)?;
            let at = parse_at(at.as_deref(), &clock)?;
            let conn = open_database(&mut config).await?;
            let csv =
                buildfund_jobs::report::focus::month_focus_csv(&conn, &config, month, at).await?;
            match out {
                Some(path) => {
                    std::fs::write(path, &csv)
                        .with_context(|| format!("--out {}: cannot write it", path.display()))?;
                    println!("{}", path.display());
                }
                None => std::io::Write::write_all(&mut std::io::stdout(), &csv)
                    .context("cannot write to stdout")?,
            }
        }
        Command::Plans { at, json } => {
            let mut config = load_config(&cli)?;
            let at = parse_at(at.as_deref(), &clock)?;
            let conn = open_database(&mut config).await?;
            let report = plans::plans_report(&conn, &config, at).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", buildfund_jobs::report::table::render_plans(&report));
            }
        }
        Command::Token { command } => {
            let mut config = load_config(&cli)?;
            let conn = open_database(&mut config).await?;
            match command {
                TokenCommand::Create { scope, name } => {
                    let name = name.clone().unwrap_or_else(|| format!("{scope} token"));
                    let (secret, row) = tokens::create(&conn, *scope, &name, clock.now()).await?;
                    println!("{secret}");
                    eprintln!(
                        "created token {} ({:?}, scope {scope}); store it now: it is not shown again",
                        row.id, row.name
                    );
                }
                TokenCommand::List => {
                    for t in tokens::list(&conn).await? {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{:>4}  {:<10} {:<9} {}…  {}  {}",
                            t.id,
                            t.scope.as_str(),
                            state,
                            t.prefix,
                            t.created_at.format("%Y-%m-%d %H:%M"),
                            t.name
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    if !tokens::revoke(&conn, *id, clock.now()).await? {
                        anyhow::bail!("no active token with id {id}");
                    }
                    println!("token {id} revoked");
                }
            }
        }
        Command::Sync { command } => {
            let mut config = load_config(&cli)?;
            match command {
                SyncCommand::Hydra => sync_hydra(&mut config, &clock).await?,
                SyncCommand::Opencollective => sync_opencollective(&mut config, &clock).await?,
            }
        }
        Command::Report { command } => {
            let mut config = load_config(&cli)?;
            match command {
                ReportCommand::Preview { month, out } => {
                    let month = parse_month(month)?;
                    let conn = open_database(&mut config).await?;
                    let rendered =
                        email::outbox::preview(&conn, &config, month, clock.now()).await?;
                    std::fs::create_dir_all(out)
                        .with_context(|| format!("--out {}: cannot create it", out.display()))?;
                    for (ext, body) in [("txt", &rendered.text), ("html", &rendered.html)] {
                        let path = out.join(format!("report-{month}.{ext}"));
                        std::fs::write(&path, body)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        println!("{}", path.display());
                    }
                    eprintln!("subject: {}", rendered.subject);
                }
                ReportCommand::Send { month, wait } => {
                    let month = parse_month(month)?;
                    if config.smtp.is_none() {
                        anyhow::bail!("{}: no [smtp] table: cannot send email", config.source);
                    }
                    let conn = open_database(&mut config).await?;
                    let options = email::outbox::DrainOptions {
                        wait_for_retries: std::time::Duration::from_secs(*wait),
                        progress: Some(|r| {
                            eprintln!(
                                "sending: {} sent, {} failed, {} skipped, {} transient failures so far",
                                r.sent, r.failed, r.skipped, r.transient_failures
                            )
                        }),
                        clock: clock.clone(),
                        ..Default::default()
                    };
                    let (created, report) = email::outbox::send_month(
                        &conn,
                        &config,
                        &Secrets::from_env(&config),
                        month,
                        options,
                    )
                    .await?;
                    println!("{month}: {created} messages queued now; {report}");
                    let counts = email::outbox::month_status(&conn, month).await?;
                    let shown: Vec<String> =
                        counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                    println!("{month} in the outbox: {}", shown.join(", "));
                    if report.waiting > 0 {
                        eprintln!("some messages wait for a retry: `serve` (job outbox_drain) or another `report send` will send them");
                        return Ok(ExitCode::from(3));
                    }
                }
            }
        }
        Command::Books { command } => {
            let mut config = load_config(&cli)?;
            let conn = open_database(&mut config).await?;
            books(&conn, &config, command, &clock).await?;
        }
        Command::Db {
            command: DbCommand::Copy { to },
        } => {
            let config = load_config(&cli)?;
            crate::commands::db_copy(&config, to).await?;
        }
        Command::Subscribers { command } => {
            let mut config = load_config(&cli)?;
            let conn = open_database(&mut config).await?;
            let now = clock.now();
            match command {
                SubscribersCommand::List => {
                    for s in email::subscriptions::list(&conn).await? {
                        println!(
                            "{:>6}  {:<12} {}  {}",
                            s.id,
                            s.status,
                            s.created_at.format("%Y-%m-%d %H:%M"),
                            s.email
                        );
                    }
                }
                SubscribersCommand::Add { email, confirmed } => {
                    let address = email::subscriptions::SubscriberEmail::parse(email)
                        .map_err(|p| anyhow::anyhow!("{p}"))?;
                    let added = email::subscriptions::add(&conn, &address, *confirmed, now).await?;
                    let row = &added.subscriber;
                    let what = if added.created {
                        "added"
                    } else {
                        "already known"
                    };
                    println!("{} {what}: {}", row.email, row.status);
                    match (added.confirmation, &config.smtp) {
                        (Some(id), Some(smtp)) => {
                            // The confirmation is queued with the subscriber; try it once now.
                            use email::outbox::Delivery;
                            let secrets = Secrets::from_env(&config);
                            let mailer = email::Mailer::new(smtp, &secrets)?;
                            let key = email::EmailKey::load(&conn, &secrets, now).await?;
                            match email::outbox::deliver_now(&conn, &config, &mailer, &key, id, &clock)
                                .await?
                            {
                                Delivery::Sent => {
                                    println!("confirmation email sent to {}", row.email)
                                }
                                Delivery::Retry { error, at, .. } => println!(
                                    "confirmation email to {} queued; will retry from {} (`serve`, job outbox_drain): {error}",
                                    row.email,
                                    buildfund_jobs::calendar::rfc3339(at)
                                ),
                                Delivery::Failed(e) | Delivery::GaveUp(e) => anyhow::bail!(
                                    "the relay refused the confirmation email to {}: {e}",
                                    row.email
                                ),
                                Delivery::Skipped | Delivery::NotDue => println!(
                                    "confirmation email to {} queued (another sender has it)",
                                    row.email
                                ),
                            }
                        }
                        (Some(_), None) => eprintln!(
                            "no [smtp] configured: the confirmation email is queued and goes out with `serve` (job outbox_drain) once [smtp] is configured (use --confirmed to subscribe directly)"
                        ),
                        (None, _) if row.status == email::subscriptions::PENDING => println!(
                            "a confirmation email to {} was queued less than 10 minutes ago; no other is sent",
                            row.email
                        ),
                        (None, _) => {}
                    }
                }
                SubscribersCommand::Remove { email } => {
                    let address = email::subscriptions::SubscriberEmail::parse(email)
                        .map_err(|p| anyhow::anyhow!("{p}"))?;
                    if !email::subscriptions::remove(&conn, &address).await? {
                        anyhow::bail!("no subscriber {address}");
                    }
                    println!("{address} removed");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `buildfund books status` and `buildfund books rebuild`.
async fn books(
    conn: &sea_orm::DatabaseConnection,
    config: &Config,
    command: &BooksCommand,
    clock: &Clock,
) -> anyhow::Result<()> {
    use buildfund_jobs::books::store::{self, MonthState};
    let now = clock.now();
    match command {
        BooksCommand::Status { json } => {
            let status = store::books_status(conn, config, now).await?;
            let check = buildfund_jobs::books::opencollective_check::latest_check(conn).await?;
            if *json {
                let mut value = serde_json::to_value(&status)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("opencollective_check".into(), serde_json::to_value(&check)?);
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            let count = |s: MonthState| status.months.iter().filter(|(_, x)| *x == s).count();
            println!("fingerprint {}", status.fingerprint);
            println!(
                "{} closed months: {} stored, {} stale, {} missing",
                status.months.len(),
                count(MonthState::Stored),
                count(MonthState::Stale),
                count(MonthState::Missing)
            );
            for (m, state) in &status.months {
                if *state != MonthState::Stored {
                    println!(
                        "{m} {}",
                        serde_json::to_value(state)?.as_str().unwrap_or("")
                    );
                }
            }
            let days = &status.days;
            println!(
                "{} days since the first step{}: {} stored, {} stale or missing",
                days.days,
                days.first
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                days.stored,
                days.todo_count
            );
            if status.other_fingerprints > 0 {
                println!(
                    "{} months stored under other configurations",
                    status.other_fingerprints
                );
            }
            match &check {
                Some(c) => println!("{}", crate::commands::check_line(c, &config.currency)),
                None if config.opencollective.is_some() => {
                    println!("opencollective check: never (no sync yet)")
                }
                None => {}
            }
        }
        BooksCommand::Rebuild { from } => {
            let from = from.as_deref().map(parse_month).transpose()?;
            let tty = std::io::stderr().is_terminal();
            let started = std::time::Instant::now();
            let done = store::rebuild(conn, config, now, from, |m, i, total| {
                let line = format!(
                    "{m}: {i}/{total} months, {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                if tty {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
            })
            .await?;
            if tty {
                eprintln!();
            }
            println!(
                "{} months stored, {} already stored by another instance, {} days stored",
                done.stored, done.skipped, done.days
            );
        }
    }
    Ok(())
}
