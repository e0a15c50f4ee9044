//! Attribution of one month with 1,000,000 build steps over 50 machines and 200 jobsets on
//! PostgreSQL, timed next to the single grouped SQL query it needs (the floor).
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench attribution
//!
//! It creates a scratch database on that server (`buildfund_tests::database`), fills it with generated steps in October
//! 2026, runs each measurement several times and prints the best and the median, then drops
//! the database. `BENCH_STEPS` changes the number of steps.
use buildfund_jobs::books::costs::{busy_seconds, month_costs};
use buildfund_jobs::calendar::Month;
use buildfund_jobs::calendar::Span;
use buildfund_jobs::{db, Config};
use buildfund_tests::database::BenchDatabase;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::fmt::Write;
use std::time::{Duration, Instant};

const MACHINES: usize = 50;
const JOBSETS: usize = 200;
const RUNS: usize = 7;

fn config_text() -> String {
    let mut s = String::from(
        "ledger_start = \"2026-01-01\"\n\
         [[funds]]\nslug = \"general\"\ndefault = true\n\
         [[funds]]\nslug = \"cuda\"\n",
    );
    for (slug, glob) in [
        ("cuda", "nixpkgs:cuda*"),
        ("jetson", "nixpkgs:jetson*"),
        ("gpu-tests", "nixpkgs:gpu*"),
    ] {
        let _ = write!(
            s,
            "[[pools]]\nslug = \"{slug}\"\nfund = \"cuda\"\njobsets = [\"{glob}\"]\n"
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
            "[[machines]]\nname = \"build{m:02}\"\nslots = {}\n{price}\n",
            1 + m % 8
        );
    }
    s
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[0], samples[samples.len() / 2])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Some(database) = BenchDatabase::create().await? else {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run this benchmark");
        return Ok(());
    };
    let steps: i64 = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let url = database.url.clone();
    let mut config = Config::parse(&config_text(), "bench")?;
    config.database.url = url;
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;

    let month = Month::parse("2026-10")?;
    let span = month.span();
    let started = Instant::now();
    // Steps spread over the month: 50 machines, 200 jobsets (a fifth of them in GPU pools),
    // 1 minute to ~2 hours each, some crossing into November.
    conn.execute_unprepared(&format!(
        "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                  start_ts, stop_ts, status, ingested_at, updated_at)
         SELECT 'bench', g / 8, g % 8, 'nixpkgs',
                (ARRAY['cuda-','jetson-','gpu-tests-','trunk-','staging-'])[1 + (g % 5)] || (g % {jobsets} / 5),
                'job' || (g % 997), 'x86_64-linux', 'build' || lpad((g / 3 % {machines})::text, 2, '0'),
                {start} + (g * 7919) % {len}, {start} + (g * 7919) % {len} + 60 + (g * 31) % 7200,
                0, now(), now()
         FROM generate_series(1::bigint, {steps}::bigint) AS g",
        jobsets = JOBSETS,
        machines = MACHINES,
        start = span.start,
        len = span.len(),
    ))
    .await?;
    conn.execute_unprepared("ANALYZE build_steps").await?;
    println!(
        "generated {steps} steps over {MACHINES} machines and {JOBSETS} jobsets in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let at: DateTime<Utc> = "2026-11-15T00:00:00Z".parse()?;
    let window = Span::new(span.start, span.end);
    let mut query_times = Vec::new();
    let mut attribution_times = Vec::new();
    let mut groups = 0;
    let mut lines = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        groups = busy_seconds(&conn, window, None).await?.len();
        query_times.push(t.elapsed());
        let t = Instant::now();
        let period = buildfund_jobs::calendar::Period::new(month, at, config.ledger_start);
        let costs = month_costs(&conn, &config, &period).await?;
        attribution_times.push(t.elapsed());
        lines = costs.lines.len();
    }
    let (q_best, q_median) = stats(query_times);
    let (a_best, a_median) = stats(attribution_times);
    println!(
        "grouped query (floor):  best {:>7.1} ms, median {:>7.1} ms  ({groups} groups)",
        ms(q_best),
        ms(q_median)
    );
    println!(
        "month attribution:      best {:>7.1} ms, median {:>7.1} ms  ({lines} lines)",
        ms(a_best),
        ms(a_median)
    );
    println!(
        "ratio attribution/query (medians): {:.2}x",
        a_median.as_secs_f64() / q_median.as_secs_f64()
    );

    conn.close().await?;
    database.drop().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
