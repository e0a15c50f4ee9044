//! Cost per job end to end: build steps with job names in over HTTP, figures out of
//! `/api/v1/costs/jobs` and `buildfund costs --jobs`, checked against figures worked out by
//! hand from cost-model.md ("Cost per job": each jobset line of a (machine, window part) split
//! among its jobs by busy seconds, largest remainder, ties by ascending job name), for the
//! month computed from the steps and for the month read back from the store.
use buildfund_entity::{book_month_jobs, book_months};
use buildfund_jobs::books::jobs::window_jobs;
use buildfund_jobs::books::store;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::report::packages::package_of;
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"
idle = "separate"

[[funds]]
slug = "general"
name = "General fund"
default = true

[[funds]]
slug = "cuda"
name = "CUDA builds"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "800.00"

[[machines]]
name = "build03"
aliases = ["ssh://localhost"]
slots = 2
monthly = "300.00"

[[machines]]
name = "gpu01"
metered = "2.40"

[[machines]]
name = "late01"
slots = 1
hourly = "1.00"
active_from = 2026-10-16
"#;

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn step(
    build: i64,
    machine: &str,
    jobset: &str,
    job: Option<&str>,
    start: &str,
    stop: &str,
) -> Value {
    let mut s = json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
                       "machine": machine, "start": t(start), "stop": t(stop)});
    if let Some(job) = job {
        s["job"] = json!(job);
    }
    s
}

const TORCH: &str = "python3Packages.torch.x86_64-linux";

async fn seed(app: &TestApp) {
    app.ingest_steps(&[
        // Crosses the September/October boundary: one hour in each month, a step in each.
        step(
            1,
            "build03",
            "cuda",
            Some(TORCH),
            "2026-09-30T23:00:00Z",
            "2026-10-01T01:00:00Z",
        ),
        step(
            2,
            "build03",
            "cuda",
            Some("python3Packages.jaxlib.x86_64-linux"),
            "2026-10-05T00:00:00Z",
            "2026-10-05T10:00:00Z",
        ),
        // Through the alias: still build03.
        step(
            3,
            "ssh://localhost",
            "cuda",
            Some(TORCH),
            "2026-10-06T00:00:00Z",
            "2026-10-06T10:00:00Z",
        ),
        step(
            4,
            "build03",
            "cuda",
            None,
            "2026-10-07T00:00:00Z",
            "2026-10-07T01:00:00Z",
        ),
        step(
            5,
            "build03",
            "cuda",
            Some("python3Packages.torch.aarch64-linux"),
            "2026-10-08T00:00:00Z",
            "2026-10-08T01:00:00Z",
        ),
        step(
            6,
            "build03",
            "trunk",
            Some("hello.x86_64-linux"),
            "2026-10-12T00:00:00Z",
            "2026-10-12T02:30:00Z",
        ),
        step(
            7,
            "build03",
            "trunk",
            Some("hello.aarch64-linux"),
            "2026-10-13T00:00:00Z",
            "2026-10-13T02:30:00Z",
        ),
        step(
            8,
            "gpu01",
            "cuda-gpu-tests",
            Some(TORCH),
            "2026-10-20T00:00:00Z",
            "2026-10-20T02:30:00Z",
        ),
        step(
            9,
            "gpu01",
            "cuda-gpu-tests",
            Some("tensorflow.x86_64-linux"),
            "2026-10-20T03:00:00Z",
            "2026-10-20T03:20:00Z",
        ),
        // late01 starts on Oct 16: one of the two hours counts; a step of no length never.
        step(
            10,
            "late01",
            "cuda",
            Some("blender.x86_64-linux"),
            "2026-10-15T23:00:00Z",
            "2026-10-16T01:00:00Z",
        ),
        step(
            11,
            "late01",
            "cuda",
            Some("blender.x86_64-linux"),
            "2026-10-17T00:00:00Z",
            "2026-10-17T00:00:00Z",
        ),
        // Not a configured machine: unpriced, no job of the books.
        step(
            12,
            "jetson-orin-1",
            "cuda",
            Some(TORCH),
            "2026-10-21T00:00:00Z",
            "2026-10-21T01:00:00Z",
        ),
    ])
    .await;
}

fn job(jobset: &str, job: &str, pool: &str, busy: i64, steps: i64, cents: i64) -> Value {
    let fund = if pool == "cuda" { "cuda" } else { "general" };
    json!({"jobset": jobset, "job": job, "pool": pool, "fund": fund,
           "busy_seconds": busy, "steps": steps, "cost_cents": cents})
}

/// October worked out by hand.
/// - build03 costs 300.00, capacity 2 × 2,678,400 s. cuda 82,800 s → 463.709… → 464 cents,
///   trunk 18,000 s → 100.806… → 101 (cost-model.md's lines, as `/api/v1/costs` gives them).
///   cuda's 464 over torch 39,600 s (221.913…), jaxlib 36,000 (201.739…), unnamed and torch
///   aarch64 3,600 each (20.173…): floors 462, the two cents to .913 and .739. trunk's 101
///   over two jobs of 9,000 s: 50.5 each, the cent left to the tie's first name, aarch64.
/// - gpu01, metered 2.40/h: 10,200 s → 680 cents, torch 9,000 s 600 and tensorflow 1,200 s 80.
/// - late01, hourly 1.00 from Oct 16: cuda 3,600 s of 16 × 86,400 → 100 cents, all blender's.
fn october() -> Vec<Value> {
    vec![
        job("nixpkgs:cuda-gpu-tests", TORCH, "cuda", 9000, 1, 600),
        job("nixpkgs:cuda", TORCH, "cuda", 39600, 2, 222),
        job(
            "nixpkgs:cuda",
            "python3Packages.jaxlib.x86_64-linux",
            "cuda",
            36000,
            1,
            202,
        ),
        job("nixpkgs:cuda", "blender.x86_64-linux", "cuda", 3600, 1, 100),
        job(
            "nixpkgs:cuda-gpu-tests",
            "tensorflow.x86_64-linux",
            "cuda",
            1200,
            1,
            80,
        ),
        job("nixpkgs:trunk", "hello.aarch64-linux", "other", 9000, 1, 51),
        job("nixpkgs:trunk", "hello.x86_64-linux", "other", 9000, 1, 50),
        job(
            "nixpkgs:cuda",
            "python3Packages.torch.aarch64-linux",
            "cuda",
            3600,
            1,
            20,
        ),
        job("nixpkgs:cuda", "~unnamed", "cuda", 3600, 1, 20),
    ]
}

/// The packages a page shows for `month` as of `as_of`, worked out from `/api/v1/costs/jobs`:
/// jobs grouped per (pool, job without its system suffix), the ten most expensive (cost
/// descending, then package, then pool), as `package.POOL.PACKAGE.cost` → cents.
pub async fn expected_packages(app: &TestApp, month: Month, as_of: &str) -> BTreeMap<String, i64> {
    let all = jobs(app, &format!("month={month}&at={as_of}&limit=10000")).await;
    let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
    for j in all["jobs"].as_array().unwrap() {
        let package = package_of(j["job"].as_str().unwrap()).to_string();
        *by.entry((j["pool"].as_str().unwrap().into(), package))
            .or_default() += j["cost_cents"].as_i64().unwrap();
    }
    let mut rows: Vec<((String, String), i64)> = by.into_iter().collect();
    rows.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| (&a.0 .1, &a.0 .0).cmp(&(&b.0 .1, &b.0 .0)))
    });
    rows.into_iter()
        .take(10)
        .map(|((pool, package), c)| (format!("package.{pool}.{package}.cost"), c))
        .collect()
}

async fn jobs(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/costs/jobs?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

/// The jobs of every jobset line sum to the line, per jobset over the month.
async fn assert_jobs_sum_to_lines(app: &TestApp, month: &str, body: &Value) {
    let costs = app.get_costs(month, None).await;
    let mut lines = BTreeMap::<String, i64>::new();
    for l in costs["lines"].as_array().unwrap() {
        if let Some(j) = l["jobset"].as_str() {
            *lines.entry(j.into()).or_default() += l["cost_cents"].as_i64().unwrap();
        }
    }
    let mut by_jobset = BTreeMap::<String, i64>::new();
    for j in body["jobs"].as_array().unwrap() {
        *by_jobset
            .entry(j["jobset"].as_str().unwrap().into())
            .or_default() += j["cost_cents"].as_i64().unwrap();
    }
    assert_eq!(by_jobset, lines);
}

db_test!(october_jobs_to_the_cent, CONFIG, |app| async move {
    seed(&app).await;
    let body = jobs(&app, "month=2026-10").await;
    assert_eq!(body["month"], "2026-10");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["total_cents"], 1345);
    assert_eq!(body["matched"], 9);
    assert_eq!(body["jobs"], json!(october()));
    assert_jobs_sum_to_lines(&app, "2026-10", &body).await;

    // September holds the other hour of the crossing step: 21 cents, its step counted there too.
    let sept = jobs(&app, "month=2026-09").await;
    assert_eq!(
        sept["jobs"],
        json!([job("nixpkgs:cuda", TORCH, "cuda", 3600, 1, 21)])
    );
    assert_jobs_sum_to_lines(&app, "2026-09", &sept).await;

    // Month to date: [Oct 1, Oct 10) has only build03's cuda steps: 300.00 × 9/31 = 87.096…,
    // cuda's exact 463.709… the same as the whole month's (busy < capacity), so 464 again.
    let mid = jobs(&app, "month=2026-10&at=2026-10-10T00:00:00Z").await;
    assert_eq!(mid["as_of"], "2026-10-10T00:00:00Z");
    assert_eq!(mid["total_cents"], 464);
    let names: Vec<&str> = mid["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            TORCH,
            "python3Packages.jaxlib.x86_64-linux",
            "python3Packages.torch.aarch64-linux",
            "~unnamed"
        ]
    );
    // Before the ledger nothing counts.
    let aug = jobs(&app, "month=2026-08").await;
    assert_eq!(
        (aug["total_cents"].clone(), aug["jobs"].clone()),
        (json!(0), json!([]))
    );
});

db_test!(filters_limit_and_refusals, CONFIG, |app| async move {
    seed(&app).await;
    let trunk = jobs(&app, "month=2026-10&jobset=nixpkgs:trunk").await;
    assert_eq!(trunk["total_cents"], 101);
    assert_eq!(trunk["jobs"], json!(october()[5..7]));
    let other = jobs(&app, "month=2026-10&pool=other").await;
    assert_eq!(other["jobs"], trunk["jobs"]);
    let cuda = jobs(&app, "month=2026-10&pool=cuda").await;
    assert_eq!(cuda["total_cents"], 1345 - 101);
    assert_eq!(cuda["matched"], 7);
    let both = jobs(
        &app,
        "month=2026-10&pool=cuda&jobset=nixpkgs:cuda-gpu-tests",
    )
    .await;
    assert_eq!(both["total_cents"], 680);
    let none = jobs(&app, "month=2026-10&pool=other&jobset=nixpkgs:cuda").await;
    assert_eq!(
        (none["total_cents"].clone(), none["matched"].clone()),
        (json!(0), json!(0))
    );
    // The limit cuts the list, never the total.
    let two = jobs(&app, "month=2026-10&limit=2").await;
    assert_eq!(two["jobs"], json!(october()[..2]));
    assert_eq!(
        (two["total_cents"].clone(), two["matched"].clone()),
        (json!(1345), json!(9))
    );
    assert_eq!(jobs(&app, "month=2026-10&limit=10000").await["matched"], 9);

    for (query, field) in [
        ("month=2026-10&limit=0", "limit"),
        ("month=2026-10&limit=10001", "limit"),
        ("month=2026-10&limit=ten", "limit"),
        ("month=2026-10&limit=-1", "limit"),
        ("month=2026-10&jobset=nixpkgs", "jobset"),
        ("month=2026-10&jobset=nix%20pkgs:cuda", "jobset"),
        ("month=2026-10&jobset=nixpkgs:cu*", "jobset"),
        ("month=2026-10&pool=gpu", "pool"),
        ("month=2026-13", "month"),
        ("month=October", "month"),
        ("month=2999-01", "month"),
        ("month=2026-10&at=yesterday", "at"),
        ("month=2026-10&at=2999-01-01T00:00:00Z", "at"),
    ] {
        let res = app.get(&format!("/api/v1/costs/jobs?{query}")).await;
        assert_eq!(res.status(), 422, "{query}");
        let body: Value = res.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("{field}: ")), "{query}: {error}");
    }
});

db_test!(
    a_closed_month_reads_its_jobs_from_the_store,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let computed = jobs(&app, "month=2026-10&limit=10000").await;
        let e = store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
            .await
            .unwrap();
        assert!(e.stored >= 2, "{e:?}");
        // September's one job and October's nine are stored with their months.
        assert_eq!(
            book_month_jobs::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
            10
        );
        let stored = jobs(&app, "month=2026-10&limit=10000").await;
        let strip = |mut v: Value| {
            v.as_object_mut().unwrap().remove("as_of");
            v
        };
        assert_eq!(strip(stored.clone()), strip(computed));
        assert_eq!(stored["jobs"], json!(october()));
        // Filters read the stored rows too.
        assert_eq!(
            jobs(&app, "month=2026-10&jobset=nixpkgs:trunk").await["total_cents"],
            101
        );
        assert_eq!(jobs(&app, "month=2026-10&pool=cuda").await["matched"], 7);

        // The store answers, not the steps: a stored row changed by hand shows.
        let window = store::book_window(&app.config, Month::parse("2026-10").unwrap()).unwrap();
        let terms = buildfund_jobs::books::terms::WindowTerms::prepare(&app.config, window);
        let from_data = window_jobs(&app.db, &app.config, &terms).await.unwrap();
        assert_eq!(from_data.len(), 9);
        use sea_orm::sea_query::Expr;
        book_month_jobs::Entity::update_many()
            .col_expr(book_month_jobs::Column::CostCents, Expr::value(7i64))
            .filter(book_month_jobs::Column::Job.eq("~unnamed"))
            .exec(&app.db)
            .await
            .unwrap();
        let hand = jobs(&app, "month=2026-10&jobset=nixpkgs:cuda").await;
        assert_eq!(hand["total_cents"], 564 - 20 + 7);

        // A late step reopens October: computed again from the steps until stored again.
        app.ingest_steps(&[step(
            13,
            "gpu01",
            "cuda-gpu-tests",
            Some("tensorflow.x86_64-linux"),
            "2026-10-21T00:00:00Z",
            "2026-10-21T01:00:00Z",
        )])
        .await;
        let late = jobs(&app, "month=2026-10&jobset=nixpkgs:cuda-gpu-tests").await;
        assert_eq!(
            late["jobs"],
            json!([
                job("nixpkgs:cuda-gpu-tests", TORCH, "cuda", 9000, 1, 600),
                job(
                    "nixpkgs:cuda-gpu-tests",
                    "tensorflow.x86_64-linux",
                    "cuda",
                    4800,
                    2,
                    320
                )
            ])
        );
        store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
            .await
            .unwrap();
        let again = jobs(&app, "month=2026-10&jobset=nixpkgs:cuda-gpu-tests").await;
        assert_eq!(again["jobs"], late["jobs"]);
        assert_eq!(
            jobs(&app, "month=2026-10&jobset=nixpkgs:cuda").await["total_cents"],
            564
        );
    }
);

db_test!(the_costs_command_lists_jobs, CONFIG, |app| async move {
    seed(&app).await;
    let out = app.cli(&["costs", "--month", "2026-10", "--jobs", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["jobs"], json!(october()));
    assert_eq!(cli["total_cents"], 1345);

    let out = app.cli(&[
        "costs", "--month", "2026-10", "--jobs", "--pool", "cuda", "--limit", "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("7 jobs, total 12.44"), "{table}");
    assert!(
        table.contains(TORCH) && table.contains("nixpkgs:cuda-gpu-tests"),
        "{table}"
    );
    assert!(
        table.contains("11.00 h") && table.contains("2.22"),
        "{table}"
    );
    assert!(table.contains("… and 4 more"), "{table}");
    assert!(!table.contains("hello"), "{table}");

    let out = app.cli(&["costs", "--month", "2026-10", "--jobs", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--limit: \"0\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = app.cli(&["costs", "--month", "2026-10", "--jobs", "--pool", "gpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pool: no pool \"gpu\""));
});

db_test!(
    the_report_shows_what_the_money_built,
    CONFIG.replace("monthly_budget = \"800.00\"", "monthly_budget = \"5.00\""),
    |app| async move {
        seed(&app).await;
        // torch in the cuda pool: 222 + 20 (cuda, both systems) + 600 (cuda-gpu-tests) cents
        // for 52,200 s; 842 of the month's 69,080 cents is 1.218… %. The pool spent 12.44
        // against a budget of 5.00.
        let out_dir = app.dir.path().join("preview");
        app.cli_ok(&[
            "report",
            "preview",
            "--month",
            "2026-10",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(out_dir.join("report-2026-10.txt")).unwrap();
        assert!(text.contains("WHAT THE MONEY BUILT"), "{text}");
        assert!(
            text.contains(
                "- python3Packages.torch (cuda, over budget): 8.42 for 14.5 busy hours, 1.2 % of \
                 the spending (python3Packages.torch.aarch64-linux, python3Packages.torch.x86_64-linux)"
            ),
            "{text}"
        );
        assert!(
            text.contains("- hello (other): 1.01 for 5.0 busy hours, 0.1 % of the spending"),
            "{text}"
        );
        let html = std::fs::read_to_string(out_dir.join("report-2026-10.html")).unwrap();
        assert!(
            html.contains("What the money built") && html.contains("(over budget)"),
            "{html}"
        );

        let page = app.get("/reports/2026-10").await.text().await.unwrap();
        assert!(page.contains("What the money built"), "{page}");
        assert!(
            page.contains(
                "data-figure=\"package.cuda.python3Packages.torch.cost\" data-value=\"842\""
            ),
            "{page}"
        );
        assert_eq!(
            page.matches("(over budget)").count(),
            5,
            "every cuda package is marked"
        );

        // The CSV: a row per job, as the API lists them, summing to the jobset lines.
        let csv_text = app.get("/reports/2026-10.csv").await.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<BTreeMap<String, String>> = reader
            .records()
            .map(|r| {
                header
                    .iter()
                    .cloned()
                    .zip(r.unwrap().iter().map(String::from))
                    .collect()
            })
            .collect();
        let job_rows: Vec<Value> = rows
            .iter()
            .filter(|r| r["record"] == "job")
            .map(|r| {
                job(
                    &r["jobset"],
                    &r["job"],
                    &r["pool"],
                    r["busy_seconds"].parse().unwrap(),
                    r["steps"].parse().unwrap(),
                    r["amount_cents"].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(job_rows, october());
        let lines: i64 = rows
            .iter()
            .filter(|r| r["record"] == "cost" && r["idle"] == "false")
            .map(|r| r["amount_cents"].parse::<i64>().unwrap())
            .sum();
        assert_eq!(lines, 1345);
    }
);

const CHANGED: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"

[[funds]]
slug = "general"
name = "General fund"
default = true

[[machines]]
name = "m1"
slots = 1
hourly = "1.00"

[[machines.changes]]
from = "2026-10-16"
hourly = "2.00"
"#;

db_test!(
    a_price_change_splits_each_part_and_counts_a_step_once,
    CHANGED,
    |app| async move {
        app.ingest_steps(&[
            // One hour on each side of the change: one step, two parts.
            step(
                1,
                "m1",
                "trunk",
                Some("a"),
                "2026-10-15T23:00:00Z",
                "2026-10-16T01:00:00Z",
            ),
            step(
                2,
                "m1",
                "trunk",
                Some("b"),
                "2026-10-16T02:00:00Z",
                "2026-10-16T03:00:00Z",
            ),
        ])
        .await;
        // [Oct 1, Oct 16): 1.00/h × 360 h = 360.00 over 1,296,000 slot-seconds; trunk 3,600 s
        // → 100 cents, all a's. [Oct 16, Nov 1): 2.00/h × 384 h = 768.00 over 1,382,400;
        // trunk 7,200 s → 400 cents, 200 each. a: 300 cents, 7,200 s, one step.
        let body = jobs(&app, "month=2026-10").await;
        assert_eq!(
            body["jobs"],
            json!([
                job("nixpkgs:trunk", "a", "other", 7200, 1, 300),
                job("nixpkgs:trunk", "b", "other", 3600, 1, 200)
            ])
        );
        assert_jobs_sum_to_lines(&app, "2026-10", &body).await;
        // Stored with the month, the same.
        store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
            .await
            .unwrap();
        let stored = jobs(&app, "month=2026-10").await;
        assert_eq!(stored["jobs"], body["jobs"]);
    }
);

db_test!(
    a_filtered_read_lists_the_jobs_of_the_unfiltered_one,
    // late01's price changes inside October: its jobs come from two parts.
    format!("{CONFIG}\n[[machines.changes]]\nfrom = \"2026-10-20\"\nhourly = \"2.00\"\n"),
    |app| async move {
        seed(&app).await;
        app.ingest_steps(&[
            step(
                40,
                "late01",
                "cuda",
                Some(TORCH),
                "2026-10-19T23:00:00Z",
                "2026-10-20T02:00:00Z",
            ),
            step(
                41,
                "late01",
                "trunk",
                Some("hello.x86_64-linux"),
                "2026-10-21T00:00:00Z",
                "2026-10-21T03:00:00Z",
            ),
            // Across October's end, on a machine active through the month.
            step(
                42,
                "build03",
                "trunk",
                Some("hello.x86_64-linux"),
                "2026-10-31T23:00:00Z",
                "2026-11-01T01:00:00Z",
            ),
            // Through the alias, across midnight and the 25th's edge.
            step(
                43,
                "ssh://localhost",
                "cuda-gpu-tests",
                Some("tensorflow.x86_64-linux"),
                "2026-10-24T20:00:00Z",
                "2026-10-25T02:00:00Z",
            ),
            // Across midnight and the edge of the 20th at 01:30, and late01's change.
            step(
                44,
                "gpu01",
                "trunk",
                Some("hello.aarch64-linux"),
                "2026-10-19T22:00:00Z",
                "2026-10-20T03:00:00Z",
            ),
        ])
        .await;
        // October is not stored and no day is: both reads compute it from the steps, the
        // filtered one only its jobsets.
        assert_filters_match_the_unfiltered_list(&app).await;
        // The days stored as the keeper keeps them (and the months, then October's removed):
        // the filtered reads take their lines from the stored days and the edges' steps.
        store::ensure(&app.db, &app.config, app.clock.now(), |_, _, _| {})
            .await
            .unwrap();
        book_months::Entity::delete_many()
            .filter(book_months::Column::Month.eq("2026-10"))
            .exec(&app.db)
            .await
            .unwrap();
        assert_filters_match_the_unfiltered_list(&app).await;
    }
);

/// Every filter by a jobset or a pool of October's jobs (as of its end, and as of the 25th)
/// lists exactly the unfiltered list's jobs of that jobset or pool, to the cent, in its order,
/// with their total.
async fn assert_filters_match_the_unfiltered_list(app: &TestApp) {
    for at in ["", "&at=2026-10-25T00:00:00Z", "&at=2026-10-20T01:30:00Z"] {
        let all = jobs(app, &format!("month=2026-10{at}&limit=1000")).await;
        let all = all["jobs"].as_array().unwrap().clone();
        assert!(all.len() >= 5, "{all:?}");
        let mut filters: Vec<(String, String)> = Vec::new();
        for j in &all {
            filters.push(("jobset".into(), j["jobset"].as_str().unwrap().into()));
            filters.push(("pool".into(), j["pool"].as_str().unwrap().into()));
        }
        filters.push(("jobset".into(), "nixpkgs:nothing".into()));
        filters.sort();
        filters.dedup();
        for (key, value) in filters {
            let got = jobs(app, &format!("month=2026-10{at}&limit=1000&{key}={value}")).await;
            let want: Vec<&Value> = all.iter().filter(|j| j[&key] == value).collect();
            let listed: Vec<&Value> = got["jobs"].as_array().unwrap().iter().collect();
            assert_eq!(listed, want, "{key}={value}{at}");
            let total: i64 = want.iter().map(|j| j["cost_cents"].as_i64().unwrap()).sum();
            assert_eq!(got["total_cents"], total, "{key}={value}{at}");
        }
    }
}

/// The open month's jobs as the funding page reads them (`funding_figures`) at the clock's now.
async fn page_jobs(app: &TestApp) -> Vec<buildfund_jobs::books::jobs::JobCost> {
    buildfund_jobs::books::funding_figures(&app.db, &app.config, app.clock.now(), 10, 10)
        .await
        .unwrap()
        .figures
        .jobs
}

/// The same computed from scratch: without the stored day of jobs (its rows put back after).
async fn scratch_jobs(app: &TestApp) -> Vec<buildfund_jobs::books::jobs::JobCost> {
    use buildfund_entity::book_day_jobs;
    let kept = book_day_jobs::Entity::find().all(&app.db).await.unwrap();
    book_day_jobs::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    let jobs = page_jobs(app).await;
    if !kept.is_empty() {
        book_day_jobs::Entity::insert_many(
            kept.into_iter()
                .map(sea_orm::IntoActiveModel::into_active_model),
        )
        .exec_without_returning(&app.db)
        .await
        .unwrap();
    }
    jobs
}

db_test!(
    the_open_month_reads_its_jobs_from_the_stored_day,
    // late01's price changes inside October: its parts are still computed from the steps.
    buildfund_tests::TestAppBuilder::from(format!(
        "{CONFIG}\n[[machines.changes]]\nfrom = \"2026-10-10\"\nhourly = \"2.00\"\n"
    ))
    .clock(buildfund_jobs::clock::Clock::manual(
        DateTime::parse_from_rfc3339("2026-10-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    )),
    |app| async move {
        use buildfund_entity::book_day_jobs;
        use buildfund_jobs::books::job_days::store_job_day;
        use sea_orm::ExprTrait;
        let ingest = |steps: Vec<Value>| {
            let app = &app;
            async move { app.ingest_steps(&steps).await }
        };
        // October up to the 20th, noon: the seed but its steps after it, and steps across
        // the 19th's end.
        ingest(vec![
            step(
                1,
                "build03",
                "cuda",
                Some(TORCH),
                "2026-09-30T23:00:00Z",
                "2026-10-01T01:00:00Z",
            ),
            step(
                2,
                "build03",
                "cuda",
                Some("jaxlib"),
                "2026-10-05T00:00:00Z",
                "2026-10-05T10:00:00Z",
            ),
            step(
                3,
                "ssh://localhost",
                "cuda",
                Some(TORCH),
                "2026-10-06T00:00:00Z",
                "2026-10-06T10:00:00Z",
            ),
            step(
                4,
                "build03",
                "cuda",
                None,
                "2026-10-07T00:00:00Z",
                "2026-10-07T01:00:00Z",
            ),
            step(
                5,
                "build03",
                "cuda",
                Some("~unnamed"),
                "2026-10-08T00:00:00Z",
                "2026-10-08T01:00:00Z",
            ),
            step(
                6,
                "build03",
                "trunk",
                Some("hello"),
                "2026-10-12T00:00:00Z",
                "2026-10-12T02:30:00Z",
            ),
            step(
                7,
                "gpu01",
                "cuda-gpu-tests",
                Some(TORCH),
                "2026-10-19T23:00:00Z",
                "2026-10-20T02:30:00Z",
            ),
            step(
                8,
                "build03",
                "trunk",
                Some("hello"),
                "2026-10-19T22:00:00Z",
                "2026-10-20T01:00:00Z",
            ),
            step(
                9,
                "late01",
                "cuda",
                Some("blender"),
                "2026-10-09T23:00:00Z",
                "2026-10-10T01:00:00Z",
            ),
            step(
                10,
                "jetson-orin-1",
                "cuda",
                Some(TORCH),
                "2026-10-19T00:00:00Z",
                "2026-10-19T01:00:00Z",
            ),
        ])
        .await;
        assert!(store_job_day(&app.db, app.clock.now()).await.unwrap());
        assert!(
            !store_job_day(&app.db, app.clock.now()).await.unwrap(),
            "stored fresh: not again"
        );
        let stored = book_day_jobs::Entity::find().all(&app.db).await.unwrap();
        assert!(!stored.is_empty());
        assert!(stored.iter().all(|r| r.day == t("2026-10-19T00:00:00Z")));
        let scratch = scratch_jobs(&app).await;
        assert_eq!(scratch.len(), 5, "{scratch:?}");
        assert_eq!(page_jobs(&app).await, scratch);
        // The page does read the stored rows: an hour more on build03's trunk shows.
        book_day_jobs::Entity::update_many()
            .col_expr(
                book_day_jobs::Column::BusySeconds,
                sea_orm::sea_query::Expr::col(book_day_jobs::Column::BusySeconds).add(3600),
            )
            .filter(book_day_jobs::Column::Jobset.eq("trunk"))
            .exec(&app.db)
            .await
            .unwrap();
        assert_ne!(page_jobs(&app).await, scratch);
        book_day_jobs::Entity::delete_many()
            .exec(&app.db)
            .await
            .unwrap();
        assert!(store_job_day(&app.db, app.clock.now()).await.unwrap());
        assert_eq!(page_jobs(&app).await, scratch);
        app.clock.set(app.clock.now() + chrono::Duration::hours(1));

        // New steps of today: the stored day still serves, today's steps come from the steps.
        ingest(vec![
            step(
                20,
                "build03",
                "trunk",
                Some("hello"),
                "2026-10-20T02:00:00Z",
                "2026-10-20T04:00:00Z",
            ),
            step(
                21,
                "gpu01",
                "cuda",
                Some("new"),
                "2026-10-20T05:00:00Z",
                "2026-10-20T06:00:00Z",
            ),
        ])
        .await;
        assert!(!store_job_day(&app.db, app.clock.now()).await.unwrap());
        assert_eq!(page_jobs(&app).await, scratch_jobs(&app).await);

        // A late step into a day stored: the rows are stale and not read, until stored again.
        ingest(vec![step(
            22,
            "build03",
            "cuda",
            Some(TORCH),
            "2026-10-03T00:00:00Z",
            "2026-10-03T05:00:00Z",
        )])
        .await;
        let with_late = scratch_jobs(&app).await;
        assert_eq!(page_jobs(&app).await, with_late);
        assert!(store_job_day(&app.db, app.clock.now()).await.unwrap());
        assert_eq!(page_jobs(&app).await, with_late);
        assert_eq!(page_jobs(&app).await, scratch_jobs(&app).await);

        // The next month's first day: no whole day of it is over, the rows go.
        app.clock.set(
            DateTime::parse_from_rfc3339("2026-11-01T06:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        assert!(!store_job_day(&app.db, app.clock.now()).await.unwrap());
        assert!(book_day_jobs::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .is_empty());
    }
);
