//! The farm's gauges in `/metrics` against the API that shows the same figures: funds' balance
//! and runway (`/api/v1/funds` at the snapshot's instant), pools' spending, budget and state
//! (`/api/v1/gate/…`), the snapshot's age, jobs' last success (`/api/v1/jobs`) and the
//! outbox's pending messages; and the shipped dashboard and alerts naming only exported metrics.
use buildfund_entity::email_outbox;
use buildfund_jobs::calendar::Month;
use buildfund_tests::opencollective::Behaviour;
use buildfund_tests::prometheus::{buildfund_names, Sample};
use buildfund_tests::{db_test, TestApp, TestAppBuilder};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Three funds (one that spends nothing: an unbounded runway), two pools with budgets plus
/// the implicit `other`, one metered machine: its figures do not move with the clock, so
/// `/api/v1/funds?at=<as_of>` (whole seconds) gives exactly the snapshot's (taken within that
/// second). The books begin last month.
fn config() -> String {
    let start = Month::of(Utc::now()).prev();
    format!(
        r#"
currency = "EUR"
ledger_start = "{start}-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"
reserve = "10.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "80.00"
reserve = "5.00"

[[funds]]
slug = "spare"
name = "Spare"
opening_balance = "20.00"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "50.00"

[[pools]]
slug = "docs"
fund = "general"
jobsets = ["nixpkgs:docs"]
monthly_budget = "5.00"

[[machines]]
name = "build01"
metered = "72.00"
"#
    )
}

fn setup() -> TestAppBuilder {
    TestApp::builder(config()).opencollective(Behaviour::default())
}

/// A pool's jobset, for its gate answer.
const JOBSETS: &[(&str, &str)] = &[
    ("cuda", "nixpkgs/cuda-12"),
    ("docs", "nixpkgs/docs"),
    ("other", "misc/thing"),
];

/// Steps of the last hours in every pool, a pause on `docs` (closed), a successful
/// `opencollective_sync` run and two confirmation emails waiting in the outbox (no `[smtp]`).
async fn seed(app: &TestApp) {
    let now = Utc::now().timestamp();
    let step = |build: i64, jobset: &str, start: i64, stop: i64| {
        let (project, jobset) = jobset.split_once(':').unwrap();
        json!({"build": build, "step": 1, "project": project, "jobset": jobset,
               "machine": "build01", "start": start, "stop": stop})
    };
    app.ingest_steps(&[
        step(1, "nixpkgs:cuda-12", now - 600, now - 300),
        step(2, "nixpkgs:docs", now - 300, now - 240),
        step(3, "misc:thing", now - 240, now - 180),
    ])
    .await;
    let admin = app.token("admin").await;
    let (status, _) = app
        .pause("docs", &admin, json!({"reason": "docs rebuild"}))
        .await;
    assert_eq!(status, 200);
    let run = app.run_job("opencollective_sync", &admin).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    for email in ["ada@example.org", "bob@example.org"] {
        let (status, body) = app
            .post_json(
                "/api/v1/subscribers",
                &admin,
                json!({"email": email, "confirmed": false}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn one(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} appears {} times",
        found.len()
    );
    found.first().copied()
}

fn label_values(samples: &[Sample], name: &str, label: &str) -> BTreeSet<String> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.label(label).unwrap_or_default().to_string())
        .collect()
}

/// The gate's answer for every pool and the metrics scraped between two identical rounds of
/// them, so both come from one snapshot (a refresh may land in between: then again).
async fn gate_and_metrics(app: &TestApp) -> (BTreeMap<&'static str, Value>, Vec<Sample>) {
    for _ in 0..20 {
        let mut before = BTreeMap::new();
        for (pool, jobset) in JOBSETS {
            before.insert(*pool, app.get_gate(jobset).await);
        }
        let metrics = app.get_metrics().await;
        let mut same = true;
        for (pool, jobset) in JOBSETS {
            same &= app.get_gate(jobset).await["as_of"] == before[pool]["as_of"];
        }
        let as_of: BTreeSet<String> = before.values().map(|g| g["as_of"].to_string()).collect();
        if same && as_of.len() == 1 {
            return (before, metrics);
        }
    }
    panic!("the gate's snapshot changed under every scrape");
}

db_test!(every_gauge_equals_the_api, setup(), |app| async move {
    seed(&app).await;
    let (gates, m) = gate_and_metrics(&app).await;
    let as_of = gates["cuda"]["as_of"].as_str().unwrap().to_string();

    // Pools: spending, budget and the state in force, as the gate answers them.
    let pools: BTreeSet<String> = JOBSETS.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(
        label_values(&m, "buildfund_pool_spent_cents", "pool"),
        pools
    );
    for (pool, g) in &gates {
        assert_eq!(g["pool"], *pool);
        let spent = one(&m, "buildfund_pool_spent_cents", &[("pool", pool)]);
        assert_eq!(
            spent,
            Some(g["spent_cents"].as_i64().unwrap() as f64),
            "{pool}"
        );
        let budget = one(&m, "buildfund_pool_budget_cents", &[("pool", pool)]);
        assert_eq!(
            budget,
            g["budget_cents"].as_i64().map(|b| b as f64),
            "{pool}"
        );
        for state in ["open", "warn", "closed"] {
            let v = one(
                &m,
                "buildfund_pool_state",
                &[("pool", pool), ("state", state)],
            );
            let expected = if g["state"] == state { 1.0 } else { 0.0 };
            assert_eq!(
                v,
                Some(expected),
                "{pool} {state}: the gate says {}",
                g["state"]
            );
        }
    }
    assert_eq!(gates["docs"]["state"], "closed", "paused");
    // 300 busy seconds at 2 cents a second, unless the month began since.
    if Month::of(Utc::now() - chrono::Duration::seconds(600)) == Month::of(Utc::now()) {
        assert_eq!(gates["cuda"]["spent_cents"], 600);
    }

    // Funds: balance and runway at the snapshot's instant, as `/api/v1/funds` gives them.
    let month = Month::of(as_of.parse::<DateTime<Utc>>().unwrap()).to_string();
    let funds = app.get_funds(&month, Some(&as_of)).await;
    let funds = funds["funds"].as_array().unwrap();
    assert_eq!(funds.len(), 3);
    let slugs: BTreeSet<String> = funds
        .iter()
        .map(|f| f["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        label_values(&m, "buildfund_fund_balance_cents", "fund"),
        slugs
    );
    for f in funds {
        let slug = f["slug"].as_str().unwrap();
        let balance = one(&m, "buildfund_fund_balance_cents", &[("fund", slug)]);
        assert_eq!(
            balance,
            Some(f["balance_cents"].as_i64().unwrap() as f64),
            "{slug}"
        );
        let runway = one(&m, "buildfund_fund_runway_seconds", &[("fund", slug)]);
        let expected = f["runway_days"]
            .as_i64()
            .map_or(f64::INFINITY, |d| d as f64 * 86_400.0);
        assert_eq!(runway, Some(expected), "{slug}: {}", f["runway_days"]);
    }
    let spare = funds.iter().find(|f| f["slug"] == "spare").unwrap();
    assert_eq!(spare["runway_days"], Value::Null, "spends nothing");
    assert!(funds.iter().any(|f| f["runway_days"].is_i64()));

    // The snapshot's age: at most the time since `as_of` (its instant cut to the second).
    let age = one(&m, "buildfund_gate_snapshot_age_seconds", &[]).expect("an age");
    let since = (Utc::now() - as_of.parse::<DateTime<Utc>>().unwrap()).num_milliseconds();
    let bound = since.max(0) as f64 / 1000.0 + 0.001;
    assert!((0.0..=bound).contains(&age), "{age} s, {since} ms");
    assert!(age < 120.0, "refreshed at least every minute: {age} s");

    // Jobs: the last ok run's end, as `/api/v1/jobs` lists it; skipped jobs have no series.
    let admin = app.token("admin").await;
    let runs: Value = app
        .get_with_token("/api/v1/jobs?limit=1000", &admin)
        .await
        .json()
        .await
        .unwrap();
    let mut last_ok: BTreeMap<String, f64> = BTreeMap::new();
    for r in runs["runs"].as_array().unwrap() {
        if r["outcome"] == "ok" {
            let t: DateTime<Utc> = r["finished_at"].as_str().unwrap().parse().unwrap();
            let t = t.timestamp_micros() as f64 / 1e6;
            let job = r["job"].as_str().unwrap().to_string();
            let e = last_ok.entry(job).or_insert(t);
            *e = e.max(t);
        }
    }
    assert_eq!(
        last_ok.keys().collect::<Vec<_>>(),
        vec!["opencollective_sync"]
    );
    let jobs = label_values(&m, "buildfund_job_last_success_timestamp_seconds", "job");
    assert_eq!(jobs, last_ok.keys().cloned().collect());
    for (job, t) in &last_ok {
        let v = one(
            &m,
            "buildfund_job_last_success_timestamp_seconds",
            &[("job", job)],
        )
        .unwrap();
        assert!((v - t).abs() < 1e-3, "{job}: {v} against {t}");
    }

    // The outbox: the two confirmations no relay took.
    let waiting = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.is_in(["pending", "retry", "sending"]))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(waiting, 2);
    assert_eq!(one(&m, "buildfund_outbox_pending", &[]), Some(2.0));

    // Every series of the farm's gauges was checked above, and nothing else is exported but
    // the instance's counters of shared month computations (tests/tests/books_shared.rs).
    assert!(one(&m, "buildfund_books_computations_total", &[]).is_some());
    assert!(one(&m, "buildfund_books_computations_joined_total", &[]).is_some());
    let names: BTreeSet<&str> = m.iter().map(|s| s.name.as_str()).collect();
    for name in &names {
        assert!(
            name.starts_with("buildfund_http_")
                || name.starts_with("buildfund_books_computations_")
                || [
                    "buildfund_fund_balance_cents",
                    "buildfund_fund_runway_seconds",
                    "buildfund_pool_spent_cents",
                    "buildfund_pool_budget_cents",
                    "buildfund_pool_state",
                    "buildfund_gate_snapshot_age_seconds",
                    "buildfund_job_last_success_timestamp_seconds",
                    "buildfund_outbox_pending",
                    "buildfund_opencollective_drift_cents",
                    "buildfund_opencollective_check_status",
                    "buildfund_opencollective_check_timestamp_seconds",
                ]
                .contains(name),
            "unexpected metric {name}"
        );
    }
    let budgets = label_values(&m, "buildfund_pool_budget_cents", "pool");
    assert_eq!(budgets, ["cuda", "docs"].map(String::from).into());
});

const DASHBOARD: &str = include_str!("../../docs/grafana/buildfund.json");
const ALERTS: &str = include_str!("../../docs/prometheus/alerts.yml");

db_test!(
    the_dashboard_and_alerts_name_only_exported_metrics,
    setup(),
    |app| async move {
        seed(&app).await;
        // A request of each kind, so the HTTP series exist too.
        assert_eq!(app.get("/healthz").await.status(), 200);
        app.get_metrics().await;
        let exported: BTreeSet<String> = app
            .get_metrics()
            .await
            .into_iter()
            .map(|s| s.name)
            .collect();

        let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 9, "{} expressions", exprs.len());
        let in_dashboard: BTreeSet<String> =
            exprs.iter().flat_map(|e| buildfund_names(e)).collect();
        let unknown: Vec<&String> = in_dashboard.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard names {unknown:?}, not exported"
        );
        // It shows every gauge of the farm.
        for gauge in [
            "buildfund_fund_balance_cents",
            "buildfund_fund_runway_seconds",
            "buildfund_pool_spent_cents",
            "buildfund_pool_budget_cents",
            "buildfund_pool_state",
            "buildfund_gate_snapshot_age_seconds",
            "buildfund_job_last_success_timestamp_seconds",
            "buildfund_outbox_pending",
            "buildfund_opencollective_drift_cents",
            "buildfund_opencollective_check_status",
            "buildfund_opencollective_check_timestamp_seconds",
        ] {
            assert!(
                in_dashboard.contains(gauge),
                "the dashboard does not show {gauge}"
            );
        }

        let in_alerts = buildfund_names(ALERTS);
        let unknown: Vec<&String> = in_alerts.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the alerts name {unknown:?}, not exported"
        );
        for gauge in [
            "buildfund_fund_runway_seconds",
            "buildfund_pool_state",
            "buildfund_gate_snapshot_age_seconds",
            "buildfund_job_last_success_timestamp_seconds",
            "buildfund_opencollective_drift_cents",
            "buildfund_opencollective_check_status",
        ] {
            assert!(in_alerts.contains(gauge), "no alert on {gauge}");
        }
    }
);

/// Every `expr` string in the dashboard (its panels' queries).
fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
