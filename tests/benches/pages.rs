//! The funding page with 10,000 sponsors this month and 12 months of data: the page model's
//! computation (the database part), its rendering to HTML (what the 10 ms target is about),
//! and whole requests served from the page cache, beside `/healthz` and `/api/v1/funds` on
//! the same run.
//!
//!     cargo bench -p buildfund-tests --bench pages                     # SQLite (a temp file)
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench pages                 # PostgreSQL (a scratch database)
//!
//! `BENCH_SPONSORS` changes the number of this month's sponsors (default 10,000).
use askama::Template;
use buildfund_api::routes::pages::{report_page, IndexPage, RECENT_DONATIONS, TOP_SPONSORS};
use buildfund_api::startup::{Application, ServeOptions};
use buildfund_entity::donations;
use buildfund_jobs::books::sponsors::month_donations;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::gate::Gate;
use buildfund_jobs::report::view::funding_view;
use buildfund_jobs::report::{funding_page, month_report};
use buildfund_jobs::{db, Config};
use buildfund_tests::database::BenchDatabase;
use chrono::{DateTime, Duration as Days, Utc};
use sea_orm::{EntityTrait, Set};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MACHINES: usize = 10;
const JOBSETS: usize = 40;
const STEPS_PER_MONTH: i64 = 2_000;

fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (ms(samples[0]), ms(samples[samples.len() / 2]), ms(p99))
}

fn report(name: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (best, median, p99) = stats(samples);
    println!(
        "{name:<44} best {best:>8.2} ms  median {median:>8.2} ms  p99 {p99:>8.2} ms  ({n} runs)"
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sponsors: i64 = std::env::var("BENCH_SPONSORS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let now = Utc::now();
    let this = Month::of(now);
    let mut first = this;
    for _ in 0..11 {
        first = first.prev();
    }
    let mut text = format!(
        "ledger_start = \"{first}-01\"\n\
         [[funds]]\nslug = \"general\"\nname = \"General fund\"\ndefault = true\nopening_balance = \"5000.00\"\n\
         [[funds]]\nslug = \"cuda\"\nname = \"CUDA builds\"\nmonthly_goal = \"1500.00\"\naccounts = [\"nix-cuda\"]\n\
         [[pools]]\nslug = \"cuda\"\nfund = \"cuda\"\njobsets = [\"nixpkgs:cuda*\"]\nmonthly_budget = \"800.00\"\n"
    );
    for m in 0..MACHINES {
        let price = match m % 3 {
            0 => "monthly = \"120.00\"",
            1 => "hourly = \"0.35\"",
            _ => "metered = \"2.40\"",
        };
        let _ = write!(
            text,
            "[[machines]]\nname = \"build{m:02}\"\nslots = 4\n{price}\n"
        );
    }
    let mut config = Config::parse(&text, "bench")?;
    config.server.listen = "127.0.0.1:0".into();
    config.server.workers = Some(2);
    let dir = tempfile::tempdir()?;
    let database = BenchDatabase::create().await?;
    let url = match &database {
        Some(database) => database.url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.sqlite").display()
        ),
    };
    config.database.url = url;
    let config = Arc::new(config);
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;
    let app = Application::build(
        config.clone(),
        Arc::new(buildfund_jobs::config::Secrets::from_env(&config)),
        conn.clone(),
        ServeOptions {
            handle_signals: false,
            shutdown_timeout: Duration::from_secs(1),
        },
    )?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    // 12 months of build steps, through the ingest API.
    let started = Instant::now();
    let (token, _) = buildfund_jobs::api_tokens::create(
        &conn,
        "ingest".parse().map_err(anyhow::Error::msg)?,
        "bench",
        chrono::Utc::now(),
    )
    .await?;
    let mut month = first;
    let mut build = 0i64;
    loop {
        let start = month.start().timestamp();
        let end = month.next().start().timestamp().min(now.timestamp() - 60);
        let mut body = String::new();
        for i in 0..STEPS_PER_MONTH {
            build += 1;
            let s = start + (i * 7919) % (end - start - 7200).max(1);
            let _ = writeln!(
                body,
                r#"{{"build":{build},"step":1,"project":"nixpkgs","jobset":"{}{}","machine":"build{:02}","start":{s},"stop":{}}}"#,
                if i % 3 == 0 { "cuda-" } else { "trunk-" },
                i as usize % JOBSETS,
                i as usize % MACHINES,
                s + 60 + (i * 31) % 7000,
            );
        }
        let res = client
            .post(format!("{base}/api/v1/build-steps"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(res.status() == 200, "ingest: {}", res.text().await?);
        if month == this {
            break;
        }
        month = month.next();
    }
    // Donations: `sponsors` distinct sponsors this month, 500 a month before.
    let mut rows = Vec::new();
    let this_start = this.start();
    let room = (now - this_start).num_seconds().max(2);
    // `sponsors` named sponsors, and 100 anonymous contributions on top (one "Anonymous").
    for i in 0..sponsors + 100 {
        rows.push((
            format!("c{i}"),
            this_start + Days::seconds(i % (room - 1)),
            i,
        ));
    }
    let mut m = first;
    while m < this {
        for i in 0..500 {
            rows.push((format!("{m}-{i}"), m.start() + Days::hours(i % 600), i));
        }
        m = m.next();
    }
    let total = rows.len();
    for chunk in rows.chunks(1000) {
        let models = chunk.iter().map(|(id, at, i)| donations::ActiveModel {
            source: Set("manual".into()),
            external_id: Set(id.clone()),
            kind: Set("contribution".into()),
            occurred_at: Set(*at),
            account_slug: Set(if i % 2 == 0 { "nix-cuda" } else { "nixos" }.into()),
            tier_slug: Set(None),
            contributor_name: Set(Some(format!("Sponsor number {i} <{i}>"))),
            contributor_slug: Set(Some(format!("sponsor-{i}"))),
            contributor_url: Set(Some(format!("https://opencollective.com/sponsor-{i}"))),
            anonymous: Set(*i >= sponsors && id.starts_with('c')),
            gross_cents: Set(500 + (i % 97) * 100),
            fees_cents: Set(25),
            net_cents: Set(475 + (i % 97) * 100),
            original_amount: Set("5.00".into()),
            original_currency: Set("EUR".into()),
            refund_of: Set(None),
            description: Set(None),
            created_at: Set(*at),
            updated_at: Set(*at),
            ..Default::default()
        });
        donations::Entity::insert_many(models).exec(&conn).await?;
    }
    println!(
        "seeded {} steps over 12 months and {total} donations ({sponsors} sponsors this month) in {:.1} s on {}",
        build,
        started.elapsed().as_secs_f64(),
        if database.is_some() { "PostgreSQL" } else { "SQLite" }
    );

    let gate = Gate::new(config.clone(), buildfund_jobs::clock::Clock::system());
    gate.refresh(&conn).await?;
    let current = gate.current();
    let at = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now");

    let mut compute = Vec::new();
    let mut data = None;
    for _ in 0..7 {
        let t = Instant::now();
        data = Some(funding_page(&conn, &config, at, TOP_SPONSORS, RECENT_DONATIONS).await?);
        compute.push(t.elapsed());
    }
    let data = data.expect("computed");
    println!(
        "funding page model: {} sponsors this month, {} history months, {} cost lines",
        data.report.sponsors.len(),
        data.history.len(),
        data.report.lines.len()
    );
    report("/ model (funding_page: every query)", compute);
    let mut render = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let html = IndexPage {
            view: funding_view(&data, &current),
            unconfigured: false,
        }
        .render()?;
        render.push(t.elapsed());
        size = html.len();
    }
    report(&format!("/ view + render ({} KiB)", size / 1024), render);

    let r = month_report(&conn, &config, this, at).await?;
    let d = month_donations(&conn, &config, this, at).await?;
    let mut render = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let html = report_page(&config, &r, &d, at).render()?;
        render.push(t.elapsed());
        size = html.len();
    }
    report(
        &format!("/reports/{this} view + render ({} KiB)", size / 1024),
        render,
    );

    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let t = Instant::now();
            let res = client.get(url).send().await.expect("GET");
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("body");
            t.elapsed()
        }
    };
    let first_request = get("/").await;
    println!(
        "{:<44} {:>8.2} ms (model + render + send)",
        "GET / first (cache miss)",
        first_request.as_secs_f64() * 1000.0
    );
    let mut cached = Vec::new();
    let mut healthz = Vec::new();
    for _ in 0..300 {
        cached.push(get("/").await);
        healthz.push(get("/healthz").await);
    }
    report("GET / from the page cache", cached);
    report("GET /healthz (baseline)", healthz);
    let mut funds = Vec::new();
    for _ in 0..20 {
        funds.push(get("/api/v1/funds").await);
    }
    report("GET /api/v1/funds (JSON, computed)", funds);

    handle.stop(true).await;
    conn.close().await?;
    if let Some(database) = database {
        database.drop().await?;
    }
    Ok(())
}
