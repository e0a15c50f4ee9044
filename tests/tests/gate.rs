//! The budget gate end to end (cost-model.md, "Gate"): steps in over HTTP, decisions out of
//! `GET /api/v1/gate/...`, admin pause/override/lift with their audit, the stale answer when
//! the database goes away, and the outgoing actions (webhooks, Hydra) against local stand-ins.
//!
//! The machine `gpu01` is metered at 3600.00 EUR per busy hour, i.e. exactly 1.00 EUR per busy
//! second, so every figure below is worked out by hand from the step lengths.
use actix_web::HttpResponse;
use buildfund_jobs::clock::Clock;
use buildfund_tests::recorder::header;
use buildfund_tests::{db_test, TestApp, HYDRA_PASSWORD_ENV};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2025-01-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "1000000.00"

[[funds]]
slug = "gpu"
name = "GPU fund"
opening_balance = "1000000.00"
reserve = "50.00"

[[pools]]
slug = "gpu-tests"
fund = "gpu"
jobsets = ["nixpkgs:gpu-*"]
monthly_budget = "10.00"
warn_at = 0.8

[[pools]]
slug = "cuda"
fund = "gpu"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "gpu01"
metered = "3600.00"

[schedule]
gate_refresh = "* * * * * *"
"#;

const OPENING_CENTS: i64 = 100_000_000;

fn ts(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

pub(crate) async fn ingest(app: &TestApp, steps: &[(i64, &str, i64, i64)]) {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(build, jobset, start, stop)| {
            let (project, jobset) = jobset.split_once(':').unwrap();
            json!({"build": build, "step": 1, "project": project, "jobset": jobset,
                   "machine": "gpu01", "start": start, "stop": stop})
        })
        .collect();
    app.ingest_steps(&steps).await;
}

fn half_away(num: i128, den: i128) -> i64 {
    ((2 * num + den) / (2 * den)) as i64
}

/// The spec's projection for `spent` as of the answer's `as_of`.
fn projected_at(spent: i64, as_of: &str) -> i64 {
    let t: DateTime<Utc> = as_of.parse().unwrap();
    let start = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .unwrap();
    let next = if t.month() == 12 {
        Utc.with_ymd_and_hms(t.year() + 1, 1, 1, 0, 0, 0).unwrap()
    } else {
        Utc.with_ymd_and_hms(t.year(), t.month() + 1, 1, 0, 0, 0)
            .unwrap()
    };
    let elapsed = (t - start).num_seconds().max(3600);
    half_away(
        spent as i128 * (next - start).num_seconds() as i128,
        elapsed as i128,
    )
}

db_test!(
    the_gate_walks_open_warn_closed_as_steps_arrive,
    // The server's clock stands 40 seconds into a month.
    TestApp::builder(CONFIG).clock(Clock::manual("2026-11-01T00:00:40Z".parse().unwrap())),
    |app| async move {
        // Steps are placed at the start of the current month (the snapshot is "now").
        let now = app.clock.now();
        let month_start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert!(
            now.timestamp() - month_start >= 30,
            "the steps below are over"
        );

        // Nothing spent: open (spent 0, projected 0, balance 1,000,000.00 > reserve 50.00).
        let g = app.get_gate("nixpkgs/gpu-a100").await;
        assert_eq!(g["jobset"], "nixpkgs:gpu-a100");
        assert_eq!(g["pool"], "gpu-tests");
        assert_eq!(g["fund"], "gpu");
        assert_eq!(g["state"], "open");
        assert_eq!(g["allow"], true);
        assert_eq!(g["stale"], false);
        assert_eq!(g["spent_cents"], 0);
        assert_eq!(g["budget_cents"], 1000);
        assert_eq!(g["projected_cents"], 0);
        assert_eq!(g["fund_balance_cents"], OPENING_CENTS);
        assert_eq!(g["runway_days"], Value::Null); // no burn
        assert_eq!(
            g["reason"],
            "gpu-tests spent 0.00 of 10.00 EUR this month; projected 0.00"
        );

        // 8 busy seconds at 1.00 EUR/s = 8.00 EUR: 800 >= 0.8 * 1000, so warn whatever the
        // projection; still allowed.
        ingest(
            &app,
            &[(1, "nixpkgs:gpu-a100", month_start, month_start + 8)],
        )
        .await;
        let g = app.get_gate("nixpkgs/gpu-a100").await;
        assert_eq!(g["state"], "warn");
        assert_eq!(g["allow"], true);
        assert_eq!(g["spent_cents"], 800);
        let projected = projected_at(800, g["as_of"].as_str().unwrap());
        assert_eq!(g["projected_cents"], projected);
        assert_eq!(g["fund_balance_cents"], OPENING_CENTS - 800);
        // The projection exceeds the budget unless the month is far enough along.
        assert_eq!(
            g["reason"].as_str().unwrap(),
            format!(
                "gpu-tests spent 8.00 of 10.00 EUR this month; projected {}.{:02}; 80% of the budget is spent{}",
                projected / 100,
                projected % 100,
                if projected > 1000 { "; the projection exceeds the budget" } else { "" }
            )
        );

        // 2 more seconds: spent 10.00 >= budget 10.00: closed, refused.
        ingest(
            &app,
            &[(2, "nixpkgs:gpu-v100", month_start + 10, month_start + 12)],
        )
        .await;
        let g = app.get_gate("nixpkgs/gpu-a100").await;
        assert_eq!(g["state"], "closed");
        assert_eq!(g["allow"], false);
        assert_eq!(g["spent_cents"], 1000);
        assert_eq!(
            g["projected_cents"],
            projected_at(1000, g["as_of"].as_str().unwrap())
        );
        assert!(g["reason"]
            .as_str()
            .unwrap()
            .contains("; the budget is spent"));
        // The other pool of the same fund is unaffected by gpu-tests' budget.
        let c = app.get_gate("nixpkgs/cuda").await;
        assert_eq!(c["pool"], "cuda");
        assert_eq!(c["state"], "open");
        assert_eq!(c["budget_cents"], Value::Null);
        assert_eq!(c["fund_balance_cents"], OPENING_CENTS - 1000);
        // A jobset matching no pool: the implicit pool `other` of the default fund.
        let o = app.get_gate("nixos/trunk").await;
        assert_eq!(
            (o["pool"].as_str(), o["fund"].as_str()),
            (Some("other"), Some("general"))
        );
        assert_eq!(o["state"], "open");

        // The state changes are in the audit, in order.
        let admin = app.token("admin").await;
        let ev: Value = app
            .get_with_token("/api/v1/gate/events?pool=gpu-tests", &admin)
            .await
            .json()
            .await
            .unwrap();
        let changes: Vec<(Value, Value)> = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| e["kind"] == "state")
            .map(|e| (e["from_state"].clone(), e["to_state"].clone()))
            .collect();
        assert_eq!(
            changes,
            vec![
                (Value::Null, json!("open")),
                (json!("open"), json!("warn")),
                (json!("warn"), json!("closed"))
            ]
        );

        // The hook client: exit 1 refused, 0 allowed, 2 when nobody answers.
        let out = app.cli(&["gate", "nixpkgs:gpu-a100", "--server", &app.address]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout)
            .starts_with("refused (closed): gpu-tests spent 10.00 of 10.00 EUR"));
        let out = app.cli(&["gate", "nixpkgs:cuda", "--server", &app.address, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["pool"], "cuda");
        let out = app.cli(&[
            "gate",
            "nixpkgs:cuda",
            "--server",
            "http://127.0.0.1:9",
            "--timeout",
            "2",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let out = app.cli(&[
            "gate",
            "nixpkgs:cuda",
            "--server",
            "http://127.0.0.1:9",
            "--on-error",
            "allow",
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let out = app.cli(&[
            "gate",
            "nixpkgs:cuda",
            "--server",
            "http://127.0.0.1:9",
            "--on-error",
            "deny",
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
);

db_test!(at_answers_follow_the_spec, CONFIG, |app| async move {
    // June 2025: 30 days = 2,592,000 s. Budget 10.00 (1000 cents), warn_at 0.8.
    ingest(
        &app,
        &[(
            1,
            "nixpkgs:gpu-a100",
            ts("2025-06-01T00:00:00Z"),
            ts("2025-06-01T00:00:03Z"),
        )],
    )
    .await;
    // At June 10 00:00: spent 3.00; elapsed 9 d = 777,600 s;
    // projected = 300 * 2,592,000 / 777,600 = 1000 exactly: not > 1000, 300 < 800 -> open.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-10T00:00:00Z")
        .await;
    assert_eq!(
        (
            g["state"].as_str(),
            g["spent_cents"].as_i64(),
            g["projected_cents"].as_i64()
        ),
        (Some("open"), Some(300), Some(1000))
    );
    assert_eq!(g["as_of"], "2025-06-10T00:00:00Z");
    assert_eq!(g["fund_balance_cents"], OPENING_CENTS - 300);
    // burn: 300 cents in the last 30 days; runway floor(99,999,700 * 30 / 300) = 9,999,970.
    assert_eq!(g["runway_days"], 9_999_970);
    // At June 5 00:00: elapsed 4 d = 345,600 s; projected = 300 * 2,592,000 / 345,600 = 2250
    // > 1000 -> warn by projection.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-05T00:00:00Z")
        .await;
    assert_eq!(
        (g["state"].as_str(), g["projected_cents"].as_i64()),
        (Some("warn"), Some(2250))
    );
    assert_eq!(
        g["reason"],
        "gpu-tests spent 3.00 of 10.00 EUR this month; projected 22.50; the projection exceeds the budget"
    );
    // At June 1 00:30: elapsed 1,800 s counts as 3,600; the step [00:00:00, 00:00:03) is all
    // in; projected = 300 * 2,592,000 / 3,600 = 216,000.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-01T00:30:00Z")
        .await;
    assert_eq!(g["projected_cents"], 216_000);

    ingest(
        &app,
        &[(
            2,
            "nixpkgs:gpu-a100",
            ts("2025-06-15T00:00:00Z"),
            ts("2025-06-15T00:00:05Z"),
        )],
    )
    .await;
    // At June 20: spent 8.00 >= 0.8 * 10.00 -> warn; elapsed 19 d = 1,641,600 s;
    // projected = 800 * 2,592,000 / 1,641,600 = 1263.157… -> 1263.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-20T00:00:00Z")
        .await;
    assert_eq!(
        (
            g["state"].as_str(),
            g["allow"].as_bool(),
            g["spent_cents"].as_i64(),
            g["projected_cents"].as_i64()
        ),
        (Some("warn"), Some(true), Some(800), Some(1263))
    );
    assert_eq!(
        g["reason"],
        "gpu-tests spent 8.00 of 10.00 EUR this month; projected 12.63; 80% of the budget is spent; the projection exceeds the budget"
    );
    // Before the second step the earlier answer is unchanged: `at` is exact for its instant.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-10T00:00:00Z")
        .await;
    assert_eq!(g["spent_cents"], 300);

    ingest(
        &app,
        &[(
            3,
            "nixpkgs:gpu-a100",
            ts("2025-06-21T00:00:00Z"),
            ts("2025-06-21T00:00:02Z"),
        )],
    )
    .await;
    // At June 25: spent 10.00 >= 10.00 -> closed; elapsed 24 d = 2,073,600 s;
    // projected = 1000 * 2,592,000 / 2,073,600 = 1250 exactly.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-06-25T00:00:00Z")
        .await;
    assert_eq!(
        (
            g["state"].as_str(),
            g["allow"].as_bool(),
            g["spent_cents"].as_i64(),
            g["projected_cents"].as_i64()
        ),
        (Some("closed"), Some(false), Some(1000), Some(1250))
    );
    assert_eq!(g["fund_balance_cents"], OPENING_CENTS - 1000);
    // In July the month starts over: spent 0, open.
    let g = app
        .get_gate("nixpkgs/gpu-a100?at=2025-07-02T00:00:00Z")
        .await;
    assert_eq!(
        (g["state"].as_str(), g["spent_cents"].as_i64()),
        (Some("open"), Some(0))
    );
    // A malformed `at` is a 400.
    assert_eq!(
        app.get("/api/v1/gate/nixpkgs/gpu-a100?at=yesterday")
            .await
            .status(),
        400
    );
});

db_test!(
    admins_pause_override_and_lift_with_an_audit,
    CONFIG,
    |app| async move {
        let admin = app.token("admin").await; // named "test admin"
        let scheduler = app.token("scheduler").await;
        assert_eq!(app.get_gate("nixpkgs/cuda").await["state"], "open");

        // Only admins act; a reason is required; unknown pools are 404.
        let (s, _) = app.pause("cuda", &scheduler, json!({"reason": "x"})).await;
        assert_eq!(s, 403);
        let (s, _) = app.pause("cuda", &admin, json!({"reason": " "})).await;
        assert_eq!(s, 422);
        let (s, _) = app.pause("nope", &admin, json!({"reason": "x"})).await;
        assert_eq!(s, 404);

        // Pause: closed whatever the budget.
        let (s, g) = app
            .pause("cuda", &admin, json!({"reason": "driver upgrade"}))
            .await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(
            (g["state"].as_str(), g["allow"].as_bool()),
            (Some("closed"), Some(false))
        );
        let g = app.get_gate("nixpkgs/cuda").await;
        assert_eq!(
            (g["state"].as_str(), g["allow"].as_bool()),
            (Some("closed"), Some(false))
        );
        // The public answer names no admin (the token's name is "test admin"); the audit does.
        assert_eq!(
            g["reason"],
            "cuda spent 0.00 EUR this month (no budget); projected 0.00; paused by an admin: driver upgrade"
        );
        assert!(g["paused"].get("actor").is_none(), "{g}");
        assert!(!g.to_string().contains("test admin"), "{g}");

        // Override until a time: still closed, but allowed.
        let until = (Utc::now() + chrono::Duration::hours(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (s, _) = app
            .override_gate("cuda", &admin, json!({"reason": "release"}))
            .await;
        assert_eq!(s, 422, "an override needs an expiry");
        let (s, _) = app
            .override_gate(
                "cuda",
                &admin,
                json!({"reason": "release", "until": "2020-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, 422, "an expiry in the past");
        let (s, g) = app
            .override_gate("cuda", &admin, json!({"reason": "release", "until": until}))
            .await;
        assert_eq!(s, 200, "{g}");
        let g = app.get_gate("nixpkgs/cuda").await;
        assert_eq!(
            (g["state"].as_str(), g["allow"].as_bool()),
            (Some("closed"), Some(true))
        );
        assert_eq!(g["override"]["until"], json!(until));
        assert!(g["reason"].as_str().unwrap().ends_with(&format!(
            "; allowed by an admin's override until {until}: release"
        )));

        // Lift: pause and override end together; open again.
        let (s, g) = app.lift("cuda", &admin, json!({"reason": "done"})).await;
        assert_eq!(s, 200, "{g}");
        let g = app.get_gate("nixpkgs/cuda").await;
        assert_eq!(
            (g["state"].as_str(), g["allow"].as_bool()),
            (Some("open"), Some(true))
        );
        let (s, _) = app.lift("cuda", &admin, json!({"reason": "again"})).await;
        assert_eq!(s, 409, "nothing left to lift");

        // The audit: who, when, why, in order.
        let res = app.get("/api/v1/gate/events").await;
        assert_eq!(res.status(), 401, "the audit needs a token");
        let ev: Value = app
            .get_with_token("/api/v1/gate/events?pool=cuda", &scheduler)
            .await
            .json()
            .await
            .unwrap();
        let rows: Vec<(String, Option<String>, String)> = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| {
                let what = match e["kind"].as_str().unwrap() {
                    "state" => format!("state {}", e["to_state"].as_str().unwrap()),
                    k => k.to_string(),
                };
                (
                    what,
                    e["actor"].as_str().map(str::to_string),
                    e["reason"].as_str().unwrap().chars().take(20).collect(),
                )
            })
            .collect();
        let kinds: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|(w, a, _)| (w.as_str(), a.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("state open", None),
                ("pause", Some("test admin")),
                ("state closed", None),
                ("override", Some("test admin")),
                ("lift", Some("test admin")),
                ("state open", None),
            ]
        );
        assert_eq!(rows[1].2, "driver upgrade");
        // An override in force ended by `at` in the past: the past is not rewritten.
        let g = app.get_gate("nixpkgs/cuda?at=2025-06-01T00:00:00Z").await;
        assert_eq!(g["state"], "open");
    }
);

db_test!(
    the_gate_answers_stale_without_its_database,
    CONFIG,
    |app| async move {
        let now = Utc::now();
        let start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        ingest(&app, &[(1, "nixpkgs:gpu-a100", start, start + 9)]).await;
        let before = app.get_gate("nixpkgs/gpu-a100").await;
        assert_eq!(
            (before["state"].as_str(), before["spent_cents"].as_i64()),
            (Some("warn"), Some(900))
        );
        assert_eq!(before["stale"], false);

        app.take_database_away().await;
        // The refresh loop runs every second here (schedule.gate_refresh); a failed refresh marks
        // the snapshot stale (connect and acquire time out after 5 s).
        let mut g = Value::Null;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            g = app.get_gate("nixpkgs/gpu-a100").await; // asserts 200
            if g["stale"] == true {
                break;
            }
        }
        assert_eq!(g["stale"], true, "{g}");
        assert_eq!(
            (
                g["state"].as_str(),
                g["spent_cents"].as_i64(),
                g["allow"].as_bool()
            ),
            (Some("warn"), Some(900), Some(true))
        );
        // Many answers in a row, all 200 and quick.
        let t0 = std::time::Instant::now();
        for _ in 0..50 {
            assert_eq!(app.get_gate("nixpkgs/cuda").await["stale"], true);
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        // `at` needs the database: 503, never a wrong figure.
        assert_eq!(
            app.get("/api/v1/gate/nixpkgs/cuda?at=2025-06-01T00:00:00Z")
                .await
                .status(),
            503
        );
    }
);

/// The receiver fails the first delivery of each event and accepts the second.
fn fail_first_delivery(_method: &str, _path: &str, n: usize) -> HttpResponse {
    if n == 1 {
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::Ok().finish()
    }
}

db_test!(
    webhooks_are_signed_and_retried,
    TestApp::builder(CONFIG).webhook_receiver("s3cret", fail_first_delivery),
    |app| async move {
        let seen = app.webhooks().seen();
        let admin = app.token("admin").await;
        // The first refresh records the pool open; the pause then closes it.
        cuda_events(&app, &admin, |k| k.iter().any(|k| k.0 == "state")).await;
        let (s, _) = app
            .pause("cuda", &admin, json!({"reason": "maintenance"}))
            .await;
        assert_eq!(s, 200);
        let got = app
            .webhooks()
            .wait_for(|r| r.3.contains("\"to\":\"closed\"") && r.3.contains("\"pool\":\"cuda\""))
            .await;
        // Delivered twice: the 500 was retried after the backoff.
        let mut got = got;
        for _ in 0..40 {
            if got.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            got = seen
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.3.contains("\"to\":\"closed\"") && r.3.contains("\"pool\":\"cuda\""))
                .cloned()
                .collect();
        }
        assert_eq!(got.len(), 2, "{got:?}");
        let r = &got[1];
        assert_eq!((r.0.as_str(), r.1.as_str()), ("POST", "/hook"));
        let body: Value = serde_json::from_str(&r.3).unwrap();
        assert_eq!(body["event"], "gate.state_changed");
        assert_eq!(
            (body["from"].as_str(), body["to"].as_str()),
            (Some("open"), Some("closed"))
        );
        assert_eq!(body["gate"]["allow"], false);
        // An admin's name (the token's, "test admin") is not sent out.
        assert!(!r.3.contains("test admin"), "{}", r.3);
        assert!(body["gate"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("paused by an admin: maintenance"));
        assert_eq!(header(r, "content-type"), Some("application/json"));
        assert_eq!(
            header(r, "x-buildfund-signature").unwrap(),
            buildfund_jobs::gate::webhooks::signature("s3cret", r.3.as_bytes())
        );
        // Both attempts carry the same delivery id.
        assert_eq!(
            header(&got[0], "x-buildfund-delivery"),
            header(r, "x-buildfund-delivery")
        );
    }
);

fn hydra_respond(method: &str, path: &str, _n: usize) -> HttpResponse {
    let jobset = |name: &str| {
        json!({"name": name, "project": "x", "enabled": 1, "visible": true, "enableemail": false,
               "type": 0, "nixexprinput": "src", "nixexprpath": "release.nix", "checkinterval": 300,
               "schedulingshares": 100, "keepnr": 3, "emailoverride": "", "description": "",
               "inputs": {"src": {"type": "git", "value": "https://example.org/x", "emailresponsible": false}}})
    };
    match (method, path) {
        ("POST", "/login") => HttpResponse::Ok()
            .insert_header(("set-cookie", "hydra_session=abc123; Path=/; HttpOnly"))
            .json(json!({"username": "buildfund"})),
        ("GET", "/jobset/nixpkgs/cuda") => HttpResponse::Ok().json(jobset("cuda")),
        ("GET", "/jobset/decl/cuda-x") => HttpResponse::Ok().json(jobset("cuda-x")),
        ("PUT", "/jobset/nixpkgs/cuda") => HttpResponse::Ok().json(json!({"redirect": "..."})),
        ("PUT", "/jobset/decl/cuda-x") => HttpResponse::Forbidden()
            .json(json!({"error": "can't modify jobset of declarative project"})),
        ("GET", p) if p.starts_with("/api/queue") => HttpResponse::Ok().json(json!([
            {"id": 11, "project": "nixpkgs", "jobset": "cuda", "finished": 0},
            {"id": 12, "project": "nixpkgs", "jobset": "trunk", "finished": 0},
            {"id": 13, "project": "decl", "jobset": "cuda-x", "finished": 0}
        ])),
        ("POST", p) if p.starts_with("/build/") => HttpResponse::Ok().finish(),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// `CONFIG` with the `cuda` pool also covering a declarative project's jobsets.
fn with_declarative_jobsets() -> String {
    CONFIG.replace(
        "jobsets = [\"nixpkgs:cuda*\"]",
        "jobsets = [\"nixpkgs:cuda*\", \"decl:*\"]",
    )
}

db_test!(
    hydra_jobsets_follow_the_pool,
    TestApp::builder(with_declarative_jobsets()).hydra(hydra_respond),
    |app| async move {
        let hydra = app.hydra();
        let url = hydra.url();
        let seen = hydra.seen();
        // The jobsets buildfund knows come from the steps it has seen.
        ingest(
            &app,
            &[
                (
                    1,
                    "nixpkgs:cuda",
                    ts("2025-06-01T00:00:00Z"),
                    ts("2025-06-01T00:00:01Z"),
                ),
                (
                    2,
                    "decl:cuda-x",
                    ts("2025-06-01T00:00:00Z"),
                    ts("2025-06-01T00:00:01Z"),
                ),
            ],
        )
        .await;
        let admin = app.token("admin").await;
        let (s, _) = app
            .pause("cuda", &admin, json!({"reason": "over budget"}))
            .await;
        assert_eq!(s, 200);

        // GET then PUT the whole jobset with enabled = 0, Referer set, logged in.
        let put = hydra
            .wait_for(|r| r.0 == "PUT" && r.1 == "/jobset/nixpkgs/cuda")
            .await;
        let body: Value = serde_json::from_str(&put[0].3).unwrap();
        assert_eq!(body["enabled"], 0);
        assert_eq!(body["nixexprpath"], "release.nix");
        assert_eq!(body["visible"], true);
        assert!(
            body.get("enableemail").is_none(),
            "a false flag is left out: {body}"
        );
        assert_eq!(
            header(&put[0], "referer"),
            Some(format!("{url}/jobset/nixpkgs/cuda").as_str())
        );
        assert_eq!(header(&put[0], "cookie"), Some("hydra_session=abc123"));
        let login = hydra.wait_for(|r| r.0 == "POST" && r.1 == "/login").await;
        assert_eq!(header(&login[0], "referer"), Some(url));
        // Queued builds of the pool's jobsets are cancelled, others left alone.
        hydra
            .wait_for(|r| r.0 == "POST" && r.1 == "/build/11/cancel")
            .await;
        hydra
            .wait_for(|r| r.0 == "POST" && r.1 == "/build/13/cancel")
            .await;
        assert!(!seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.1 == "/build/12/cancel"));

        // The declarative project's 403 is recorded and shown in the audit.
        let kinds = cuda_events(&app, &admin, |k| k.iter().any(|k| k.0 == "hydra_cancelled")).await;
        assert!(
            kinds.iter().any(|k| k.0 == "hydra_refused"
                && k.1.contains("decl:cuda-x")
                && k.1.contains("declarative")),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k.0 == "hydra_disabled"
                && k.1 == "disabled nixpkgs:cuda on Hydra (enabled was 1)"),
            "{kinds:?}"
        );

        // Opening again restores the previous value.
        let (s, _) = app.lift("cuda", &admin, json!({"reason": "funded"})).await;
        assert_eq!(s, 200);
        let puts = hydra
            .wait_for(|r| {
                r.0 == "PUT" && r.1 == "/jobset/nixpkgs/cuda" && r.3.contains("\"enabled\":1")
            })
            .await;
        assert_eq!(puts.len(), 1);
    }
);

/// A Hydra that knows every jobset it is asked about.
pub(crate) fn hydra_any_jobset(method: &str, path: &str, _n: usize) -> HttpResponse {
    match (method, path) {
        ("POST", "/login") => HttpResponse::Ok()
            .insert_header(("set-cookie", "hydra_session=abc123; Path=/; HttpOnly"))
            .json(json!({"username": "buildfund"})),
        ("GET", p) if p.starts_with("/jobset/") => {
            HttpResponse::Ok().json(json!({"name": "x", "enabled": 1, "visible": true}))
        }
        ("PUT", p) if p.starts_with("/jobset/") => HttpResponse::Ok().json(json!({})),
        ("GET", p) if p.starts_with("/api/queue") => HttpResponse::Ok().json(json!([])),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// `CONFIG` with the `cuda` pool also covering the projects `dots` and `..`.
fn with_dot_projects() -> String {
    // `*` stops at `/` (a name with a slash slips into no pool through it), so a pattern with
    // `**` puts the slashed name in the pool: its path must still be one encoded segment.
    CONFIG.replace(
        "jobsets = [\"nixpkgs:cuda*\"]",
        "jobsets = [\"nixpkgs:cuda*\", \"nixpkgs:cuda/**\", \"dots:*\", \"..:*\"]",
    )
}

/// The `cuda` pool's audit as (kind, reason), newest first, polled until `until` holds (up to
/// 8 s).
pub(crate) async fn cuda_events(
    app: &TestApp,
    admin: &str,
    until: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut kinds = Vec::new();
    for _ in 0..80 {
        let ev: Value = app
            .get_with_token("/api/v1/gate/events?pool=cuda", admin)
            .await
            .json()
            .await
            .unwrap();
        kinds = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if until(&kinds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kinds
}

/// Stores jobsets as build steps would store them (an ingest-side check may refuse them first).
pub(crate) async fn store_jobsets(app: &TestApp, names: &[(&str, &str)]) {
    use buildfund_entity::jobsets;
    use sea_orm::{ActiveModelTrait, Set};
    for (project, name) in names {
        jobsets::ActiveModel {
            project: Set(project.to_string()),
            name: Set(name.to_string()),
            first_seen: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
}

// Jobset names from build steps are not trusted: each goes out as one encoded path segment
// under `/jobset/<project>/`, and a name that cannot (`.`, `..`) is refused with nothing sent.
db_test!(
    hostile_jobset_names_stay_one_segment,
    TestApp::builder(with_dot_projects()).hydra(hydra_any_jobset),
    |app| async move {
        store_jobsets(
            &app,
            &[
                ("nixpkgs", "cuda"),
                ("nixpkgs", "cuda/../../project/nixpkgs"),
                ("nixpkgs", "cuda?x=1#frag"),
                ("nixpkgs", "cuda%2F.."),
                ("dots", ".."),
                ("dots", "."),
                ("..", "cuda"),
            ],
        )
        .await;
        let admin = app.token("admin").await;
        let (s, _) = app
            .pause("cuda", &admin, json!({"reason": "hostile names"}))
            .await;
        assert_eq!(s, 200);
        let kinds = cuda_events(&app, &admin, |k| {
            k.iter().filter(|k| k.0 == "hydra_disabled").count() >= 4
                && k.iter().filter(|k| k.0 == "hydra_refused").count() >= 3
        })
        .await;
        for (project, name) in [("dots", ".."), ("dots", "."), ("..", "cuda")] {
            assert!(
                kinds.iter().any(|k| k.0 == "hydra_refused"
                    && k.1.contains(&format!("{project:?}:{name:?}"))
                    && k.1.contains("nothing was requested")),
                "{project}:{name} is refused: {kinds:?}"
            );
        }
        let disabled = kinds.iter().filter(|k| k.0 == "hydra_disabled").count();
        assert_eq!(disabled, 4, "{kinds:?}");
        let seen = app.hydra().seen().lock().unwrap().clone();
        let mut jobset_paths = Vec::new();
        for (method, path, _, _) in &seen {
            if path == "/login"
                || path.starts_with("/api/queue?")
                || path.starts_with("/api/jobsets?")
            {
                continue;
            }
            let rest = path
                .strip_prefix("/jobset/")
                .unwrap_or_else(|| panic!("{method} {path} is outside /jobset/"));
            assert!(!rest.contains(['?', '#']), "{method} {path}");
            let segments: Vec<&str> = rest.split('/').collect();
            assert_eq!(segments.len(), 2, "{method} {path}");
            assert_eq!(segments[0], "nixpkgs", "{method} {path}");
            jobset_paths.push(segments[1].to_string());
        }
        for encoded in [
            "cuda",
            "cuda%2F..%2F..%2Fproject%2Fnixpkgs",
            "cuda%3Fx=1%23frag",
            "cuda%252F..",
        ] {
            assert_eq!(
                jobset_paths.iter().filter(|p| *p == encoded).count(),
                2,
                "GET then PUT of {encoded}: {jobset_paths:?}"
            );
        }
        assert!(!seen.iter().any(|r| r.1.starts_with("/jobset/project/")));
    }
);

// A Hydra answering its login with a 307 to another origin (the real stand-in): the redirect
// is not followed, so the other listener never receives the password, and the failure is
// recorded.
db_test!(
    hydra_login_is_not_redirected_elsewhere,
    TestApp::builder(CONFIG)
        .hydra(hydra_any_jobset)
        .behind_redirector(),
    |app| async move {
        store_jobsets(&app, &[("nixpkgs", "cuda")]).await;
        let password = std::env::var(HYDRA_PASSWORD_ENV).unwrap();
        let admin = app.token("admin").await;
        let (s, _) = app
            .pause("cuda", &admin, json!({"reason": "redirects"}))
            .await;
        assert_eq!(s, 200);
        let login = app
            .redirector()
            .wait_for(|r| r.0 == "POST" && r.1 == "/login")
            .await;
        let body: Value = serde_json::from_str(&login[0].3).unwrap();
        assert_eq!(body["password"], password.as_str(), "{}", login[0].3);
        let kinds = cuda_events(&app, &admin, |k| k.iter().any(|k| k.0 == "hydra_failed")).await;
        assert!(
            kinds
                .iter()
                .any(|k| k.0 == "hydra_failed" && k.1.contains("another origin")),
            "{kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let other_seen = app.hydra().seen().lock().unwrap();
        assert!(
            !other_seen
                .iter()
                .any(|r| r.3.contains(&password) || header(r, "cookie").is_some()),
            "{other_seen:?}"
        );
        assert!(other_seen.is_empty(), "{other_seen:?}");
    }
);
