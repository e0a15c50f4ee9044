//! Reads over long ledgers with stored month books, against the same reads over a ledger that
//! began this month (the "first month" of the issue), several ledgers in one run:
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench books
//!
//! `BENCH_LEDGERS` lists the ledgers, each `BACKEND:MONTHSxSTEPS` (steps a month), separated
//! by commas; the default is the three of the targets:
//! `postgres:24x100000,sqlite:24x20000,postgres:12x1000000`. PostgreSQL ledgers need
//! `BENCH_DATABASE_URL` (a scratch database is created on that server and dropped after);
//! SQLite ledgers use a file in a temporary directory. `BENCH_DATABASE_URL=sqlite` alone runs
//! one SQLite ledger of `BENCH_MONTHS` (24) x `BENCH_STEPS` (20,000).
//!
//! Each ledger has that many months up to now, the last being the current one, and 100
//! donations a month. `BENCH_OPEN=dense` (the default, the harder case) puts the open month's
//! full count of steps in the days since it began; `BENCH_OPEN=rate` gives it steps at the
//! monthly rate, only as many as the days so far hold. The long ledger and the one-month ledger
//! are two configurations over the same database (the second has `ledger_start` at this month's
//! start). Per ledger it times, through the functions the endpoints call: `funds_month` of the
//! open month, of the last closed month and of the first, `gate::evaluate` now and at instants
//! in the past (inside a month, at the last second of a month, just after a month began), the
//! open month's recompute (`month_costs`), and once the open month without the store; then the
//! rebuild of the stored books (days and months). Then a real `buildfund serve` (the release
//! binary) on the long ledger's database: the CPU it uses over a real idle minute (utime +
//! stime of `/proc/PID/stat` after a warm-up; `BENCH_IDLE_SECONDS` changes the minute), and
//! anonymous HTTP reads of it (`GET /api/v1/funds?month=`, `GET /api/v1/gate/...?at=`)
//! against `GET /healthz` in the same run. A summary table of every ledger against the
//! targets ends the output.
use buildfund_jobs::books::costs::month_costs;
use buildfund_jobs::books::donations::{self, Contributor, DonationRecord};
use buildfund_jobs::books::expenses::{self, ExpenseKind, ExpenseRecord};
use buildfund_jobs::books::funds::funds_month;
use buildfund_jobs::books::store;
use buildfund_jobs::calendar::{rfc3339, Month};
use buildfund_jobs::money::group_thousands;
use buildfund_jobs::{db, gate, Config};
use buildfund_tests::{database, Backend};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::fmt::Write;
use std::time::{Duration, Instant};

const MACHINES: usize = 20;
const RUNS: usize = 7;

fn config_text(ledger_start: Month) -> String {
    let mut s = format!(
        "ledger_start = \"{ledger_start}-01\"\n\
         [[funds]]\nslug = \"general\"\ndefault = true\nopening_balance = \"1000.00\"\n\
         [[funds]]\nslug = \"cuda\"\naccounts = [\"nix-cuda\"]\n"
    );
    for (slug, glob) in [("cuda", "nixpkgs:cuda*"), ("staging", "nixpkgs:staging*")] {
        let _ = write!(
            s,
            "[[pools]]\nslug = \"{slug}\"\nfund = \"cuda\"\njobsets = [\"{glob}\"]\nmonthly_budget = \"900.00\"\n"
        );
    }
    for m in 0..MACHINES {
        let price = match m % 3 {
            0 => "monthly = \"120.00\"",
            1 => "hourly = \"0.35\"",
            _ => "metered = \"2.40\"",
        };
        let _ = write!(
            s,
            "[[machines]]\nname = \"build{m}\"\nslots = {}\n{price}\ninvoice_tags = [\"build{m}\"]\n",
            1 + m % 8
        );
    }
    s
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time<F, Fut, T>(mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        f().await?;
        samples.push(t.elapsed());
    }
    Ok(median(samples))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User + system CPU seconds of process `pid` (`self` for this one) so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn fill(
    conn: &DatabaseConnection,
    first: Month,
    months: usize,
    steps: i64,
    now: DateTime<Utc>,
    dense: bool,
) -> anyhow::Result<()> {
    let mut month = first;
    let mut to = 0;
    for _ in 0..months {
        let start = month.span().start;
        let full = month.span().end - start;
        let len = (month.span().end.min(now.timestamp()) - start).max(1);
        let from = to + 1;
        // The open month: its whole count in the days so far (dense), or its share of them.
        to += if dense || len == full {
            steps
        } else {
            (steps * len / full).max(1)
        };
        // Jobsets: 5 prefixes x 40; steps 1 minute to 2 hours, some crossing into the next
        // month.
        let select = format!(
            "SELECT 'bench', g / 8, g % 8, 'nixpkgs',
                    (CASE g % 5 WHEN 0 THEN 'cuda-' WHEN 1 THEN 'staging-' WHEN 2 THEN 'trunk-'
                                WHEN 3 THEN 'tests-' ELSE 'docs-' END) || ((g / 5) % 40),
                    'job' || (g % 997), 'x86_64-linux', 'build' || ((g / 3) % {MACHINES}),
                    {start} + (g * 7919) % {len}, {start} + (g * 7919) % {len} + 60 + (g * 31) % 7200,
                    0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
        );
        let sql = if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
            format!(
                "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                          start_ts, stop_ts, status, ingested_at, updated_at)
                 {select} FROM generate_series({from}::bigint, {to}::bigint) AS g"
            )
        } else {
            format!(
                "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                          start_ts, stop_ts, status, ingested_at, updated_at)
                 WITH RECURSIVE s(g) AS (SELECT {from} UNION ALL SELECT g + 1 FROM s WHERE g < {to})
                 {select} FROM s"
            )
        };
        conn.execute_unprepared(&sql).await?;
        let mut records = Vec::new();
        for i in 0..100i64 {
            let at = DateTime::from_timestamp(start + (i * 7717) % len, 0).expect("instant");
            let gross = 500 + i * 37;
            records.push(DonationRecord {
                source: "bench".into(),
                external_id: format!("{month}-{i}"),
                kind: "contribution".into(),
                occurred_at: at,
                account_slug: if i % 3 == 0 { "nix-cuda" } else { "nixos" }.into(),
                tier_slug: None,
                contributor: Contributor::anonymous(),
                gross_cents: gross,
                fees_cents: gross / 20,
                net_cents: gross - gross / 20,
                original_amount: format!("{}.{:02}", gross / 100, gross % 100),
                original_currency: "EUR".into(),
                refund_of: None,
                description: None,
            });
        }
        donations::upsert(conn, &records, now).await?;
        // Expenses: an invoice of every machine (paying for the month before) and 20 other
        // expenses a month, some reversed.
        let mut out = Vec::new();
        for i in 0..(MACHINES as i64 + 20) {
            let paid = DateTime::from_timestamp(start + (i * 6007) % len, 0).expect("instant");
            let amount = 1000 + i * 53;
            let tags = match i < MACHINES as i64 {
                true => vec![format!("BUILD{i}")],
                false => vec!["domain".to_string()],
            };
            out.push(ExpenseRecord {
                source: "bench".into(),
                external_id: format!("{month}-x{i}"),
                kind: if i % 7 == 6 {
                    ExpenseKind::Reversal
                } else {
                    ExpenseKind::Expense
                },
                paid_at: paid,
                account_slug: if i % 3 == 0 { "nix-cuda" } else { "nixos" }.into(),
                payee: None,
                tags,
                description: None,
                incurred_at: DateTime::from_timestamp(start, 0).expect("instant"),
                amount_cents: if i % 7 == 6 { -amount } else { amount },
                fees_cents: 0,
                original_amount: format!("{amount}"),
                original_currency: "EUR".into(),
                expense_ref: None,
                reversal_of: None,
            });
        }
        expenses::upsert(conn, &out, now).await?;
        month = month.next();
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Ledger {
    backend: Backend,
    months: usize,
    steps: i64,
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        };
        let steps = group_thousands(&self.steps.to_string());
        write!(f, "{name} {} x {steps}", self.months)
    }
}

fn parse_ledgers(text: &str) -> anyhow::Result<Vec<Ledger>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let (backend, size) = item.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("BENCH_LEDGERS: {item:?} is not BACKEND:MONTHSxSTEPS")
            })?;
            let backend = match backend {
                "sqlite" => Backend::Sqlite,
                "postgres" => Backend::Postgres,
                other => anyhow::bail!("BENCH_LEDGERS: {other:?} is not sqlite or postgres"),
            };
            let (months, steps) = size
                .split_once('x')
                .ok_or_else(|| anyhow::anyhow!("BENCH_LEDGERS: {size:?} is not MONTHSxSTEPS"))?;
            Ok(Ledger {
                backend,
                months: months.parse::<usize>()?.max(2),
                steps: steps.parse::<i64>()?.max(1),
            })
        })
        .collect()
}

/// What one ledger measured, for the summary.
struct Measured {
    ledger: Ledger,
    open_long: Duration,
    open_short: Duration,
    gate_max: Duration,
    open_recompute: Duration,
    http_funds: Duration,
    http_gate_max: Duration,
    http_healthz: Duration,
    idle_cpu_per_minute: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::var("BENCH_DATABASE_URL").ok();
    let env = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let ledgers = match (std::env::var("BENCH_LEDGERS"), admin_url.as_deref()) {
        (Ok(list), _) => parse_ledgers(&list)?,
        (Err(_), Some("sqlite")) => vec![Ledger {
            backend: Backend::Sqlite,
            months: env("BENCH_MONTHS", 24).max(2) as usize,
            steps: env("BENCH_STEPS", 20_000).max(1),
        }],
        (Err(_), _) => parse_ledgers("postgres:24x100000,sqlite:24x20000,postgres:12x1000000")?,
    };
    let admin_url = admin_url.filter(|u| u != "sqlite");
    if admin_url.is_none() && ledgers.iter().any(|l| l.backend == Backend::Postgres) {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres for the PostgreSQL ledgers (or BENCH_LEDGERS=sqlite:24x20000)");
        return Ok(());
    }
    let dense = std::env::var("BENCH_OPEN").map_or(true, |v| v != "rate");
    let idle_seconds = env("BENCH_IDLE_SECONDS", 60).max(1) as u64;
    println!(
        "books benchmark, {} ledger(s), {} cores, open month {}, started {}",
        ledgers.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if dense {
            "dense (its whole month of steps so far)"
        } else {
            "at the monthly rate"
        },
        rfc3339(Utc::now())
    );
    let mut measured = Vec::new();
    for ledger in ledgers {
        measured.push(run(ledger, admin_url.as_deref(), dense, idle_seconds).await?);
    }

    println!("\n## Summary (release build; targets: funds of the open month within 1.5x of the one-month ledger's and under 100 ms on PostgreSQL, 200 ms on SQLite; the gate at any instant under the same; on 12 x 1,000,000 the open month's recompute under 400 ms; idle serve under 1 CPU-s a minute)\n");
    println!("| ledger | funds, open month | 1-month ledger | ratio | gate, slowest instant | open month recompute | HTTP funds | HTTP gate, slowest | HTTP /healthz | idle serve, CPU-s a minute |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in &measured {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.2}x | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} |",
            m.ledger,
            ms(m.open_long),
            ms(m.open_short),
            m.open_long.as_secs_f64() / m.open_short.as_secs_f64(),
            ms(m.gate_max),
            ms(m.open_recompute),
            ms(m.http_funds),
            ms(m.http_gate_max),
            ms(m.http_healthz),
            m.idle_cpu_per_minute
        );
    }
    Ok(())
}

async fn run(
    ledger: Ledger,
    admin_url: Option<&str>,
    dense: bool,
    idle_seconds: u64,
) -> anyhow::Result<Measured> {
    let Ledger { months, steps, .. } = ledger;
    let now = Utc::now();
    let current = Month::of(now);
    let mut first = current;
    for _ in 1..months {
        first = first.prev();
    }
    let dir = tempfile::tempdir()?;
    let sqlite = ledger.backend == Backend::Sqlite;
    let url = match admin_url {
        Some(admin) if !sqlite => database::create_database(admin, "bf_bench_books").await?,
        _ => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.sqlite").display()
        ),
    };
    let mut long = Config::parse(&config_text(first), "bench")?;
    long.database.url = url.clone();
    let mut short = Config::parse(&config_text(current), "bench")?;
    short.database.url = url.clone();
    let conn = db::connect(&long).await?;
    db::prepare(&conn, &long, buildfund_jobs::clock::Clock::system().now()).await?;

    let started = Instant::now();
    fill(&conn, first, months, steps, now, dense).await?;
    // The steps went in with plain SQL, around the ingest: the longest step's bound is set
    // from them, as `buildfund books rebuild` does.
    buildfund_jobs::books::steps::recount_longest_step(&conn).await?;
    conn.execute_unprepared("ANALYZE").await?;
    println!(
        "\n## {ledger} ({first} to {current}, now {}), filled in {:.1} s",
        rfc3339(now),
        started.elapsed().as_secs_f64()
    );

    // How each database runs the query of an edge's steps: today's, and the one of a window
    // ending in the past (the plan must not read the steps after it).
    let backend = conn.get_database_backend();
    for (what, edge) in [
        (
            "today's edge",
            buildfund_jobs::calendar::Span::new(
                buildfund_jobs::books::days::day_of(now.timestamp()),
                now.timestamp(),
            ),
        ),
        (
            "an edge a year ago",
            buildfund_jobs::calendar::Span::new(
                now.timestamp() - 365 * 86_400,
                buildfund_jobs::books::days::day_of(now.timestamp() - 364 * 86_400),
            ),
        ),
    ] {
        let statement = backend.build(&buildfund_jobs::books::steps::busy_query(edge, None));
        let explain = if sqlite {
            "EXPLAIN QUERY PLAN "
        } else {
            "EXPLAIN "
        };
        let plan = sea_orm::Statement::from_sql_and_values(
            backend,
            format!("{explain}{}", statement.sql),
            statement.values.map(|v| v.0).unwrap_or_default(),
        );
        println!("plan of the steps of {what}:");
        for row in conn.query_all_raw(plan).await? {
            println!(
                "    {}",
                row.try_get_by_index::<String>(if sqlite { 3 } else { 0 })?
            );
        }
    }

    let (conn, long, short) = (&conn, &long, &short);
    let t = Instant::now();
    let (old, _) = funds_month(conn, long, current, now).await?;
    let without_store = t.elapsed();
    let t = Instant::now();
    let mut first_month_at = Duration::ZERO;
    let done = store::ensure(conn, long, now, |_, i, _| {
        if i == 1 {
            first_month_at = t.elapsed();
        }
    })
    .await?;
    let rebuild = t.elapsed();
    println!(
        "rebuild of the stored books: {} days and {} months in {:.1} s (the days and the first \
         month in {:.1} s, the other months in {:.1} s)",
        done.days,
        done.stored,
        rebuild.as_secs_f64(),
        first_month_at.as_secs_f64(),
        (rebuild - first_month_at).as_secs_f64()
    );
    let p = done.phases;
    println!(
        "its phases: days {:.1} s; months: lines {:.1} s, jobs {:.1} s, donations and last 30 days \
         {:.1} s, writing the jobs {:.1} s, the rest of the writes {:.1} s",
        p.days_ms as f64 / 1e3,
        p.lines_ms as f64 / 1e3,
        p.jobs_ms as f64 / 1e3,
        p.other_facts_ms as f64 / 1e3,
        p.write_jobs_ms as f64 / 1e3,
        p.write_other_ms as f64 / 1e3
    );
    conn.execute_unprepared("ANALYZE").await?;
    let (new, _) = funds_month(conn, long, current, now).await?;
    assert_eq!(old, new, "the store changes no figure");

    let open_long =
        time(|| async move { Ok(funds_month(conn, long, current, now).await?) }).await?;
    let open_short =
        time(|| async move { Ok(funds_month(conn, short, current, now).await?) }).await?;
    let closed = current.prev();
    let closed_long =
        time(|| async move { Ok(funds_month(conn, long, closed, now).await?) }).await?;
    let first_closed =
        time(|| async move { Ok(funds_month(conn, long, first, now).await?) }).await?;
    let gate_long = time(|| async move { Ok(gate::evaluate(conn, long, now).await?) }).await?;
    let gate_short = time(|| async move { Ok(gate::evaluate(conn, short, now).await?) }).await?;
    let open_recompute = time(|| async move {
        let period = buildfund_jobs::calendar::Period::new(current, now, long.ledger_start);
        Ok(month_costs(conn, long, &period).await?)
    })
    .await?;
    let middle = {
        let mut m = first;
        for _ in 0..months / 2 {
            m = m.next();
        }
        m
    };
    let mut instants: Vec<DateTime<Utc>> = vec![
        first.next().next().start() + chrono::Duration::hours(12 * 24 + 7),
        middle.start() + chrono::Duration::hours(15 * 24),
        closed.next().start() - chrono::Duration::hours(12),
        closed.next().start() - chrono::Duration::seconds(1),
        current.start() + chrono::Duration::hours(1),
    ];
    // A short ledger's "third month" may be ahead of now, which the HTTP API refuses.
    instants.retain(|at| *at < now);
    let mut gate_max = gate_long;
    let mut gate_rows = Vec::new();
    for at in &instants {
        let at = *at;
        let d = time(|| async move { Ok(gate::evaluate(conn, long, at).await?) }).await?;
        gate_max = gate_max.max(d);
        gate_rows.push((at, d));
    }

    println!("| read (median of {RUNS}) | {months}-month ledger | 1-month ledger | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| funds, open month {current} | {:.1} ms | {:.1} ms | {:.2}x |",
        ms(open_long),
        ms(open_short),
        open_long.as_secs_f64() / open_short.as_secs_f64()
    );
    println!(
        "| gate now | {:.1} ms | {:.1} ms | {:.2}x |",
        ms(gate_long),
        ms(gate_short),
        gate_long.as_secs_f64() / gate_short.as_secs_f64()
    );
    println!(
        "| funds, closed month {closed} | {:.1} ms | | |",
        ms(closed_long)
    );
    println!(
        "| funds, first month {first} | {:.1} ms | | |",
        ms(first_closed)
    );
    for (at, d) in &gate_rows {
        println!("| gate at {} | {:.1} ms | | |", rfc3339(*at), ms(*d));
    }
    println!(
        "| open month recompute (`month_costs`) | {:.1} ms | | |",
        ms(open_recompute)
    );
    println!(
        "| funds, open month, without the store (once) | {:.1} ms | | |",
        ms(without_store)
    );

    // A real `serve` on this database: the release binary, its keeper, gate refresh and
    // scheduler running. First a real idle minute, then anonymous HTTP reads.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_path = dir.path().join("serve.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}[database]\nurl = \"{url}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n",
            config_text(first)
        ),
    )?;
    let mut child = std::process::Command::new(buildfund_tests::buildfund_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id().to_string();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let res = client.get(format!("{base}{path}")).send().await?;
            anyhow::ensure!(res.status().is_success(), "{path}: {}", res.status());
            Ok(res.bytes().await?)
        }
    };
    let up = Instant::now();
    while get("/healthz".into()).await.is_err() {
        anyhow::ensure!(
            up.elapsed() < Duration::from_secs(120),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Warm-up: migrations, the keeper's first pass and the first gate refresh.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let cpu = cpu_seconds(&pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let used = cpu_seconds(&pid) - cpu;
    let wall = t.elapsed();
    let idle_cpu_per_minute = used * 60.0 / wall.as_secs_f64();
    println!(
        "idle serve (pid {pid}): {used:.2} CPU-s over {:.0} s of wall time = {idle_cpu_per_minute:.2} CPU-s a minute",
        wall.as_secs_f64(),
    );
    let http_healthz = time(|| get("/healthz".into())).await?;
    let http_funds = time(|| get(format!("/api/v1/funds?month={current}"))).await?;
    let http_funds_first = time(|| get(format!("/api/v1/funds?month={first}"))).await?;
    println!("| HTTP, anonymous (median of {RUNS}) | time |");
    println!("| --- | ---: |");
    println!("| `GET /healthz` | {:.2} ms |", ms(http_healthz));
    println!(
        "| `GET /api/v1/funds?month={current}` | {:.1} ms |",
        ms(http_funds)
    );
    println!(
        "| `GET /api/v1/funds?month={first}` | {:.1} ms |",
        ms(http_funds_first)
    );
    // A closed month's reconciliation (target: under 50 ms, from stored figures).
    let closed = current.prev();
    let http_reconciliation =
        time(|| get(format!("/api/v1/reconciliation?month={closed}"))).await?;
    println!(
        "| `GET /api/v1/reconciliation?month={closed}` | {:.1} ms |",
        ms(http_reconciliation)
    );
    let mut http_gate_max = Duration::ZERO;
    for at in instants.iter().copied().chain([now]) {
        let path = format!("/api/v1/gate/nixpkgs/cuda-1?at={}", rfc3339(at));
        let d = time(|| get(path.clone())).await?;
        http_gate_max = http_gate_max.max(d);
        println!("| `GET {path}` | {:.1} ms |", ms(d));
    }
    let alive = child.try_wait()?.is_none();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(&pid)
        .status();
    child.wait()?;
    anyhow::ensure!(alive, "serve exited early");

    conn.clone().close().await?;
    if let (Some(admin), false) = (admin_url, sqlite) {
        database::drop_database(admin, &url).await?;
    }
    Ok(Measured {
        ledger,
        open_long,
        open_short,
        gate_max,
        open_recompute,
        http_funds,
        http_gate_max,
        http_healthz,
        idle_cpu_per_minute,
    })
}
