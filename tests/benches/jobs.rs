//! Cost per job of one month: `month_job_list` (one grouped query per machine and window part,
//! the lines and their split per job) side by side, in the same run, with the single grouped
//! SQL query that sums the month's busy seconds and steps per (machine, jobset, job), and the
//! peak memory of this process during each. PostgreSQL:
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench jobs
//!
//! Then the filtered reads (`jobset=`, `pool=`) with the filter in the queries: first with no
//! day stored (their lines from the month's steps), then with the days stored as the keeper
//! keeps them (their lines from two stored days and the edges). Last, the month to date as the
//! funding page reads it (at noon of its last day), from the steps and from the open month's
//! stored day of jobs.
//!
//! `BENCH_STEPS` (default 1,000,000) steps in last month over 50 machines (monthly, hourly and
//! metered), 200 jobsets and `BENCH_JOBS` (default 50,000) distinct jobs, a job belonging to
//! one jobset; steps of 1 minute to 2 hours, some crossing into this month.
use buildfund_entity::build_steps;
use buildfund_jobs::books::job_costs::{month_job_list, JobsFilter};
use buildfund_jobs::books::jobs::UNNAMED_JOB;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::{db, Config};
use buildfund_tests::database::BenchDatabase;
use chrono::Utc;
use sea_orm::sea_query::{Alias, CaseStatement, Expr, Func, Query};
use sea_orm::{ConnectionTrait, ExprTrait};
use std::fmt::Write;
use std::time::{Duration, Instant};

const MACHINES: usize = 50;
const JOBSETS: i64 = 200;
const RUNS: usize = 5;

fn config_text(ledger_start: Month) -> String {
    let mut s = format!(
        "ledger_start = \"{ledger_start}-01\"\n\
         [[funds]]\nslug = \"general\"\ndefault = true\n\
         [[funds]]\nslug = \"cuda\"\n\
         [[pools]]\nslug = \"cuda\"\nfund = \"cuda\"\njobsets = [\"nixpkgs:cuda*\"]\n"
    );
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's peak resident memory since the last [`reset_peak`], in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak resident memory to the current one (Linux `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Some(bench) = BenchDatabase::create().await? else {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run this benchmark");
        return Ok(());
    };
    let env = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let steps = env("BENCH_STEPS", 1_000_000);
    let jobs = env("BENCH_JOBS", 50_000);
    let now = Utc::now();
    let month = Month::of(now).prev();
    let mut config = Config::parse(&config_text(month), "bench")?;
    config.database.url = bench.url.clone();
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;

    let span = month.span();
    let (start, len) = (span.start, span.len());
    let started = Instant::now();
    // Job k belongs to jobset k % 200 (a fifth of them cuda-…); its name is a package and a
    // system. A step runs 1 minute to 2 hours; the last ones cross into this month.
    conn.execute_unprepared(&format!(
        "INSERT INTO build_steps (source, build, step, project, jobset, job, system, machine,
                                  start_ts, stop_ts, status, ingested_at, updated_at)
         SELECT 'bench', g / 4, g % 4, 'nixpkgs',
                (CASE (g % {jobs}) % 5 WHEN 0 THEN 'cuda-' WHEN 1 THEN 'staging-' WHEN 2 THEN 'trunk-'
                            WHEN 3 THEN 'tests-' ELSE 'docs-' END) || (((g % {jobs}) % {JOBSETS}) / 5),
                'pkg' || (g % {jobs}) || '.x86_64-linux', 'x86_64-linux', 'build' || ((g / 7) % {MACHINES}),
                {start} + (g * 7919) % {len}, {start} + (g * 7919) % {len} + 60 + (g * 31) % 7200,
                0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
         FROM generate_series(1::bigint, {steps}::bigint) AS g"
    ))
    .await?;
    // The ingest raises the longest step's bound (`book_bounds`) as it writes; this fill
    // writes around it, so it is counted here (else the reads' bounded queries miss the
    // steps that start before their windows, which a real ledger's bound covers).
    buildfund_jobs::books::steps::recount_longest_step(&conn).await?;
    conn.execute_unprepared("ANALYZE").await?;
    println!(
        "PostgreSQL on {}: {steps} steps in {month}, {MACHINES} machines, {JOBSETS} jobsets, \
         {jobs} jobs, filled in {:.1} s",
        std::env::consts::ARCH,
        started.elapsed().as_secs_f64()
    );

    // The single grouped query of the month: busy seconds and steps per (machine, project,
    // jobset, job), every row fetched.
    use build_steps::Column as C;
    let clipped_stop = CaseStatement::new()
        .case(Expr::col(C::StopTs).lt(span.end), Expr::col(C::StopTs))
        .finally(Expr::val(span.end));
    let clipped_start = CaseStatement::new()
        .case(Expr::col(C::StartTs).gt(span.start), Expr::col(C::StartTs))
        .finally(Expr::val(span.start));
    let single = Query::select()
        .columns([C::Machine, C::Project, C::Jobset, C::Job])
        .expr_as(
            Func::cast_as(
                Func::sum(Expr::expr(clipped_stop).sub(Expr::expr(clipped_start))),
                Alias::new("BIGINT"),
            ),
            Alias::new("busy"),
        )
        .expr_as(
            Func::cast_as(Func::count(Expr::col(C::Id)), Alias::new("BIGINT")),
            Alias::new("steps"),
        )
        .from(build_steps::Entity)
        .and_where(Expr::col(C::StartTs).lt(span.end))
        .and_where(Expr::col(C::StopTs).gt(span.start))
        .group_by_columns([C::Machine, C::Project, C::Jobset, C::Job])
        .to_owned();

    let at = month.next().start();
    let filter = JobsFilter::default();
    let by_jobset = JobsFilter {
        jobset: Some("nixpkgs:cuda-0".into()),
        ..Default::default()
    };
    let by_pool = JobsFilter {
        pool: Some("cuda".into()),
        ..Default::default()
    };
    let (mut s_times, mut p_times) = (Vec::new(), Vec::new());
    let (mut s_listed, mut p_listed) = (0, 0);
    let (mut q_times, mut j_times) = (Vec::new(), Vec::new());
    let (mut q_peak, mut j_peak) = (0f64, 0f64);
    let (mut rows, mut listed, mut total) = (0, 0, 0i64);
    for _ in 0..RUNS {
        reset_peak();
        let t = Instant::now();
        let r = conn.query_all(&single).await?;
        q_times.push(t.elapsed());
        rows = r.len();
        drop(r);
        q_peak = q_peak.max(peak_mib());

        reset_peak();
        let t = Instant::now();
        let period = buildfund_jobs::calendar::Period::new(month, at, config.ledger_start);
        let terms = period
            .window
            .map(|w| buildfund_jobs::books::terms::WindowTerms::prepare(&config, w));
        let list = month_job_list(&conn, &config, &period, terms.as_ref(), &filter).await?;
        j_times.push(t.elapsed());
        j_peak = j_peak.max(peak_mib());
        listed = list.len();
        total = list.iter().map(|j| j.cost_cents).sum();
        assert!(list
            .iter()
            .all(|j| j.job != UNNAMED_JOB && j.cost_cents >= 0));
        drop(list);

        // Filtered reads: the filter in the queries (one jobset of 200; one pool, a fifth).
        let t = Instant::now();
        s_listed = month_job_list(&conn, &config, &period, terms.as_ref(), &by_jobset)
            .await?
            .len();
        s_times.push(t.elapsed());
        let t = Instant::now();
        p_listed = month_job_list(&conn, &config, &period, terms.as_ref(), &by_pool)
            .await?
            .len();
        p_times.push(t.elapsed());
    }
    let (q, j) = (median(q_times), median(j_times));
    println!("| {month}, median of {RUNS} | time | peak memory of the process |");
    println!("| --- | --- | --- |");
    println!(
        "| the single grouped query ({rows} rows fetched) | {:.0} ms | {:.0} MiB |",
        ms(q),
        q_peak
    );
    println!(
        "| month_job_list ({listed} jobs, {} cents) | {:.0} ms | {:.0} MiB |",
        total,
        ms(j),
        j_peak
    );
    println!("| ratio | {:.2}x | |", j.as_secs_f64() / q.as_secs_f64());
    let (js, jp) = (median(s_times), median(p_times));
    println!(
        "| month_job_list, `jobset=nixpkgs:cuda-0` ({s_listed} jobs) | {:.0} ms ({:.2}x the unfiltered) | |",
        ms(js),
        js.as_secs_f64() / j.as_secs_f64()
    );
    println!(
        "| month_job_list, `pool=cuda` ({p_listed} jobs) | {:.0} ms ({:.2}x the unfiltered) | |",
        ms(jp),
        jp.as_secs_f64() / j.as_secs_f64()
    );

    // The same filtered reads with the month's days stored, as the keeper keeps them: the
    // store is brought up to date (days and months), then the month's stored row is removed
    // (its jobs with it) so that the reads compute the month, their lines from the stored days.
    let started = Instant::now();
    let ensured = buildfund_jobs::books::store::ensure(&conn, &config, now, |_, _, _| {}).await?;
    let filled = started.elapsed();
    conn.execute_unprepared(&format!("DELETE FROM book_months WHERE month = '{month}'"))
        .await?;
    let (mut sd_times, mut pd_times) = (Vec::new(), Vec::new());
    let period = buildfund_jobs::calendar::Period::new(month, at, config.ledger_start);
    let terms = period
        .window
        .map(|w| buildfund_jobs::books::terms::WindowTerms::prepare(&config, w));
    for _ in 0..RUNS {
        let t = Instant::now();
        let n = month_job_list(&conn, &config, &period, terms.as_ref(), &by_jobset)
            .await?
            .len();
        sd_times.push(t.elapsed());
        assert_eq!(n, s_listed);
        let t = Instant::now();
        let n = month_job_list(&conn, &config, &period, terms.as_ref(), &by_pool)
            .await?
            .len();
        pd_times.push(t.elapsed());
        assert_eq!(n, p_listed);
    }
    let (jsd, jpd) = (median(sd_times), median(pd_times));
    println!(
        "(days stored: {} days, {} months in {:.1} s; the month's row removed)",
        ensured.days,
        ensured.stored,
        filled.as_secs_f64()
    );
    println!(
        "| month_job_list, `jobset=nixpkgs:cuda-0`, days stored ({s_listed} jobs) | {:.0} ms ({:.2}x the unfiltered) | |",
        ms(jsd),
        jsd.as_secs_f64() / j.as_secs_f64()
    );
    println!(
        "| month_job_list, `pool=cuda`, days stored ({p_listed} jobs) | {:.0} ms ({:.2}x the unfiltered) | |",
        ms(jpd),
        jpd.as_secs_f64() / j.as_secs_f64()
    );

    // The month to date as the funding page reads it on a refresh, at noon of its last day:
    // from the steps, then from the open month's stored day of jobs (the month to the end of
    // the day before) and the steps after it. The same jobs either way.
    let noon = month.next().start() - chrono::Duration::hours(12);
    let to_date = buildfund_jobs::calendar::Period::new(month, noon, config.ledger_start);
    let terms = to_date
        .window
        .map(|w| buildfund_jobs::books::terms::WindowTerms::prepare(&config, w));
    conn.execute_unprepared("DELETE FROM book_day_jobs").await?;
    let (mut o_times, mut d_times) = (Vec::new(), Vec::new());
    let mut o_list = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        o_list = month_job_list(&conn, &config, &to_date, terms.as_ref(), &filter).await?;
        o_times.push(t.elapsed());
    }
    let t = Instant::now();
    buildfund_jobs::books::job_days::store_job_day(&conn, noon).await?;
    let stored_in = t.elapsed();
    for _ in 0..RUNS {
        let t = Instant::now();
        let list = month_job_list(&conn, &config, &to_date, terms.as_ref(), &filter).await?;
        d_times.push(t.elapsed());
        assert_eq!(list, o_list, "the stored day gives the same jobs");
    }
    let (o, d) = (median(o_times), median(d_times));
    println!(
        "| month to date at {noon}, from the steps ({} jobs) | {:.0} ms | |",
        o_list.len(),
        ms(o)
    );
    println!(
        "| the same from the stored day of jobs (stored in {:.0} ms) | {:.0} ms ({:.2}x) | |",
        ms(stored_in),
        ms(d),
        d.as_secs_f64() / o.as_secs_f64()
    );

    conn.close().await?;
    bench.drop().await?;
    Ok(())
}
