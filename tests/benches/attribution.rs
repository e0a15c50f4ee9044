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
    config.database.url = url.clone();
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;

    let month = Month::parse("2026-10")?;
    let span = month.span();
    let started = Instant::now();
    // Steps spread over the month: 50 machines, 200 jobsets (a fifth of them in GPU pools),
    // 1 minute to ~2 hours each, some crossing into November.
    insert_steps(&conn, "bench", steps, span.start, span.len(), (7919, 31)).await?;
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

    stale_reads(&conn, &config, &url, month, steps).await?;

    conn.close().await?;
    database.drop().await?;
    Ok(())
}

/// The reads of a month the store has not caught up with: the books stored (the
/// catch-up timed), then `steps / 10` late steps spread over the month (marked as an ingest
/// marks them: the month and its days are stale), then through a server in this process
/// (`GET /api/v1/costs` and `/api/v1/funds` of the month, anonymous): one read alone and
/// `READERS` at once, each after a new mark (so each computes), next to the single grouped SQL
/// query over the same steps and to the same reads made by the functions without the server's
/// shared computations (one computation per reader, as before).
async fn stale_reads(
    conn: &sea_orm::DatabaseConnection,
    config: &Config,
    url: &str,
    month: Month,
    steps: i64,
) -> anyhow::Result<()> {
    use buildfund_jobs::books::{
        funds, stale,
        steps::{busy_query_within, recount_longest_step},
        store,
    };
    use buildfund_jobs::clock::Clock;
    use buildfund_tests::{Backend, TestApp};
    const READERS: usize = 16;
    let now = Clock::system().now();
    let t = Instant::now();
    let done = store::ensure(conn, config, now, |_, _, _| {}).await?;
    println!(
        "\nstore catch-up after the load ({steps} steps): {:.1} s ({} days, {} months)",
        t.elapsed().as_secs_f64(),
        done.days,
        done.stored
    );
    let span = month.span();
    let late = steps / 10;
    insert_steps(
        conn,
        "late",
        late,
        span.start,
        span.len() - 7300,
        (4813, 37),
    )
    .await?;
    let mark = || stale::mark_spans(conn, [span], now);
    mark().await?;
    println!("{late} late steps spread over {month}: the month and its days are stale");

    let app = TestApp::start_on(Backend::Postgres, &config_text(), url, Clock::system()).await;
    let computations = || async {
        app.get_metrics()
            .await
            .into_iter()
            .find(|s| s.name == "buildfund_books_computations_total")
            .map_or(f64::NAN, |s| s.value)
    };
    let read = |path: String| {
        let app = &app;
        async move {
            let res = app.get(&path).await;
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            let figures = if path.contains("/funds") {
                body["funds"].clone()
            } else {
                body["lines"].clone()
            };
            (status, figures)
        }
    };
    let window = Span::new(span.start, span.end);
    let mut query = Vec::new();
    let mut rows = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut unshared = (Vec::new(), Vec::new());
    let mut counts = (0.0, 0.0);
    let mut refused = 0;
    for _ in 0..5 {
        // The bound written as a number, as the reads write it (`steps::query_overlapping`).
        let longest = recount_longest_step(conn).await?;
        let t = Instant::now();
        conn.query_all(&busy_query_within(window, None, longest))
            .await?;
        query.push(t.elapsed());
        for (i, path) in ["costs", "funds"].into_iter().enumerate() {
            let path = format!("/api/v1/{path}?month={month}");
            mark().await?;
            let t = Instant::now();
            let (status, alone) = read(path.clone()).await;
            let one = t.elapsed();
            anyhow::ensure!(status == 200, "{path}: {status}");
            mark().await?;
            let before = computations().await;
            let t = Instant::now();
            let answers =
                futures_util::future::join_all((0..READERS).map(|_| read(path.clone()))).await;
            let all = t.elapsed();
            let made = computations().await - before;
            refused += answers.iter().filter(|(s, _)| *s != 200).count();
            anyhow::ensure!(
                answers.iter().all(|(s, f)| *s != 200 || *f == alone),
                "{path}: a reader got other figures"
            );
            if i == 0 {
                rows.0.push(one);
                rows.1.push(all);
                counts.0 = made;
            } else {
                rows.2.push(one);
                rows.3.push(all);
                counts.1 = made;
            }
        }
        // The same reads by the functions, outside a server (no sharing), all at once.
        mark().await?;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..READERS {
            let (conn, config) = (conn.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                funds::funds_month(&conn, &config, month, Clock::system().now())
                    .await
                    .map(|_| ())
            }));
        }
        let mut failed = 0;
        for task in tasks {
            if !matches!(task.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
        unshared.0.push(t.elapsed());
        unshared.1.push(failed);
    }
    let q = stats(query).1;
    let row = |name: &str, d: Duration, note: String| {
        println!(
            "| {name} | {:.1} ms | {:.2}x | {note} |",
            ms(d),
            d.as_secs_f64() / q.as_secs_f64()
        );
    };
    println!("\n| {month} stale ({steps} + {late} late steps), median of 5 | time | / query | |");
    println!("| --- | ---: | ---: | --- |");
    row(
        "the grouped SQL query over the same steps",
        q,
        String::new(),
    );
    let (c1, c16, f1, f16) = (
        stats(rows.0).1,
        stats(rows.1).1,
        stats(rows.2).1,
        stats(rows.3).1,
    );
    row("`GET /api/v1/costs`, one read alone", c1, String::new());
    row(
        &format!("`GET /api/v1/costs`, {READERS} at once (all answered)"),
        c16,
        format!(
            "{:.2}x one read; {} computation(s)",
            c16.as_secs_f64() / c1.as_secs_f64(),
            counts.0
        ),
    );
    row("`GET /api/v1/funds`, one read alone", f1, String::new());
    row(
        &format!("`GET /api/v1/funds`, {READERS} at once (all answered)"),
        f16,
        format!(
            "{:.2}x one read; {} computation(s)",
            f16.as_secs_f64() / f1.as_secs_f64(),
            counts.1
        ),
    );
    row(
        &format!("before: `funds_month` by {READERS} readers at once, unshared"),
        stats(unshared.0).1,
        format!(
            "{} of {} failed",
            unshared.1.iter().sum::<usize>(),
            READERS * unshared.1.len()
        ),
    );
    println!("answers other than 200 over every run: {refused}");
    open_month_reads(conn, config, &app, steps).await
}

/// The open month to date (the system clock's month, up to now) with stale days: `steps`
/// steps spread over its days so far, the days stored (the catch-up timed), then every day
/// marked stale as an ingest marks them; through the same server, `GET /api/v1/costs` and
/// `/api/v1/funds` of the open month: one read alone and `READERS` at once, each after a new
/// mark, next to the grouped SQL query over the same window and to the same reads made by
/// the functions without the server's shared computations (one computation per reader: how
/// every read of the open month computed before it was shared).
async fn open_month_reads(
    conn: &sea_orm::DatabaseConnection,
    config: &Config,
    app: &buildfund_tests::TestApp,
    steps: i64,
) -> anyhow::Result<()> {
    use buildfund_jobs::books::{
        funds, stale,
        steps::{busy_query_within, recount_longest_step},
        store,
    };
    use buildfund_jobs::clock::Clock;
    const READERS: usize = 16;
    let now = Clock::system().now();
    let month = Month::of(now);
    let start = month.span().start;
    // Whole steps before now, ending at least an hour before it.
    let len = (now.timestamp() - start - 3 * 3600).max(3600);
    insert_steps(conn, "open", steps, start, len, (7919, 31)).await?;
    let t = Instant::now();
    let done = store::ensure(conn, config, now, |_, _, _| {}).await?;
    println!(
        "\n{steps} steps over the open month {month} to date: store catch-up {:.1} s ({} days)",
        t.elapsed().as_secs_f64(),
        done.days
    );
    // Every day of the month so far stale, as after an ingest of late steps into it.
    let mark = || stale::mark_spans(conn, [Span::new(start, now.timestamp())], now);
    let computations = || async {
        app.get_metrics()
            .await
            .into_iter()
            .find(|s| s.name == "buildfund_books_computations_total")
            .map_or(f64::NAN, |s| s.value)
    };
    let read = |path: String| async move {
        let res = app.get(&path).await;
        res.status().as_u16()
    };
    let (mut query, mut alone, mut all) = (Vec::new(), [vec![], vec![]], [vec![], vec![]]);
    let mut counts = [Vec::new(), Vec::new()];
    let (mut unshared, mut unshared_failed) = (Vec::new(), 0);
    let mut refused = 0;
    for _ in 0..5 {
        let window = Span::new(start, Clock::system().now().timestamp());
        // The bound written as a number, as the reads write it (`steps::query_overlapping`).
        let longest = recount_longest_step(conn).await?;
        let t = Instant::now();
        conn.query_all(&busy_query_within(window, None, longest))
            .await?;
        query.push(t.elapsed());
        for (i, path) in ["costs", "funds"].into_iter().enumerate() {
            let path = format!("/api/v1/{path}?month={month}");
            mark().await?;
            let t = Instant::now();
            let status = read(path.clone()).await;
            alone[i].push(t.elapsed());
            anyhow::ensure!(status == 200, "{path}: {status}");
            mark().await?;
            let before = computations().await;
            let t = Instant::now();
            let answers =
                futures_util::future::join_all((0..READERS).map(|_| read(path.clone()))).await;
            all[i].push(t.elapsed());
            counts[i].push(computations().await - before);
            refused += answers.iter().filter(|s| **s != 200).count();
        }
        // Before: the same reads of the funds by the functions, each computing on its own.
        mark().await?;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..READERS {
            let (conn, config) = (conn.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                funds::funds_month(&conn, &config, month, Clock::system().now())
                    .await
                    .map(|_| ())
            }));
        }
        for task in tasks {
            if !matches!(task.await, Ok(Ok(()))) {
                unshared_failed += 1;
            }
        }
        unshared.push(t.elapsed());
    }
    let q = stats(query).1;
    let row = |name: &str, d: Duration, note: String| {
        println!(
            "| {name} | {:.1} ms | {:.2}x | {note} |",
            ms(d),
            d.as_secs_f64() / q.as_secs_f64()
        );
    };
    println!("\n| {month} to date, days stale ({steps} steps), median of 5 | time | / query | |");
    println!("| --- | ---: | ---: | --- |");
    row(
        "the grouped SQL query over the same window",
        q,
        String::new(),
    );
    for (i, name) in ["costs", "funds"].into_iter().enumerate() {
        let one = stats(alone[i].clone()).1;
        let many = stats(all[i].clone()).1;
        row(
            &format!("`GET /api/v1/{name}`, one read alone"),
            one,
            String::new(),
        );
        row(
            &format!("`GET /api/v1/{name}`, {READERS} at once"),
            many,
            format!(
                "{:.2}x one read; computations per run {:?}",
                many.as_secs_f64() / one.as_secs_f64(),
                counts[i]
            ),
        );
    }
    row(
        &format!("before: `funds_month` by {READERS} readers at once, unshared"),
        stats(unshared).1,
        format!("{unshared_failed} of {} failed", READERS * 5),
    );
    println!("open month: answers other than 200 over every run: {refused}");
    Ok(())
}

/// Inserts `count` steps of `source` (build `g / 8`, step `g % 8`) over the machines and
/// jobsets (a fifth of them in GPU pools), the `g`-th starting at `start + (g * a) % len` and
/// lasting `60 + (g * b) % 7200` seconds for `(a, b)` = `shape`; then `ANALYZE`.
async fn insert_steps(
    conn: &sea_orm::DatabaseConnection,
    source: &str,
    count: i64,
    start: i64,
    len: i64,
    (a, b): (i64, i64),
) -> anyhow::Result<()> {
    conn.execute_unprepared(&format!(
        "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                  start_ts, stop_ts, status, ingested_at, updated_at)
         SELECT '{source}', g / 8, g % 8, 'nixpkgs',
                (ARRAY['cuda-','jetson-','gpu-tests-','trunk-','staging-'])[1 + (g % 5)] || (g % {JOBSETS} / 5),
                'job' || (g % 997), 'x86_64-linux', 'build' || lpad((g / 3 % {MACHINES})::text, 2, '0'),
                {start} + (g * {a}) % {len}, {start} + (g * {a}) % {len} + 60 + (g * {b}) % 7200,
                0, now(), now()
         FROM generate_series(1::bigint, {count}::bigint) AS g",
    ))
    .await?;
    conn.execute_unprepared("ANALYZE build_steps").await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
