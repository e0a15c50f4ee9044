//! The bounds on what a caller asks for (`at`, `month`, `limit`), checked in the domain
//! (`buildfund_jobs::bounds`): every public figure route in the router's own list
//! (`buildfund_api::routes::PUBLIC_FIGURES`, the list `routes::configure` registers from), so a
//! route added to it is covered here without editing this file, is sent far-future, far-past and
//! malformed values and must refuse each at once, naming the field; the command line refuses the
//! same values naming its flag.
use buildfund_api::routes::{Bounded, PUBLIC_FIGURES};
use buildfund_jobs::calendar::{parse_rfc3339, Month};
use buildfund_jobs::clock::Clock;
use buildfund_tests::{db_test, TestApp};
use chrono::Utc;
use serde_json::Value;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "100.00"

[[pools]]
slug = "trunk"
fund = "general"
jobsets = ["nixpkgs:*"]

[[machines]]
name = "build01"
monthly = "300.00"
"#;

/// A refusal must come back long before the books of a far instant could be walked (the
/// unchecked `plans?at=9999-…` took 15.6 s on a three-month ledger, release build).
const QUICK: Duration = Duration::from_secs(5);

/// The route's path with each `{segment}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "nixpkgs" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn field(param: Bounded) -> &'static str {
    match param {
        Bounded::At => "at",
        Bounded::Month => "month",
        Bounded::Limit => "limit",
    }
}

/// The values of a parameter each route must refuse, and whether each is malformed (400, or
/// 422 where the route documents every bad parameter as 422) or out of bounds (422).
fn refused_values(param: Bounded) -> Vec<(String, bool)> {
    let next = Month::of(Utc::now()).next().next();
    match param {
        Bounded::At => vec![
            ("9999-12-31T23:59:59Z".into(), false),
            ("2999-01-01T00:00:00Z".into(), false),
            ("0001-01-01T00:00:00Z".into(), false),
            ("1969-12-31T23:59:59Z".into(), false),
            ("yesterday".into(), true),
            ("2026-02-30T00:00:00Z".into(), true),
        ],
        Bounded::Month => vec![
            ("9999-12".into(), false),
            (next.to_string(), false),
            ("1969-12".into(), false),
            ("2026-13".into(), true),
            ("October".into(), true),
        ],
        Bounded::Limit => vec![
            ("0".into(), false),
            ("10001".into(), false),
            ("99999999999999999999".into(), true),
        ],
    }
}

db_test!(
    every_public_figure_refuses_out_of_bounds_values_naming_the_field,
    CONFIG,
    |app| async move {
        assert!(
            PUBLIC_FIGURES.len() >= 7,
            "the router's list of public figures"
        );
        assert!(PUBLIC_FIGURES.iter().any(|r| r.path == "/api/v1/plans"));
        for route in PUBLIC_FIGURES {
            let path = concrete(route.path);
            // The route is there and answers anonymously without parameters.
            let res = app.get(&path).await;
            assert_eq!(res.status(), 200, "GET {path}");
            for &param in route.params {
                let name = field(param);
                for (value, malformed) in refused_values(param) {
                    let url = format!("{path}?{name}={value}");
                    let started = Instant::now();
                    let res = app.get(&url).await;
                    let took = started.elapsed();
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    if malformed {
                        assert!(status == 400 || status == 422, "GET {url}: {status} {body}");
                    } else {
                        assert_eq!(status, 422, "GET {url}: {body}");
                    }
                    let error = body["error"].as_str().unwrap_or("");
                    assert!(error.starts_with(&format!("{name}: ")), "GET {url}: {body}");
                    assert_eq!(body["details"][0]["field"], name, "GET {url}: {body}");
                    assert!(took < QUICK, "GET {url} took {took:?}");
                }
            }
        }
        // The case that was a 15-second 200.
        let started = Instant::now();
        let res = app.get("/api/v1/plans?at=9999-12-31T23:59:59Z").await;
        assert_eq!(res.status(), 422);
        assert!(started.elapsed() < QUICK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"],
            "at: 9999-12-31T23:59:59Z is later than now (the books of the future are not known)"
        );
        // The edges are accepted: the epoch, and the current month.
        let this_month = Month::of(Utc::now());
        for url in [
            "/api/v1/plans?at=1970-01-01T00:00:00Z".to_string(),
            format!("/api/v1/costs?month={this_month}"),
            "/api/v1/costs/jobs?month=2026-01&limit=10000".to_string(),
        ] {
            assert_eq!(app.get(&url).await.status(), 200, "{url}");
        }
    }
);

db_test!(
    the_command_line_refuses_the_same_values_naming_the_flag,
    CONFIG,
    |app| async move {
        let next = Month::of(Utc::now()).next().next().to_string();
        let this_month = Month::of(Utc::now()).to_string();
        let refused = |args: &[&str], flag: &str| {
            let out = app.cli(args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "buildfund {args:?} succeeded");
            assert!(err.contains(flag), "buildfund {args:?}: {err}");
        };
        for at in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "yesterday"] {
            refused(&["costs", "--at", at], "--at: ");
            refused(&["plans", "--at", at], "--at: ");
            refused(
                &["export", "focus", "--month", &this_month, "--at", at],
                "--at: ",
            );
        }
        for month in [next.as_str(), "1969-12", "2026-13"] {
            refused(&["costs", "--month", month], "--month ");
            refused(&["export", "focus", "--month", month], "--month ");
        }
        refused(&["costs", "--jobs", "--limit", "0"], "--limit: ");
        // In bounds, they answer.
        app.cli_ok(&["plans", "--at", "2026-02-01T00:00:00Z"]);
        app.cli_ok(&["costs", "--month", "2026-01"]);
    }
);

/// Not a storage test: the list the test above walks is the router's.
#[test]
fn the_list_names_each_route_once() {
    let mut paths: Vec<&str> = PUBLIC_FIGURES.iter().map(|r| r.path).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), PUBLIC_FIGURES.len());
    assert!(PUBLIC_FIGURES.iter().all(|r| !r.params.is_empty()));
}

db_test!(
    the_bounds_follow_the_servers_clock,
    TestApp::builder(CONFIG).clock(Clock::manual(
        parse_rfc3339("2026-03-15T12:00:00Z").unwrap()
    )),
    |app| async move {
        // The server's clock, not the calendar's, says what the future is.
        let status = |url: &'static str| {
            let app = app.clone();
            async move { app.get(url).await.status().as_u16() }
        };
        assert_eq!(status("/api/v1/plans?at=2026-03-15T12:01:00Z").await, 200);
        assert_eq!(status("/api/v1/plans?at=2026-03-15T12:01:01Z").await, 422);
        assert_eq!(status("/api/v1/costs?month=2026-03").await, 200);
        assert_eq!(status("/api/v1/costs?month=2026-04").await, 422);
        let costs: Value = app.get("/api/v1/costs").await.json().await.unwrap();
        assert_eq!(
            (costs["month"].as_str(), costs["as_of"].as_str()),
            (Some("2026-03"), Some("2026-03-15T12:00:00Z"))
        );
        app.clock.advance(chrono::Duration::days(17));
        assert_eq!(status("/api/v1/costs?month=2026-04").await, 200);
        assert_eq!(status("/api/v1/plans?at=2026-04-01T12:00:00Z").await, 200);
    }
);
