//! `buildfund db copy` of a grown farm from its SQLite file to PostgreSQL, against PostgreSQL's
//! own `COPY` loading the same rows into an empty migrated database, in one run:
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench db_copy
//!
//! The farm: `BENCH_MONTHS` (24) months of `BENCH_STEPS` (100,000) build steps, 10,000
//! donations, 10,000 subscribers and the catalog, written into an SQLite file with plain SQL.
//! Timed: the release binary's `buildfund db copy --to` into a scratch PostgreSQL database
//! (the whole command: connect, migrate, snapshot, write, read back and compare, commit), then
//! the baseline: every table of that copy written out with `COPY … TO` (not timed) and loaded
//! with `COPY … FROM` by `psql` into a second scratch database that the same migrations made,
//! in one transaction (timed). Both scratch databases are dropped at the end.
use buildfund_jobs::{db, Config};
use buildfund_tests::database::BenchDatabase;
use sea_orm::ConnectionTrait;
use std::process::Command;
use std::time::Instant;

const CONFIG: &str = "ledger_start = \"2025-01-01\"\n\
    [[funds]]\nslug = \"general\"\ndefault = true\n\
    [[machines]]\nname = \"build0\"\nslots = 4\nmonthly = \"120.00\"\n\
    [[machines]]\nname = \"build1\"\nhourly = \"0.35\"\n\
    [[machines]]\nname = \"build2\"\nmetered = \"2.40\"\n";

fn thousands(n: u64) -> String {
    buildfund_jobs::money::group_thousands(&n.to_string())
}

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (Some(target), Some(baseline)) = (
        BenchDatabase::create().await?,
        BenchDatabase::create().await?,
    ) else {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres");
        return Ok(());
    };
    let months = env("BENCH_MONTHS", 24).max(1);
    let steps = env("BENCH_STEPS", 100_000).max(1);
    let dir = tempfile::tempdir()?;
    let source_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("farm.sqlite").display()
    );
    let mut config = Config::parse(CONFIG, "bench")?;
    config.database.url = source_url.clone();
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;

    let t = Instant::now();
    let total = months * steps;
    let start = 1_735_689_600i64; // 2025-01-01
    let month = 30 * 86_400i64;
    conn.execute_unprepared(&format!(
        "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                  start_ts, stop_ts, status, ingested_at, updated_at)
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {total})
         SELECT 'bench', g / 8, g % 8, 'nixpkgs', 'jobset-' || (g % 200), 'job' || (g % 997),
                'x86_64-linux', 'build' || (g % 3),
                {start} + (g / {steps}) * {month} + (g * 7919) % {month},
                {start} + (g / {steps}) * {month} + (g * 7919) % {month} + 60 + (g * 31) % 7200,
                0, '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00' FROM s"
    ))
    .await?;
    conn.execute_unprepared(&format!(
        "INSERT INTO donations (source, external_id, kind, occurred_at, account_slug, tier_slug,
            contributor_name, contributor_slug, contributor_url, anonymous, gross_cents,
            fees_cents, net_cents, original_amount, original_currency, refund_of, description,
            created_at, updated_at)
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 10000)
         SELECT 'bench', 'd' || g, 'contribution',
                strftime('%Y-%m-%dT%H:%M:%S+00:00', {start} + g * 6000, 'unixepoch'),
                'nixos', NULL, 'Backer ' || (g % 500), 'backer-' || (g % 500), NULL, g % 50 = 0,
                500 + g, 25, 475 + g, '5.00', 'EUR', NULL, 'Monthly contribution',
                '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00' FROM s"
    ))
    .await?;
    conn.execute_unprepared(
        "INSERT INTO subscribers (email, status, created_at, confirmed_at, unsubscribed_at, updated_at)
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 10000)
         SELECT 'sponsor' || g || '@example.org', 'confirmed', '2026-11-01T00:00:00+00:00',
                '2026-11-01T00:05:00+00:00', NULL, '2026-11-01T00:05:00+00:00' FROM s",
    )
    .await?;
    conn.close().await?;
    println!(
        "db copy benchmark, {} cores; the farm: {months} months x {} steps, 10,000 donations, \
         10,000 subscribers, written in {:.1} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        thousands(steps as u64),
        t.elapsed().as_secs_f64()
    );

    // `buildfund db copy`, the release binary, as a user runs it.
    let bin = buildfund_tests::buildfund_bin();
    let t = Instant::now();
    let out = Command::new(&bin)
        .args(["db", "copy", "--to", &target.url])
        .env("DATABASE_URL", &source_url)
        .env_remove("BUILDFUND_CONFIG")
        .current_dir(dir.path())
        .output()?;
    let copy_seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "db copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let rows: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);

    // The baseline: the same rows by COPY into an empty database the same migrations made.
    let out = Command::new(&bin)
        .arg("migrate")
        .env("DATABASE_URL", &baseline.url)
        .env_remove("BUILDFUND_CONFIG")
        .current_dir(dir.path())
        .output()?;
    anyhow::ensure!(out.status.success(), "migrate failed");
    let target_db = sea_orm::Database::connect(target.url.as_str()).await?;
    let tables: Vec<String> = buildfund_jobs::db::copy::digests(&target_db)
        .await?
        .into_iter()
        .filter(|t| t.rows > 0)
        .map(|t| t.table)
        .collect();
    target_db.close().await?;
    let mut load = String::from("BEGIN;\n");
    for table in ["book_bounds", "funds", "pools", "machines", "jobsets"] {
        load.push_str(&format!("DELETE FROM {table};\n"));
    }
    for table in &tables {
        let file = dir.path().join(format!("{table}.copy"));
        let status = Command::new("psql")
            .args([
                &target.url,
                "-q",
                "-c",
                &format!("\\copy {table} TO '{}'", file.display()),
            ])
            .status()?;
        anyhow::ensure!(status.success(), "COPY {table} TO failed");
        load.push_str(&format!("\\copy {table} FROM '{}'\n", file.display()));
    }
    load.push_str("COMMIT;\n");
    let script = dir.path().join("load.sql");
    std::fs::write(&script, load)?;
    let t = Instant::now();
    let status = Command::new("psql")
        .args([&baseline.url, "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script)
        .status()?;
    let copy_sql_seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "the COPY load failed");

    println!("\n| what | rows | seconds | rows/s |\n| --- | ---: | ---: | ---: |");
    println!(
        "| `buildfund db copy`, SQLite -> PostgreSQL (snapshot, write, read back, compare) | {} | {copy_seconds:.1} | {} |",
        thousands(rows),
        thousands((rows as f64 / copy_seconds) as u64)
    );
    println!(
        "| PostgreSQL `COPY FROM` of the same rows into an empty migrated database | {} | {copy_sql_seconds:.1} | {} |",
        thousands(rows),
        thousands((rows as f64 / copy_sql_seconds) as u64)
    );
    println!(
        "\nratio: db copy takes {:.2}x the time of COPY (target: at most 3x, and at least 50,000 rows/s)",
        copy_seconds / copy_sql_seconds
    );
    target.drop().await?;
    baseline.drop().await?;
    Ok(())
}
