//! Reads over a long ledger with stored month books, against the same reads over a ledger
//! that began this month (the "first month" of the issue): `funds_month` of the open month,
//! `funds_month` of a closed month, the gate now and at instants in the past, and the open
//! month's recompute. PostgreSQL or SQLite:
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench books
//!     BENCH_DATABASE_URL=sqlite cargo bench -p buildfund-tests --bench books
//!
//! `BENCH_MONTHS` (default 24) months of `BENCH_STEPS` (default 100,000) steps each, the last
//! month being the current one up to now; 100 donations a month. The long ledger and the
//! one-month ledger are two configurations over the same database (the second has
//! `ledger_start` at this month's start), measured in the same run. It also times the stored
//! books' rebuild (days and months), one read of the open month without the store (every month
//! from the data, as before the store), and the CPU a real `buildfund serve` (release binary)
//! on the long ledger's database uses over a real idle minute (utime + stime of
//! `/proc/PID/stat`, after a warm-up; `BENCH_IDLE_SECONDS` changes the minute).
use buildfund_jobs::books::costs::month_costs;
use buildfund_jobs::books::donations::{self, Contributor, DonationRecord};
use buildfund_jobs::books::funds::funds_month;
use buildfund_jobs::books::store;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::{db, gate, Config};
use buildfund_tests::database;
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
            "[[machines]]\nname = \"build{m}\"\nslots = {}\n{price}\n",
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
) -> anyhow::Result<()> {
    let mut month = first;
    for k in 0..months as i64 {
        let start = month.span().start;
        let len = (month.span().end.min(now.timestamp()) - start).max(1);
        let from = k * steps + 1;
        let to = (k + 1) * steps;
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
        donations::upsert(conn, &records).await?;
        month = month.next();
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Ok(admin_url) = std::env::var("BENCH_DATABASE_URL") else {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (or =sqlite) to run this benchmark");
        return Ok(());
    };
    let env = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let months = env("BENCH_MONTHS", 24).max(2) as usize;
    let steps = env("BENCH_STEPS", 100_000);
    let now = Utc::now();
    let current = Month::of(now);
    let mut first = current;
    for _ in 1..months {
        first = first.prev();
    }
    let dir = tempfile::tempdir()?;
    let sqlite = admin_url == "sqlite";
    let url = if sqlite {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.sqlite").display()
        )
    } else {
        database::create_database(&admin_url, "bf_bench_books").await?
    };
    let mut long = Config::parse(&config_text(first), "bench")?;
    long.database.url = url.clone();
    let mut short = Config::parse(&config_text(current), "bench")?;
    short.database.url = url.clone();
    let conn = db::connect(&long).await?;
    db::prepare(&conn, &long).await?;

    let started = Instant::now();
    fill(&conn, first, months, steps, now).await?;
    // The steps went in with plain SQL, around the ingest: the longest step's bound is set
    // from them, as `buildfund books rebuild` does.
    buildfund_jobs::books::steps::recount_longest_step(&conn).await?;
    conn.execute_unprepared("ANALYZE").await?;
    println!(
        "{} on {}: {months} months x {steps} steps ({first} to {current}), filled in {:.1} s",
        if sqlite { "SQLite" } else { "PostgreSQL" },
        std::env::consts::ARCH,
        started.elapsed().as_secs_f64()
    );

    // How each database runs the query of an edge day's steps.
    let edge = buildfund_jobs::books::steps::busy_query(
        buildfund_jobs::calendar::Span::new(now.timestamp() - 6 * 3600, now.timestamp()),
        None,
    );
    let (explain, sql, column) = if sqlite {
        (
            "EXPLAIN QUERY PLAN ",
            edge.to_string(sea_orm::sea_query::SqliteQueryBuilder),
            3,
        )
    } else {
        (
            "EXPLAIN ",
            edge.to_string(sea_orm::sea_query::PostgresQueryBuilder),
            0,
        )
    };
    let backend = conn.get_database_backend();
    println!("plan of the steps of an edge (the last 6 hours):");
    for row in conn
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            format!("{explain}{sql}"),
        ))
        .await?
    {
        println!("    {}", row.try_get_by_index::<String>(column)?);
    }

    let (conn, long, short) = (&conn, &long, &short);
    let t = Instant::now();
    let (old, _) = funds_month(conn, long, current, now).await?;
    let without_store = t.elapsed();
    let t = Instant::now();
    let done = store::ensure(conn, long, now, |_, _, _| {}).await?;
    let rebuild = t.elapsed();
    println!(
        "rebuild of the stored books: {} days and {} months in {:.1} s",
        done.days,
        done.stored,
        rebuild.as_secs_f64()
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
    let mid = first.next().next().start() + chrono::Duration::hours(12 * 24 + 7);
    let gate_past = time(|| async move { Ok(gate::evaluate(conn, long, mid).await?) }).await?;
    let end = closed.next().start() - chrono::Duration::hours(12);
    let gate_end = time(|| async move { Ok(gate::evaluate(conn, long, end).await?) }).await?;
    let open_recompute =
        time(|| async move { Ok(month_costs(conn, long, current, now).await?) }).await?;

    println!("| read (median of {RUNS}) | {months}-month ledger | 1-month ledger | ratio |");
    println!("| --- | --- | --- | --- |");
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
    println!("| gate at {mid} | {:.1} ms | | |", ms(gate_past));
    println!("| gate at {end} | {:.1} ms | | |", ms(gate_end));
    println!(
        "| open month recompute (month_costs) | {:.1} ms | | |",
        ms(open_recompute)
    );
    println!(
        "| funds, open month, without the store (once) | {:.1} ms | | |",
        ms(without_store)
    );

    // A real idle minute of a real `serve` on this database: the release binary, its keeper,
    // gate refresh and scheduler running, no request.
    let idle_seconds = env("BENCH_IDLE_SECONDS", 60) as u64;
    let config_path = dir.path().join("serve.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}[database]\nurl = \"{url}\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
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
    // Warm-up: start, migrations, the keeper's first pass and the first gate refresh.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let cpu = cpu_seconds(&pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let used = cpu_seconds(&pid) - cpu;
    let wall = t.elapsed();
    let alive = child.try_wait()?.is_none();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(&pid)
        .status();
    child.wait()?;
    println!(
        "idle serve (pid {pid}, {}): {used:.2} CPU-s over {:.0} s of wall time = {:.2} CPU-s a minute",
        if alive { "running" } else { "EXITED EARLY" },
        wall.as_secs_f64(),
        used * 60.0 / wall.as_secs_f64()
    );

    conn.clone().close().await?;
    if !sqlite {
        database::drop_database(&admin_url, &url).await?;
    }
    Ok(())
}
