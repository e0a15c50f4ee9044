//! Machine changes end to end: steps ingested across mid-month `[[machines.changes]]`, the
//! month's lines from `/api/v1/costs` and the funds' spending from `/api/v1/funds` to the cent
//! (figures worked out by hand in `jobs/src/books/changes_tests.rs`), the same through the
//! stored books, the price in force and the changes in the CLI table and on the report page,
//! and `check-config` naming a bad change by its key path.
use buildfund_tests::{db_test, run_cli, TestApp};
use chrono::DateTime;
use serde_json::{json, Value};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"
idle = "separate"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "rent01"
slots = 2
monthly = "120.00"
[[machines.changes]]
from = "2026-10-15"
monthly = "150.00"

[[machines]]
name = "cloud02"
slots = 4
hourly = "1.90"
[[machines.changes]]
from = "2026-10-15"
metered = "2.40"

[[machines]]
name = "grow01"
slots = 2
monthly = "93.00"
[[machines.changes]]
from = "2026-10-11"
slots = 4
"#;

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

async fn seed(app: &TestApp) {
    let step = |build: i64, jobset: &str, machine: &str, start: &str, seconds: i64| {
        json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
               "machine": machine, "start": t(start), "stop": t(start) + seconds})
    };
    let steps = [
        // rent01: before the change cuda 85,600 + 14,400 s and trunk 50,000 s; after it
        // cuda 14,400 + 185,600 s (build 2 runs across the change, 4 h on each side).
        step(1, "cuda", "rent01", "2026-10-02T00:00:00Z", 85_600),
        step(2, "cuda", "rent01", "2026-10-14T20:00:00Z", 28_800),
        step(3, "trunk", "rent01", "2026-10-05T00:00:00Z", 50_000),
        step(4, "cuda", "rent01", "2026-10-20T00:00:00Z", 185_600),
        // cloud02: hourly before, cuda 360,000 + 3,600 s, trunk 7,200 s; metered after,
        // cuda 3,600 + 36,000 s, trunk 1,800 s.
        step(10, "cuda", "cloud02", "2026-10-03T00:00:00Z", 360_000),
        step(11, "cuda", "cloud02", "2026-10-14T23:00:00Z", 7_200),
        step(12, "trunk", "cloud02", "2026-10-08T00:00:00Z", 7_200),
        step(13, "cuda", "cloud02", "2026-10-16T00:00:00Z", 36_000),
        step(14, "trunk", "cloud02", "2026-10-17T00:00:00Z", 1_800),
        // grow01: one slot busy all month, of 2 slots and then of 4.
        step(20, "cuda", "grow01", "2026-10-01T00:00:00Z", 10 * 86_400),
        step(21, "cuda", "grow01", "2026-10-11T00:00:00Z", 21 * 86_400),
    ];
    app.ingest_steps(&steps).await;
}

/// (machine, jobset or "idle", busy seconds, cents) of every line, in the answer's order.
fn lines(body: &Value) -> Vec<(String, String, i64, i64)> {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["machine"].as_str().unwrap().to_string(),
                l["jobset"].as_str().unwrap_or("idle").to_string(),
                l["busy_seconds"].as_i64().unwrap(),
                l["cost_cents"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn expect(rows: &[(&str, &str, i64, i64)]) -> Vec<(String, String, i64, i64)> {
    rows.iter()
        .map(|(m, j, b, c)| (m.to_string(), j.to_string(), *b, *c))
        .collect()
}

/// October: each machine's parts rounded on their own and summed per line.
/// rent01  cuda 224 + 560, trunk 112, idle 5083 + 7666;
/// cloud02 cuda 4798 + 2640, trunk 95 + 120, idle 58947 (none once metered);
/// grow01  cuda 1500 + 1575, idle 1500 + 4725.
fn october() -> Vec<(String, String, i64, i64)> {
    expect(&[
        ("rent01", "nixpkgs:cuda", 300_000, 784),
        ("rent01", "nixpkgs:trunk", 50_000, 112),
        ("rent01", "idle", 0, 12_749),
        ("cloud02", "nixpkgs:cuda", 403_200, 7_438),
        ("cloud02", "nixpkgs:trunk", 9_000, 215),
        ("cloud02", "idle", 0, 58_947),
        ("grow01", "nixpkgs:cuda", 2_678_400, 3_075),
        ("grow01", "idle", 0, 6_225),
    ])
}

fn fund(body: &Value, slug: &str) -> Value {
    body["funds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["slug"] == slug)
        .unwrap()
        .clone()
}

async fn check_october(app: &TestApp) {
    let costs = app.get_costs("2026-10", None).await;
    assert_eq!(lines(&costs), october(), "{costs}");
    assert_eq!(costs["total_cents"], 89_545);
    // September, before every change: the old terms, nothing ran, all idle.
    // rent01 120.00, cloud02 1.90 x 720 h = 1368.00, grow01 93.00.
    let sept = app.get_costs("2026-09", None).await;
    assert_eq!(
        lines(&sept),
        expect(&[
            ("rent01", "idle", 0, 12_000),
            ("cloud02", "idle", 0, 136_800),
            ("grow01", "idle", 0, 9_300),
        ])
    );
    // Spent per fund is the sum of its lines: cuda the cuda lines (784 + 7438 + 3075),
    // general the trunk lines (pool other) and the idle lines.
    let funds = app.get_funds("2026-10", None).await;
    let cuda = fund(&funds, "cuda");
    let general = fund(&funds, "general");
    assert_eq!(cuda["spent_cents"], 11_297, "{funds}");
    assert_eq!(general["spent_cents"], 78_248, "{funds}");
    // Balances at November 1: 100.00 - 112.97; 500.00 - 1581.00 - 782.48.
    assert_eq!(cuda["balance_cents"], -1_297);
    assert_eq!(general["balance_cents"], -186_348);
}

db_test!(
    costs_and_funds_across_machine_changes,
    CONFIG,
    |app| async move {
        seed(&app).await;
        check_october(&app).await;

        // To the instant of the changes on the 15th: only what came before them, with grow01
        // already on 4 slots for 4 days (9300 x 4/31 = 1200: cuda 300, idle 900).
        let to_date = app.get_costs("2026-10", Some("2026-10-15T00:00:00Z")).await;
        assert_eq!(
            lines(&to_date),
            expect(&[
                ("rent01", "nixpkgs:cuda", 100_000, 224),
                ("rent01", "nixpkgs:trunk", 50_000, 112),
                ("rent01", "idle", 0, 5_083),
                ("cloud02", "nixpkgs:cuda", 363_600, 4_798),
                ("cloud02", "nixpkgs:trunk", 7_200, 95),
                ("cloud02", "idle", 0, 58_947),
                ("grow01", "nixpkgs:cuda", 1_209_600, 1_800),
                ("grow01", "idle", 0, 2_400),
            ]),
            "{to_date}"
        );

        // The same figures through the stored books of the closed months.
        app.cli_ok(&["books", "rebuild"]);
        check_october(&app).await;
    }
);

db_test!(
    the_price_in_force_and_the_changes_are_shown,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let table = app.cli_ok(&["costs", "--month", "2026-10"]);
        for want in [
            "monthly 150.00",
            "metered 2.40",
            "rent01           monthly 120.00 → monthly 150.00 from 2026-10-15",
            "cloud02          hourly 1.90 → metered 2.40 from 2026-10-15",
            "grow01           2 → 4 slots from 2026-10-11",
            // grow01's capacity follows its slots: 2 x 240 h + 4 x 504 h = 2496 h; 744 h busy.
            "2496.00 h",
            "29.8 %",
        ] {
            assert!(table.contains(want), "{want:?} not in\n{table}");
        }
        // September's table: the terms then, no changes.
        let sept = app.cli_ok(&["costs", "--month", "2026-09"]);
        assert!(
            sept.contains("monthly 120.00") && sept.contains("hourly 1.90"),
            "{sept}"
        );
        assert!(!sept.contains("changes in the month"), "{sept}");

        let page = app.get("/reports/2026-10").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        for want in [
            r#"data-figure="machine.rent01.price">monthly 150.00"#,
            "monthly 120.00 → monthly 150.00 from 2026-10-15",
            r#"data-figure="machine.cloud02.price">metered 2.40"#,
            "hourly 1.90 → metered 2.40 from 2026-10-15",
            "2 → 4 slots from 2026-10-11",
        ] {
            assert!(html.contains(want), "{want:?} not on the report page");
        }
        let sept = app.get("/reports/2026-09").await.text().await.unwrap();
        assert!(sept.contains(r#"data-figure="machine.rent01.price">monthly 120.00"#));
        assert!(!sept.contains("from 2026-10-15"));
    }
);

#[test]
fn check_config_names_a_bad_change_by_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buildfund.toml");
    std::fs::write(
        &path,
        r#"ledger_start = "2026-01-01"
[[machines]]
name = "build01"
monthly = "100"
[[machines.changes]]
from = "2026-10-15"
hourly = "1.90"
[[machines.changes]]
from = "2026-10-01"
monthly = "1,5"
metered = "2"
[[machines.changes]]
from = "soon"
rent = "3"
"#,
    )
    .unwrap();
    let out = run_cli(
        &["check-config", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "6 problems",
        "machines[0].changes[1].from: 2026-10-01 is not after the previous change's from (2026-10-15)",
        "machines[0].changes[1].monthly: \"1,5\" is not a decimal amount",
        "machines[0].changes[1]: has monthly and metered prices; give at most one of monthly, hourly or metered",
        "machines[0].changes[2].rent: unknown key (expected one of: from, monthly, hourly, metered, slots)",
        "machines[0].changes[2].from: \"soon\" is not a date (YYYY-MM-DD)",
        "machines[0].changes[2]: changes nothing: give one of monthly, hourly or metered, or slots",
    ] {
        assert!(stderr.contains(want), "{want:?} not in\n{stderr}");
    }
}
