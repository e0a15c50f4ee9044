//! The first hour of a new user: with no configuration the books begin at the first run (and
//! stay there across restarts), the funding page says that no configuration is loaded and
//! where to start, the gate lets jobsets build while nothing has moved through the default
//! fund, and a `ledger_start` months in the past is named at the first start.
use buildfund_jobs::calendar::Month;
use buildfund_jobs::clock::Clock;
use buildfund_tests::database::{create_postgres_database, drop_postgres_database};
use buildfund_tests::{db_test, run_cli, Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

/// An instant in the middle of a month, long after 1970.
fn first_run() -> DateTime<Utc> {
    "2026-12-06T18:00:00Z".parse().unwrap()
}

/// A manual donation of 10.00 EUR to the default fund on `day`.
async fn donate(app: &TestApp, admin: &str, day: &str) {
    let body = json!({"idempotency_key": format!("bank-{day}"), "occurred_at": format!("{day}T12:00:00Z"),
                      "contributor_name": "A bank transfer", "amount_cents": 1000, "fees_cents": 0,
                      "currency": "EUR"});
    let res = app.post_donation(Some(admin), &body).await;
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

/// The default fund's balance at the end of `month` (or now, in the current month).
async fn balance(app: &TestApp, month: &str) -> i64 {
    let funds = app.get_funds(month, None).await;
    funds["funds"][0]["balance_cents"].as_i64().unwrap()
}

db_test!(
    with_no_configuration_the_books_begin_at_the_first_run,
    TestApp::builder("").clock(Clock::manual(first_run())),
    |app| async move {
        // A donation of the first run's month counts; one of the month before is before the
        // books (with the books begun in 1970, it would count too).
        let admin = app.token("admin").await;
        donate(&app, &admin, "2026-12-02").await;
        donate(&app, &admin, "2026-11-20").await;
        assert_eq!(balance(&app, "2026-12").await, 1000);

        // Restarted on the same database a month and a half later: the books still begin at
        // the first run, not at the restart.
        let later = first_run() + Duration::days(45);
        let again = TestApp::start_on(app.backend, "", &app.db_url, Clock::manual(later)).await;
        assert_eq!(balance(&again, "2027-01").await, 1000);
    }
);

db_test!(
    a_fresh_install_has_no_empty_months_to_store,
    TestApp::builder(""),
    |app| async move {
        // Started now with no configuration: no closed month lies in the books (with the books
        // begun in 1970 there were 683 to store).
        let status: Value =
            serde_json::from_str(&app.cli_ok(&["books", "status", "--json"])).unwrap();
        assert_eq!(
            status["months"].as_array().map(Vec::len),
            Some(0),
            "{status}"
        );
    }
);

db_test!(
    the_funding_page_of_a_fresh_install_says_where_to_start,
    TestApp::builder("").clock(Clock::manual(first_run())),
    |app| async move {
        let res = app.get("/").await;
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("No configuration file is loaded"),
            "the page says no configuration is loaded: {html}"
        );
        assert!(
            html.contains("buildfund.toml") && html.contains("README.md"),
            "{html}"
        );
        assert!(
            !html.contains("used up"),
            "nothing is used up in a fund that never held money: {html}"
        );
        assert!(html.contains("none: the fund holds no money"), "{html}");
    }
);

db_test!(a_configured_install_shows_no_setup_note, |app| async move {
    let html = app.get("/").await.text().await.unwrap();
    assert!(!html.contains("No configuration file is loaded"), "{html}");
});

db_test!(
    the_gate_of_a_fresh_install_lets_every_jobset_build,
    TestApp::builder("").clock(Clock::manual(first_run())),
    |app| async move {
        let gate = app.get_gate("nixpkgs/trunk").await;
        assert_eq!(gate["allow"], true, "{gate}");
        assert_eq!(gate["state"], "open", "{gate}");
    }
);

/// A fund with no money that starts paying for a machine: the balance rule applies again.
const UNFUNDED: &str = r#"
ledger_start = "2026-12-01"

[[machines]]
name = "build01"
monthly = "100.00"
"#;

db_test!(
    a_fund_without_money_closes_its_pools_once_it_has_costs,
    TestApp::builder(UNFUNDED).clock(Clock::manual(first_run())),
    |app| async move {
        // Five days of a machine's idle time are a cost of the general fund, which holds nothing.
        let gate = app.get_gate("nixpkgs/trunk").await;
        assert_eq!(gate["state"], "closed", "{gate}");
        assert_eq!(gate["allow"], false, "{gate}");
        assert!(gate["fund_balance_cents"].as_i64().unwrap() < 0, "{gate}");
    }
);

db_test!(
    a_ledger_start_months_in_the_past_is_named_at_the_first_start,
    |app| async move {
        // A fresh database of the test's backend, and a file whose books begin three months
        // before this month.
        let url = match app.backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                app.dir.path().join("fresh.sqlite").display()
            ),
            Backend::Postgres => create_postgres_database().await.expect("a fresh database"),
        };
        let now = Clock::system().now();
        let start = Month::of(now).prev().prev().prev();
        let config = app.dir.path().join("backdated.toml");
        std::fs::write(
            &config,
            format!(
                "ledger_start = \"{start}-01\"\n[[machines]]\nname = \"b\"\nmonthly = \"30\"\n"
            ),
        )
        .unwrap();
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("BUILDFUND_CONFIG", config.to_str().unwrap()),
        ];
        let first = run_cli(&["migrate"], app.dir.path(), &env);
        let second = run_cli(&["migrate"], app.dir.path(), &env);
        if app.backend == Backend::Postgres {
            drop_postgres_database(&url).await;
        }
        assert!(first.status.success() && second.status.success());
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            stderr.contains(&format!(
                "warning: ledger_start {start}-01T00:00:00Z is 3 months before this first start"
            )),
            "{stderr}"
        );
        // Only the first start says it.
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(!stderr.contains("warning: ledger_start"), "{stderr}");

        // The test app's database recorded its first run when the app started: a later start
        // says nothing, whatever its ledger_start.
        let out = app.cli(&["migrate"]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("warning: ledger_start"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
);
