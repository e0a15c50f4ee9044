//! The CLI's longer commands, apart from its argument parsing ([`crate::cli`]): the syncs, a
//! file's ingest, the gate asked from a script, and `serve` with its scheduler.
use crate::startup::{Application, ServeOptions};
use crate::telemetry;
use anyhow::Context;
use buildfund_jobs::config::{describe_database, Secrets};
use buildfund_jobs::sources::hydra_pull;
use buildfund_jobs::sources::ingest::{self, Format, IngestError};
use buildfund_jobs::sources::opencollective;
use buildfund_jobs::{db, Config};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

/// How long running jobs may take to finish after SIGTERM.
const JOB_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects, migrates and records the first run; then the books begin where the configuration
/// says, or (none configured) at the month of the first run. The first start with a
/// `ledger_start` months in the past says so: those months are charged backwards.
pub async fn open_database(config: &mut Config) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let conn = db::connect(config).await?;
    let first_run =
        db::prepare(&conn, config, buildfund_jobs::clock::Clock::system().now()).await?;
    config.start_books_at_first_run(first_run.at);
    if let Some(warning) = backdated_books(config, first_run) {
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(source = %config.source, "{warning}");
        } else {
            eprintln!("warning: {warning}");
        }
    }
    Ok(conn)
}

/// The warning of a first start whose configured `ledger_start` lies whole months before it.
pub fn backdated_books(config: &Config, first_run: db::FirstRun) -> Option<String> {
    let months = config.months_before_first_run(first_run.at);
    if !first_run.now || months == 0 {
        return None;
    }
    Some(format!(
        "ledger_start {} is {months} month{} before this first start: the books charge the \
         configured machines' time (idle included) for those months backwards, and the \
         funds' balances and the gate count those costs from now on",
        buildfund_jobs::calendar::rfc3339(config.ledger_start),
        if months == 1 { "" } else { "s" },
    ))
}

/// `buildfund sync hydra`: one progress line per stored page on stderr, the summary on stdout.
pub async fn sync_hydra(
    config: &mut Config,
    clock: &buildfund_jobs::clock::Clock,
) -> anyhow::Result<()> {
    if config.hydra.is_none() {
        anyhow::bail!(
            "the configuration ({}) has no [hydra] table, so there is no Hydra database to pull from; add [hydra] with database_url_env",
            config.source
        );
    }
    let conn = open_database(config).await?;
    let started = std::time::Instant::now();
    let secrets = Secrets::from_env(config);
    let report = hydra_pull::pull(&conn, config, &secrets, clock.now(), |p| {
        eprintln!(
            "page {}: {} steps ({} inserted, {} updated, {} unchanged{}), up to {}",
            p.page,
            p.rows,
            p.inserted,
            p.updated,
            p.unchanged,
            if p.skipped > 0 {
                format!(", {} skipped", p.skipped)
            } else {
                String::new()
            },
            show_time(p.last_stop)
        );
    })
    .await?;
    println!(
        "hydra: {} steps in {} page(s) in {:.1} s: {} inserted, {} updated, {} unchanged, {} skipped; read from {}, cursor {} -> {}",
        report.rows,
        report.pages,
        started.elapsed().as_secs_f64(),
        report.inserted,
        report.updated,
        report.unchanged,
        report.skipped,
        show_time(report.read_from),
        report.cursor_before.map_or("none".to_string(), show_time),
        report.cursor_after.map_or("none".to_string(), show_time),
    );
    for why in &report.skips {
        println!("  skipped {why}");
    }
    for (machine, n) in &report.unpriced_machines {
        println!("  unpriced machine {machine:?}: {n} steps (not in the configuration)");
    }
    Ok(())
}

/// `buildfund sync opencollective`: one progress line per stored page on stderr, the summary
/// on stdout.
pub async fn sync_opencollective(
    config: &mut Config,
    clock: &buildfund_jobs::clock::Clock,
) -> anyhow::Result<()> {
    if config.opencollective.is_none() {
        anyhow::bail!(
            "the configuration ({}) has no [opencollective] table, so there is no collective to sync; add [opencollective] with collective",
            config.source
        );
    }
    // The sync's warnings (retries, the check's drift) go to stderr like the server's log.
    telemetry::init();
    let conn = open_database(config).await?;
    let started = std::time::Instant::now();
    let mut options = opencollective::SyncOptions::default();
    // Tests and small deployments may ask for smaller pages.
    if let Some(n) = std::env::var("BUILDFUND_OPENCOLLECTIVE_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.page_size = n;
    }
    if let Some(ms) = std::env::var("BUILDFUND_OPENCOLLECTIVE_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.backoff = std::time::Duration::from_millis(ms);
    }
    let records = std::sync::atomic::AtomicU64::new(0);
    let secrets = Secrets::from_env(config);
    let now = clock.now();
    let report = opencollective::sync(&conn, config, &secrets, options, now, |p| {
        let done = records.fetch_add(p.records, std::sync::atomic::Ordering::Relaxed) + p.records;
        eprintln!(
            "page {}: {} transactions ({} of {} read; {} inserted, {} updated, {} unchanged donations; {} inserted, {} updated, {} unchanged expenses; {} neither)",
            p.page,
            p.records,
            done,
            p.total.map_or("?".to_string(), |t| t.to_string()),
            p.stored.inserted,
            p.stored.updated,
            p.stored.unchanged,
            p.expenses.inserted,
            p.expenses.updated,
            p.expenses.unchanged,
            p.skipped
        );
    })
    .await?;
    println!(
        "opencollective {}: {} transactions in {} page(s) in {:.1} s: {} inserted, {} updated, {} unchanged donations; {} inserted, {} updated, {} unchanged expenses; {} neither; {} active recurring contributions; {} retries; read from {}, cursor {} -> {}",
        report.collective,
        report.records,
        report.pages,
        started.elapsed().as_secs_f64(),
        report.stored.inserted,
        report.stored.updated,
        report.stored.unchanged,
        report.expenses.inserted,
        report.expenses.updated,
        report.expenses.unchanged,
        report.skipped,
        report.recurring,
        report.retries,
        report.read_from,
        report.cursor_before.as_deref().unwrap_or("none"),
        report.cursor_after.as_deref().unwrap_or("none"),
    );
    if let Some(c) = &report.check {
        println!("{}", check_line(c, &config.currency));
    }
    Ok(())
}

/// The OpenCollective check in one line, as `sync opencollective` and `books status` show it.
pub fn check_line(
    c: &buildfund_jobs::books::opencollective_check::Check,
    currency: &str,
) -> String {
    use buildfund_jobs::books::opencollective_check::CheckStatus;
    let through = c.through.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let at = c
        .checked_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match c.status {
        CheckStatus::Ok => format!(
            "opencollective check: ok (checked {at}, through {through}): OpenCollective's balance moved by {} {currency}, as the ledger",
            buildfund_jobs::money::format_cents(c.ledger_cents.unwrap_or(0))
        ),
        CheckStatus::Drift => format!(
            "opencollective check: DRIFT of {} {currency} (checked {at}, through {through}): OpenCollective's balance moved by {} {currency}, the ledger by {} {currency}; a transaction is missed or miscounted",
            buildfund_jobs::money::format_cents(c.drift_cents.unwrap_or(0)),
            buildfund_jobs::money::format_cents(
                c.balance_oc_cents.unwrap_or(0) - c.balance_oc_start_cents.unwrap_or(0)
            ),
            buildfund_jobs::money::format_cents(c.ledger_cents.unwrap_or(0))
        ),
        CheckStatus::Skipped => format!(
            "opencollective check: skipped (checked {at}, through {through}): {}",
            c.reason.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// Unix seconds as RFC 3339 UTC.
fn show_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub async fn ingest_file(
    conn: &sea_orm::DatabaseConnection,
    config: Arc<Config>,
    file: &str,
    format: Option<&str>,
    clock: &buildfund_jobs::clock::Clock,
) -> anyhow::Result<ExitCode> {
    let format = match format {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(_) => Format::Ndjson,
        None => Format::from_path(file),
    };
    let reader: Box<dyn std::io::Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?)
    };
    let tty = std::io::stderr().is_terminal();
    let name = file.to_string();
    let progress = Box::new(move |p: ingest::Progress| {
        let file = &name;
        if tty {
            eprint!(
                "\r{file}: {} records read, {} problems…",
                p.records, p.errors
            );
        } else {
            eprintln!("{file}: {} records read, {} problems", p.records, p.errors);
        }
    });
    let started = std::time::Instant::now();
    let result = ingest::ingest(conn, config, format, reader, clock.now(), Some(progress)).await;
    if tty {
        eprint!("\r\x1b[K");
    }
    match result {
        Ok(r) => {
            println!(
                "{file}: {} records in {:.1} s: {} inserted, {} updated, {} unchanged",
                r.records,
                started.elapsed().as_secs_f64(),
                r.inserted,
                r.updated,
                r.unchanged
            );
            for (machine, n) in &r.unpriced_machines {
                println!("  unpriced machine {machine:?}: {n} records (not in the configuration)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(IngestError::Invalid { errors, count }) => {
            eprintln!("{file}: {count} problem(s); nothing was stored:");
            for e in &errors {
                let field = if e.field.is_empty() {
                    String::new()
                } else {
                    format!(" {}", e.field)
                };
                eprintln!("  line {}{field}: {}", e.line, e.message);
            }
            if (errors.len() as u64) < count {
                eprintln!("  … and {} more", count - errors.len() as u64);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::anyhow!("{file}: {e}")),
    }
}

/// `buildfund gate`: one question to a running server; never needs the configuration.
pub async fn gate(
    jobset: &str,
    json: bool,
    server: &str,
    timeout: f64,
    on_error: Option<&str>,
) -> ExitCode {
    let undecided = |why: String| {
        eprintln!("buildfund gate: {jobset}: could not decide: {why}");
        match on_error {
            Some("allow") => {
                eprintln!("buildfund gate: allowing (--on-error allow)");
                ExitCode::SUCCESS
            }
            Some("deny") => {
                eprintln!("buildfund gate: refusing (--on-error deny)");
                ExitCode::from(1)
            }
            _ => ExitCode::from(2),
        }
    };
    let Some((project, name)) = jobset
        .split_once(':')
        .filter(|(p, j)| !p.is_empty() && !j.is_empty())
    else {
        eprintln!("buildfund gate: {jobset:?} is not PROJECT:JOBSET");
        return ExitCode::from(2);
    };
    if !(timeout > 0.0 && timeout.is_finite()) {
        eprintln!("buildfund gate: --timeout {timeout} is not a positive number of seconds");
        return ExitCode::from(2);
    }
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs_f64(timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => return undecided(format!("cannot make an HTTP client: {e}")),
    };
    let seg = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let url = format!(
        "{}/api/v1/gate/{}/{}",
        server.trim_end_matches('/'),
        seg(project),
        seg(name)
    );
    let res = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return undecided(format!("{url}: {e}")),
    };
    let status = res.status();
    let body: serde_json::Value = match res.json().await {
        Ok(b) => b,
        Err(e) => return undecided(format!("{url} answered {status} without JSON: {e}")),
    };
    let Some(allow) = body
        .get("allow")
        .and_then(|v| v.as_bool())
        .filter(|_| status.is_success())
    else {
        let msg = body
            .get("error")
            .and_then(|v| v.as_str())
            .unwrap_or("no decision");
        return undecided(format!("{url} answered {status}: {msg}"));
    };
    if json {
        println!("{body}");
    } else {
        let reason = body.get("reason").and_then(|v| v.as_str()).unwrap_or("");
        let state = body.get("state").and_then(|v| v.as_str()).unwrap_or("?");
        println!(
            "{} ({state}): {reason}",
            if allow { "allowed" } else { "refused" }
        );
    }
    if body.get("stale").and_then(|v| v.as_bool()) == Some(true) {
        eprintln!(
            "buildfund gate: the answer is stale (the server's database is unreachable; figures as of {})",
            body.get("as_of").and_then(|v| v.as_str()).unwrap_or("?")
        );
    }
    if allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    telemetry::init();
    // Every secret the configuration names, read once; serve does not start without those it
    // needs (rather than, say, sending unsigned webhooks).
    let secrets = Arc::new(Secrets::from_env(&config));
    let missing = secrets.unavailable_for_serve(&config);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        anyhow::bail!("{}: cannot serve: {}", config.source, list.join("; "));
    }
    for w in config.warnings() {
        tracing::warn!(source = %config.source, "{w}");
    }
    let conn = open_database(&mut config).await?;
    let config = Arc::new(config);
    let app = Application::build(
        config.clone(),
        secrets.clone(),
        conn.clone(),
        ServeOptions::default(),
    )
    .context("cannot start the HTTP server")?;
    let scheduler = app.scheduler();
    tracing::info!(
        listen = %config.server.listen,
        port = app.port(),
        database = %describe_database(&config.database.url),
        config = %config.source,
        books_begin = %buildfund_jobs::calendar::rfc3339(config.ledger_start),
        instance = %scheduler.instance(),
        "buildfund serving"
    );
    let (stop_jobs, stopped) = tokio::sync::watch::channel(false);
    let jobs = tokio::spawn(scheduler.run(stopped, JOB_GRACE));
    // Stores the books of closed months (docs/src/http-api.md, "Stored books").
    tokio::spawn(buildfund_jobs::books::store::keep(
        conn.clone(),
        config.clone(),
        buildfund_jobs::clock::Clock::system(),
        app.flights(),
    ));
    // The server stops on SIGTERM or Ctrl-C, after requests in flight finish.
    let served = app.run_until_stopped().await;
    let _ = stop_jobs.send(true);
    let _ = jobs.await;
    served.context("the HTTP server failed")?;
    tracing::info!("buildfund stopped");
    Ok(())
}

/// `buildfund db copy --to URL`: progress per table on stderr, what was compared on stdout.
pub async fn db_copy(config: &Config, to: &str) -> anyhow::Result<()> {
    use buildfund_jobs::db::copy::{self, Progress};
    use buildfund_jobs::money::group_thousands;
    // The source is read as it is: no migration, no catalog write (the copy refuses a source
    // that is not at this binary's schema).
    let conn = db::connect(config).await?;
    let source = describe_database(&config.database.url);
    eprintln!("copying {source}");
    let report = copy::copy(&conn, &config.database.url, to, |p| match p {
        Progress::Planned { tables, rows } => eprintln!(
            "snapshot taken: {tables} tables, {} rows",
            group_thousands(&rows.to_string())
        ),
        Progress::Rows { table, done, total } => eprintln!(
            "  {table}: {} of {} rows",
            group_thousands(&done.to_string()),
            group_thousands(&total.to_string())
        ),
        Progress::Table {
            table,
            rows,
            elapsed,
        } => eprintln!(
            "  {table}: {} rows in {:.1} s",
            group_thousands(&rows.to_string()),
            elapsed.as_secs_f64()
        ),
        Progress::Comparing => {
            eprintln!("reading every table back from the target and comparing it")
        }
    })
    .await?;
    let seconds = report.elapsed.as_secs_f64().max(0.001);
    println!(
        "copied {} rows of {} tables into {} in {:.1} s ({} rows/s)",
        group_thousands(&report.rows.to_string()),
        report.tables.len(),
        report.target,
        seconds,
        group_thousands(&((report.rows as f64 / seconds) as u64).to_string())
    );
    println!(
        "compared on both sides: every table's row count and the SHA-256 of all its rows in \
         primary-key order; all equal"
    );
    for t in &report.tables {
        println!(
            "  {:<28} {:>12}  {}",
            t.table,
            group_thousands(&t.rows.to_string()),
            &t.digest[..16]
        );
    }
    Ok(())
}
