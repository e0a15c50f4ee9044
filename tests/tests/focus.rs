//! The FOCUS 1.0 export end to end: `GET /api/v1/costs/focus` and `buildfund export focus`
//! against `GET /api/v1/costs` (a row per line, to the cent), then the FinOps Foundation's
//! `focus-validator` (PyPI `focus-validator==1.0.0` with `multimethod<2`) on the export,
//! failing on any rule that fails or errors.
//!
//! The validator is `FOCUS_VALIDATOR`, else the project's virtual environment `.venv`, else
//! PATH; under `CI` its absence is a failure, elsewhere the validation is skipped with a message
//! (`scripts/test` installs it in `.venv` from `tests/requirements.txt`).
use buildfund_jobs::money::parse_cents;
use buildfund_tests::{db_test, TestApp};
use chrono::DateTime;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"
idle = "separate"
public_url = "https://fund.example.org"

[[funds]]
slug = "general"
name = "General fund"
default = true

[[funds]]
slug = "cuda"
name = "CUDA builds"

[[funds]]
slug = "rocm"
name = "ROCm builds"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[pools]]
slug = "rocm"
fund = "rocm"
jobsets = ["nixpkgs:rocm*"]

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"

[[machines]]
name = "gpu01"
hourly = "0.45"
idle_fund = "cuda"

[[machines]]
name = "meter01"
metered = "2.40"

# A monthly machine whose rent rises in the middle of October.
[[machines]]
name = "build04"
monthly = "200.00"
idle_fund = "rocm"

[[machines.changes]]
from = "2026-10-16"
monthly = "260.00"
"#;

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

/// The build steps: (build, jobset of project nixpkgs, machine, start, stop).
#[rustfmt::skip]
const STEPS: &[(i64, &str, &str, &str, &str)] = &[
    (1, "cuda", "build03", "2026-10-05T00:00:00Z", "2026-10-05T10:00:00Z"),
    (2, "rocm", "build03", "2026-10-06T00:00:00Z", "2026-10-06T07:30:00Z"),
    (3, "trunk", "build03", "2026-10-07T00:00:00Z", "2026-10-07T03:20:00Z"),
    (4, "cuda-tests", "gpu01", "2026-10-08T00:00:00Z", "2026-10-08T05:00:00Z"),
    (5, "rocm", "meter01", "2026-10-09T00:00:00Z", "2026-10-09T01:10:00Z"),
    // An unconfigured machine: unpriced, so in no cost line and no FOCUS row.
    (6, "cuda", "jetson-1", "2026-10-10T00:00:00Z", "2026-10-10T01:00:00Z"),
    (7, "cuda", "build03", "2026-11-03T00:00:00Z", "2026-11-03T08:00:00Z"),
    (8, "rocm", "gpu01", "2026-11-04T00:00:00Z", "2026-11-04T02:00:00Z"),
    (9, "trunk", "meter01", "2026-11-20T00:00:00Z", "2026-11-20T01:00:00Z"),
    // build04 before and after its price change.
    (10, "cuda", "build04", "2026-10-10T00:00:00Z", "2026-10-10T20:00:00Z"),
    (11, "trunk", "build04", "2026-10-20T00:00:00Z", "2026-10-21T06:00:00Z"),
];

async fn seed(app: &TestApp) {
    let steps: Vec<Value> = STEPS
        .iter()
        .map(|(build, jobset, machine, start, stop)| {
            json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
                   "machine": machine, "start": t(start), "stop": t(stop)})
        })
        .collect();
    app.ingest_steps(&steps).await;
}

/// The CSV's rows as maps from column to cell, with its header.
fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.expect("a CSV record");
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

fn cents(cell: &str) -> i64 {
    parse_cents(cell).unwrap_or_else(|e| panic!("{e}"))
}

/// The export of `month` (at `at`) over HTTP, checked row by row against `/api/v1/costs`:
/// one row per line in its order, the amounts exact, the rows summing to `total_cents`.
/// Returns the CSV and the number of rows.
async fn export_matches_costs(app: &TestApp, month: &str, at: Option<&str>) -> (Vec<u8>, usize) {
    let costs = app.get_costs(month, at).await;
    let mut path = format!("/api/v1/costs/focus?month={month}");
    if let Some(at) = at {
        path.push_str(&format!("&at={at}"));
    }
    let res = app.get(&path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"buildfund-focus-{month}.csv\"")
    );
    let body = res.bytes().await.unwrap().to_vec();
    let (_, rows) = read_csv(&body);
    let lines = costs["lines"].as_array().unwrap();
    assert_eq!(rows.len(), lines.len(), "a row per cost line of {month}");
    let mut sum = 0;
    for (row, line) in rows.iter().zip(lines) {
        let cost = line["cost_cents"].as_i64().unwrap();
        for col in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] {
            assert_eq!(cents(&row[col]), cost, "{col} of {line}");
        }
        assert_eq!(cents(&row["ListUnitPrice"]), cost);
        assert_eq!(row["PricingQuantity"], "1.0");
        sum += cents(&row["BilledCost"]);
        assert_eq!(row["ResourceId"], line["machine"].as_str().unwrap());
        let idle = line["idle"] == true;
        let service = line["jobset"].as_str().unwrap_or("idle");
        assert_eq!(row["ServiceName"], service);
        assert_eq!(row["SubAccountId"], line["fund"].as_str().unwrap());
        assert_eq!(row["x_Fund"], line["fund"].as_str().unwrap());
        assert_eq!(row["x_Pool"], line["pool"].as_str().unwrap_or(""));
        assert_eq!(row["x_BusySeconds"], line["busy_seconds"].to_string());
        assert_eq!(
            row["ConsumedQuantity"],
            format!("{}.0", line["busy_seconds"])
        );
        assert_eq!(row["BillingCurrency"], "EUR");
        assert_eq!(row["ChargeCategory"], "Usage");
        assert_eq!(row["ChargeClass"], "");
        let freq = if idle { "Recurring" } else { "Usage-Based" };
        assert_eq!(row["ChargeFrequency"], freq);
        let tags: Value = serde_json::from_str(&row["Tags"]).expect("Tags is JSON");
        assert_eq!(
            tags,
            json!({"pool": line["pool"], "fund": line["fund"], "jobset": line["jobset"]})
        );
    }
    assert_eq!(
        sum,
        costs["total_cents"].as_i64().unwrap(),
        "rows sum to total_cents"
    );
    (body, rows.len())
}

db_test!(
    focus_export_is_the_cost_lines_and_valid,
    CONFIG,
    |app| async move {
        seed(&app).await;

        // October, closed: idle lines of build03, build04 and gpu01, none of the metered
        // meter01; lines of all three funds; build04's rent rises on the 16th.
        let (october, n) = export_matches_costs(&app, "2026-10", None).await;
        let (header, rows) = read_csv(&october);
        assert_eq!(header, buildfund_jobs::report::focus::FOCUS_COLUMNS);
        assert_eq!(n, 10, "7 jobset lines and 3 idle lines");
        let idle: Vec<_> = rows.iter().filter(|r| r["ServiceName"] == "idle").collect();
        let mut idle_of: Vec<(&str, &str)> = idle
            .iter()
            .map(|r| (r["ResourceId"].as_str(), r["SubAccountId"].as_str()))
            .collect();
        idle_of.sort();
        assert_eq!(
            idle_of,
            [
                ("build03", "general"),
                ("build04", "rocm"),
                ("gpu01", "cuda")
            ]
        );
        // build04: 200.00 × 15/31 days = 96.774… → 96.77, then 260.00 × 16/31 = 134.193… →
        // 134.19, each part rounded on its own: 230.96 over its jobsets' rows and its idle row.
        let build04: i64 = rows
            .iter()
            .filter(|r| r["ResourceId"] == "build04")
            .map(|r| cents(&r["BilledCost"]))
            .sum();
        assert_eq!(build04, 23096);
        let mut funds: Vec<&str> = rows.iter().map(|r| r["SubAccountId"].as_str()).collect();
        funds.sort();
        funds.dedup();
        assert_eq!(funds, ["cuda", "general", "rocm"]);
        for r in &rows {
            assert_eq!(r["BillingPeriodStart"], "2026-10-01T00:00:00Z");
            assert_eq!(r["BillingPeriodEnd"], "2026-11-01T00:00:00Z");
            assert_eq!(r["ChargePeriodStart"], "2026-10-01T00:00:00Z");
            assert_eq!(r["ChargePeriodEnd"], "2026-11-01T00:00:00Z");
            assert_eq!(r["BillingAccountId"], "https://fund.example.org");
            assert_eq!(r["ProviderName"], "buildfund");
        }
        assert!(!rows.iter().any(|r| r["ResourceId"] == "jetson-1"));

        // The CLI writes the same bytes.
        let out = app.dir.path().join("focus-2026-10.csv");
        let printed = app.cli_ok(&[
            "export",
            "focus",
            "--month",
            "2026-10",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(printed.trim(), out.to_str().unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), october);
        assert_eq!(
            app.cli_ok(&["export", "focus", "--month", "2026-10"])
                .as_bytes(),
            october
        );

        // November to the 15th: the charge period ends at `at`, the billing period is the month.
        let at = "2026-11-15T00:00:00Z";
        let (november, n) = export_matches_costs(&app, "2026-11", Some(at)).await;
        assert_eq!(
            n, 5,
            "build03's cuda and idle, gpu01's rocm and idle, build04's idle; meter01 ran later"
        );
        for r in read_csv(&november).1 {
            assert_eq!(r["ChargePeriodStart"], "2026-11-01T00:00:00Z");
            assert_eq!(r["ChargePeriodEnd"], at);
            assert_eq!(r["BillingPeriodEnd"], "2026-12-01T00:00:00Z");
        }

        for (name, csv) in [("2026-10", &october), ("2026-11", &november)] {
            validate(&app.dir.path().join(format!("focus-{name}")), csv);
        }

        // The same checks as /api/v1/costs.
        assert_eq!(
            app.get("/api/v1/costs/focus?month=2026-13").await.status(),
            400
        );
        let res = app
            .get("/api/v1/costs/focus?month=2026-10&at=2999-01-01T00:00:00Z")
            .await;
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        assert!(err["error"].as_str().unwrap().starts_with("at: "), "{err}");
    }
);

/// Runs focus-validator on `csv` (files under `stem`); fails the test on any failed or
/// errored rule.
fn validate(stem: &Path, csv: &[u8]) {
    let Some(validator) = find_validator() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "focus-validator not found (FOCUS_VALIDATOR, .venv, PATH): scripts/test installs it in .venv"
        );
        eprintln!(
            "focus-validator not found (FOCUS_VALIDATOR, .venv, PATH): FOCUS validation skipped \
             (scripts/test installs it in the project's .venv)"
        );
        return;
    };
    let data = stem.with_extension("validator.csv");
    let report = stem.with_extension("validator.xml");
    std::fs::write(&data, csv).unwrap();
    // It reads its list of currency codes from the relative path
    // focus_validator/utils/currency_codes.csv: it must run beside its package.
    let out = Command::new(&validator)
        .current_dir(validator_home(&validator))
        .args(["--validate-version", "1.0", "--output-type", "unittest"])
        .arg("--data-file")
        .arg(&data)
        .arg("--output-destination")
        .arg(&report)
        .output()
        .expect("run focus-validator");
    let xml = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        out.status.success() && !xml.is_empty(),
        "focus-validator failed to run: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let attr = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let start = xml
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {xml}"))
            + key.len();
        xml[start..].split('"').next().unwrap().parse().unwrap()
    };
    let failed: Vec<&str> = xml
        .split("<testcase name=\"")
        .skip(1)
        .filter(|case| {
            let case = case.split("</testcase>").next().unwrap();
            case.contains("<failure") || case.contains("<error")
        })
        .map(|case| case.split('"').next().unwrap())
        .collect();
    assert!(
        attr("failures") == 0 && attr("errors") == 0 && failed.is_empty(),
        "focus-validator: rules failed on {}: {failed:?}\n{xml}",
        data.display()
    );
    assert!(
        attr("tests") >= 100,
        "focus-validator ran {} rules",
        attr("tests")
    );
    eprintln!(
        "focus-validator: all {} rules passed on {}",
        attr("tests"),
        data.display()
    );
}

/// The validator: `FOCUS_VALIDATOR` (set by `scripts/test`), else the one `scripts/test`
/// installed in the project's virtual environment `.venv`, else one on `PATH`.
fn find_validator() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FOCUS_VALIDATOR") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/focus-validator");
    if venv.is_file() {
        return Some(venv);
    }
    on_path("focus-validator")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The directory holding the `focus_validator` package: asked of the Python the script runs
/// with (its `#!` line, or `python3` behind a wrapper such as pyenv's shims).
fn validator_home(script: &Path) -> PathBuf {
    let first = std::fs::read_to_string(script).unwrap_or_default();
    let shebang = first.lines().next().unwrap_or("").trim_start_matches("#!");
    let python = match shebang.split_whitespace().next() {
        Some(p)
            if Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("python")) =>
        {
            p
        }
        _ => "python3",
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import os, focus_validator; print(os.path.dirname(os.path.dirname(os.path.abspath(focus_validator.__file__))))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(
        out.status.success(),
        "{python} cannot import focus_validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
