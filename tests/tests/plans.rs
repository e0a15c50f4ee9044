//! Plans end to end: steps and donations stored, `GET /api/v1/plans` and `buildfund plans`
//! checked against figures worked out by hand from cost-model.md ("Plans"), and the month's
//! report and email saying which plans became funded or moved.
use buildfund_entity::donations;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::email::render;
use buildfund_jobs::report::{month_report, view::report_view};
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"

[[funds]]
slug = "general"
name = "General fund"
default = true

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"
accounts = ["nix-cuda"]

[[funds]]
slug = "jetson"
name = "Jetson"
accounts = ["nix-jetson"]

[[funds]]
slug = "docs"
name = "Docs"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "gpu01"
metered = "3.00"

[[plans]]
slug = "jetson-cache"
name = "A binary cache for Jetson boards"
fund = "cuda"
monthly = "40.00"

[[plans]]
slug = "gpu-test-runner"
name = "A GPU machine to test CUDA at run time"
fund = "cuda"
monthly = "180.00"
url = "https://example.org/gpu-test-runner"

[[plans]]
slug = "more-branches"
name = "More branches, built more often"
fund = "general"
monthly = "10.00"

[[plans]]
slug = "jetson-board"
name = "A Jetson board on the farm"
fund = "jetson"
monthly = "10.00"
"#;

const AT: &str = "2026-11-15T00:00:00Z";

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

/// gpu01 costs 3.00 a busy hour. cuda: 5 h on Oct 1 (before the 30 days to Nov 15), 10 h on
/// Oct 20, 20 h on Nov 2; trunk (general): 20 h on Oct 25.
async fn seed(app: &TestApp) {
    let steps = [
        (1, "cuda", "2026-10-01T00:00:00Z", "2026-10-01T05:00:00Z"),
        (2, "cuda", "2026-10-20T00:00:00Z", "2026-10-20T10:00:00Z"),
        (3, "trunk", "2026-10-25T00:00:00Z", "2026-10-25T20:00:00Z"),
        (4, "cuda", "2026-11-02T00:00:00Z", "2026-11-02T20:00:00Z"),
    ];
    let body: String = steps
        .iter()
        .map(|(build, jobset, start, stop)| {
            format!(
                "{}\n",
                json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
                       "machine": "gpu01", "start": t(start), "stop": t(stop)})
            )
        })
        .collect();
    let res = app
        .client
        .post(app.url("/api/v1/build-steps"))
        .bearer_auth(app.token("ingest").await)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // (id, when, account, gross, fees)
    let rows = [
        ("a", "2026-09-10T00:00:00Z", "nix-cuda", 30000, 0),
        ("b", "2026-10-05T00:00:00Z", "nixos", 3000, 0),
        ("c", "2026-10-20T00:00:00Z", "nix-cuda", 16000, 1000),
        ("d", "2026-11-01T00:00:00Z", "nix-cuda", 15001, 0),
        ("e", "2026-11-10T00:00:00Z", "nix-jetson", 3000, 0),
    ];
    for (id, at, account, gross, fees) in rows {
        let at: DateTime<Utc> = at.parse().unwrap();
        donations::ActiveModel {
            source: Set("manual".into()),
            external_id: Set(id.into()),
            kind: Set("contribution".into()),
            occurred_at: Set(at),
            account_slug: Set(account.into()),
            tier_slug: Set(None),
            contributor_name: Set(Some("Grace".into())),
            contributor_slug: Set(None),
            contributor_url: Set(None),
            anonymous: Set(false),
            gross_cents: Set(gross),
            fees_cents: Set(fees),
            net_cents: Set(gross - fees),
            original_amount: Set(format!("{}.{:02}", gross / 100, gross % 100)),
            original_currency: Set("EUR".into()),
            refund_of: Set(None),
            description: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
}

fn plan(slug: &str, name: &str, url: Option<&str>, monthly: i64, pct: i64, runway: i64) -> Value {
    json!({"slug": slug, "name": name, "url": url, "monthly_cents": monthly,
           "covered_percent": pct, "funded": pct == 100, "runway_if_adopted_days": runway})
}

/// The figures at [`AT`], worked out by hand.
fn expected() -> Value {
    json!({"currency": "EUR", "as_of": AT, "funds": [
        // net 30.00 over 90 days -> income30 10.00; burn30 60.00 (trunk, Oct 25): 0 %;
        // balance 30.00 - 60.00 < 0: no runway whatever is adopted.
        {"fund": "general", "name": "General fund", "income30_cents": 1000, "burn30_cents": 6000,
         "balance_cents": -3000,
         "plans": [plan("more-branches", "More branches, built more often", None, 1000, 0, 0)]},
        // net 300.00 + 150.00 + 150.01 = 600.01 over [Sep 1, Nov 15) -> income30 200.00333…
        // (shown 200.00); burn30 = 30.00 (Oct 20) + 60.00 (Nov 2) = 90.00; headroom 110.00333….
        // jetson-cache 40.00: funded, 70.00333… left; gpu-test-runner 180.00: 38.89 % -> 38.
        // balance 100.00 + 600.01 - 105.00 = 595.01: 30 * 595.01 / 130.00 = 137.3 -> 137,
        // 30 * 595.01 / 310.00 = 57.58 -> 57.
        {"fund": "cuda", "name": "CUDA builds", "income30_cents": 20000, "burn30_cents": 9000,
         "balance_cents": 59501,
         "plans": [
            plan("jetson-cache", "A binary cache for Jetson boards", None, 4000, 100, 137),
            plan("gpu-test-runner", "A GPU machine to test CUDA at run time",
                 Some("https://example.org/gpu-test-runner"), 18000, 38, 57)]},
        // net 30.00 -> income30 exactly 10.00, no burn: the 10.00 plan is exactly covered;
        // 30 * 30.00 / 10.00 = 90 days.
        {"fund": "jetson", "name": "Jetson", "income30_cents": 1000, "burn30_cents": 0,
         "balance_cents": 3000,
         "plans": [plan("jetson-board", "A Jetson board on the farm", None, 1000, 100, 90)]},
        {"fund": "docs", "name": "Docs", "income30_cents": 0, "burn30_cents": 0,
         "balance_cents": 0, "plans": []}
    ]})
}

db_test!(plans_to_the_cent, CONFIG, |app| async move {
    seed(&app).await;
    let body: Value = app
        .get(&format!("/api/v1/plans?at={AT}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, expected());

    // The CLI's JSON is the API's answer; its table shows the same figures.
    let out = app.cli(&["plans", "--at", AT, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, expected());
    let out = app.cli(&["plans", "--at", AT]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("fund cuda: income 200.00 a month (last 90 days / 3), burn 90.00"),
        "{table}"
    );
    assert!(
        table.contains("38 % covered") && table.contains("57 days"),
        "{table}"
    );
    assert!(
        !table.contains("fund docs"),
        "a fund without plans: {table}"
    );

    // Before the books begin: no income, no burn, no balance.
    let early: Value = app
        .get("/api/v1/plans?at=2026-08-01T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(early["funds"][1]["balance_cents"], 10000);
    assert_eq!(early["funds"][1]["plans"][0]["covered_percent"], 0);
    // 30 * 100.00 / 40.00 = 75 days.
    assert_eq!(early["funds"][1]["plans"][0]["runway_if_adopted_days"], 75);

    let bad = app.get("/api/v1/plans?at=yesterday").await;
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().starts_with("at: "), "{err}");
});

db_test!(
    the_report_says_which_plans_moved,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let at: DateTime<Utc> = AT.parse().unwrap();
        let month = Month::parse("2026-11").unwrap();
        let r = month_report(&app.db, &app.config, month, at).await.unwrap();
        // The report's plans are the API's at its instant.
        let api: Value = app
            .get(&format!("/api/v1/plans?at={AT}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(serde_json::to_value(&r.plans).unwrap(), api["funds"]);
        // On Nov 1: cuda net 450.00 -> income30 150.00, burn30 30.00 (Oct 20; Oct 1 is before
        // Oct 2): jetson-cache funded, gpu-test-runner 80.00 / 180.00 = 44 %. jetson: nothing yet.
        let moved: Vec<(&str, i64, i64, bool)> = r
            .plan_changes
            .iter()
            .map(|c| {
                (
                    c.slug.as_str(),
                    c.before_percent,
                    c.after_percent,
                    c.became_funded,
                )
            })
            .collect();
        assert_eq!(
            moved,
            [
                ("gpu-test-runner", 44, 38, false),
                ("jetson-board", 0, 100, true)
            ]
        );
        let view = report_view(&r, &[], &[]);
        let mail =
            render::report(&view, "https://fund.example.org", "https://u.example.org").unwrap();
        assert!(
        mail.text.contains(
            "PLANS THAT MOVED\n\
             - A GPU machine to test CUDA at run time (cuda, 180.00 a month): down 6 points (44 % → 38 %)\n\
             - A Jetson board on the farm (jetson, 10.00 a month): became funded (0 % → 100 %)\n"
        ),
        "{}",
        mail.text
    );
        assert!(
            !mail.text.contains("More branches"),
            "unchanged plans are not listed"
        );
        assert!(mail.html.contains("Plans that moved"));
        assert!(mail.html.contains(
        "<a href=\"https://example.org/gpu-test-runner\" style=\"color:#1a5fb4;\">A GPU machine to test CUDA at run time</a>"
    ), "{}", mail.html);
        assert!(mail.html.contains("became funded (0 % → 100 %)"));

        // The month's report page says the same (the month is over: as of its end).
        let page = app.get("/reports/2026-11").await.text().await.unwrap();
        assert!(page.contains("Plans that moved"), "{page}");
    }
);

db_test!(
    a_plan_of_an_unknown_fund_is_refused_with_its_key_path,
    |app| async move {
        let path = app.dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "ledger_start = \"2026-01-01\"\n[[plans]]\nslug = \"x\"\nname = \"X\"\nfund = \"gpu\"\nmonthly = \"0\"\n",
        )
        .unwrap();
        let out = app.cli(&["check-config", "--config", path.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("plans[0].fund: \"gpu\" is not a fund (funds: general)"),
            "{err}"
        );
        assert!(
            err.contains("plans[0].monthly: must be more than 0"),
            "{err}"
        );
    }
);
