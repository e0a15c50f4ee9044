//! Costs and funds end to end: build steps in over HTTP, figures out of `/api/v1/costs`,
//! `/api/v1/funds` and `buildfund costs`, checked against figures worked out by hand from
//! cost-model.md (exact fractions, half-away-from-zero, largest remainder).
use buildfund_entity::donations;
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, Set};
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
monthly_goal = "1500.00"
tiers = ["gpu-sponsor"]
accounts = ["nix-cuda"]

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
"#;

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

async fn seed(app: &TestApp) {
    let steps = [
        // Crosses the September/October boundary: one hour in each month.
        json!({"build": 1, "step": 1, "project": "nixpkgs", "jobset": "cuda", "machine": "build03",
               "start": t("2026-09-30T23:00:00Z"), "stop": t("2026-10-01T01:00:00Z")}),
        json!({"build": 2, "step": 1, "project": "nixpkgs", "jobset": "cuda", "machine": "build03",
               "start": t("2026-10-05T00:00:00Z"), "stop": t("2026-10-05T10:00:00Z")}),
        // Through the alias: still build03.
        json!({"build": 3, "step": 1, "project": "nixpkgs", "jobset": "trunk", "machine": "ssh://localhost",
               "start": t("2026-10-12T00:00:00Z"), "stop": t("2026-10-12T05:00:00Z")}),
        json!({"build": 4, "step": 1, "project": "nixpkgs", "jobset": "cuda-gpu-tests", "machine": "gpu01",
               "start": t("2026-10-20T00:00:00Z"), "stop": t("2026-10-20T02:30:00Z")}),
        json!({"build": 5, "step": 1, "project": "nixpkgs", "jobset": "cuda", "machine": "jetson-orin-1",
               "start": t("2026-10-21T00:00:00Z"), "stop": t("2026-10-21T01:00:00Z")}),
    ];
    app.ingest_steps(&steps).await;

    // Donations (the OpenCollective sync fills this table; here rows are written directly).
    let donations = [
        ("a", "2026-08-20T00:00:00Z", "nixos", None, 99999, 0), // before ledger_start
        ("b", "2026-09-15T00:00:00Z", "nixos", None, 3000, 0),
        ("c", "2026-10-03T00:00:00Z", "nix-cuda", None, 10000, 500),
        (
            "d",
            "2026-10-10T00:00:00Z",
            "nixos",
            Some("gpu-sponsor"),
            5000,
            250,
        ),
        ("e", "2026-10-11T00:00:00Z", "nixos", None, 2000, 100),
        ("f", "2026-10-20T00:00:00Z", "nix-cuda", None, -1000, -50), // a refund
    ];
    for (id, at, account, tier, gross, fees) in donations {
        let at: DateTime<Utc> = at.parse().unwrap();
        donations::ActiveModel {
            source: Set("manual".into()),
            external_id: Set(id.into()),
            kind: Set(if gross < 0 { "refund" } else { "contribution" }.into()),
            occurred_at: Set(at),
            account_slug: Set(account.into()),
            tier_slug: Set(tier.map(Into::into)),
            contributor_name: Set(None),
            contributor_slug: Set(None),
            contributor_url: Set(None),
            anonymous: Set(false),
            gross_cents: Set(gross),
            fees_cents: Set(fees),
            net_cents: Set(gross - fees),
            original_amount: Set(format!("{}", gross as f64 / 100.0)),
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

fn line<'a>(body: &'a Value, machine: &str, jobset: Option<&str>) -> &'a Value {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["machine"] == machine && l["jobset"] == json!(jobset))
        .unwrap_or_else(|| panic!("no line {machine} {jobset:?} in {body}"))
}

db_test!(october_costs_to_the_cent, CONFIG, |app| async move {
    seed(&app).await;
    let body: Value = app.get_costs("2026-10", None).await;
    assert_eq!(body["month"], "2026-10");
    assert_eq!(body["currency"], "EUR");
    // build03: 300.00 for the whole month, capacity 2 x 2,678,400 s.
    //   cuda  39,600 s -> 221.774… ; trunk 18,000 s -> 100.806… ; idle 29,677.419…
    //   floors 29,998; two cents to the largest remainders (trunk .806, cuda .774).
    assert_eq!(
        line(&body, "build03", Some("nixpkgs:cuda")),
        &json!({"machine": "build03", "jobset": "nixpkgs:cuda", "pool": "cuda", "fund": "cuda",
                "busy_seconds": 39600, "cost_cents": 222})
    );
    assert_eq!(
        line(&body, "build03", Some("nixpkgs:trunk"))["cost_cents"],
        101
    );
    assert_eq!(
        line(&body, "build03", Some("nixpkgs:trunk"))["pool"],
        "other"
    );
    assert_eq!(
        line(&body, "build03", Some("nixpkgs:trunk"))["fund"],
        "general"
    );
    assert_eq!(
        line(&body, "build03", None),
        &json!({"machine": "build03", "jobset": null, "pool": null, "fund": "general",
                "idle": true, "busy_seconds": 0, "cost_cents": 29677})
    );
    // gpu01, metered 2.40/h, 2.5 busy hours: 6.00, no idle line.
    assert_eq!(
        line(&body, "gpu01", Some("nixpkgs:cuda-gpu-tests"))["cost_cents"],
        600
    );
    assert_eq!(body["lines"].as_array().unwrap().len(), 4);
    assert_eq!(body["total_cents"], 30600);
    assert_eq!(
        body["unpriced"],
        json!([{"machine": "jetson-orin-1", "jobset": "nixpkgs:cuda", "busy_seconds": 3600}])
    );

    // September holds the other hour of the crossing step: cuda 20.833… -> 21, idle 29,979.
    let sept: Value = app.get_costs("2026-09", None).await;
    assert_eq!(
        line(&sept, "build03", Some("nixpkgs:cuda"))["busy_seconds"],
        3600
    );
    assert_eq!(
        line(&sept, "build03", Some("nixpkgs:cuda"))["cost_cents"],
        21
    );
    assert_eq!(line(&sept, "build03", None)["cost_cents"], 29979);
    // Before ledger_start nothing counts.
    let aug: Value = app.get_costs("2026-08", None).await;
    assert_eq!(aug["total_cents"], 0);
});

db_test!(month_to_date_with_at, CONFIG, |app| async move {
    seed(&app).await;
    // [Oct 1, Oct 6): build03 costs 300.00 x 5/31 = 48.387…; cuda 39,600 s of 864,000.
    let body: Value = app.get_costs("2026-10", Some("2026-10-06T00:00:00Z")).await;
    assert_eq!(
        line(&body, "build03", Some("nixpkgs:cuda"))["cost_cents"],
        222
    );
    assert_eq!(line(&body, "build03", None)["cost_cents"], 4617);
    assert_eq!(body["total_cents"], 4839);
    assert_eq!(body["as_of"], "2026-10-06T00:00:00Z");

    let bad = app.get("/api/v1/costs?month=2026-13").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("month"));
    let bad = app.get("/api/v1/funds?month=2026-10&at=yesterday").await;
    assert_eq!(bad.status(), 400);
});

db_test!(
    funds_raise_spend_balance_and_runway,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let body: Value = app.get_funds("2026-10", None).await;
        let fund = |slug: &str| {
            body["funds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["slug"] == slug)
                .unwrap()
                .clone()
        };
        // cuda: c (account) + d (tier) + f (refund); general: e.
        // balance(cuda, Nov 1) = 100.00 + 133.00 net - (21 + 822) cents = 224.57
        // burn: cost in [Oct 2, Nov 1) is its own window: build03 290.32… -> cuda 2.01, plus 6.00 metered
        // runway = floor(22457 * 30 / 801) = 841
        assert_eq!(
            fund("cuda"),
            json!({"slug": "cuda", "name": "CUDA builds", "gross_cents": 14000, "fees_cents": 700,
               "net_cents": 13300, "spent_cents": 822, "expenses_cents": 0, "balance_cents": 22457,
               "goal_cents": 150000, "runway_days": 841})
        );
        // general: 500.00 + 30.00 + 19.00 - (299.79 + 297.78) = -48.57; runway 0.
        assert_eq!(
            fund("general"),
            json!({"slug": "general", "name": "General fund", "gross_cents": 2000, "fees_cents": 100,
               "net_cents": 1900, "spent_cents": 29778, "expenses_cents": 0, "balance_cents": -4857,
               "goal_cents": null, "runway_days": 0})
        );
        // The funds' spending is the costs' lines, to the cent.
        let costs: Value = app.get_costs("2026-10", None).await;
        let spent: i64 = body["funds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["spent_cents"].as_i64().unwrap())
            .sum();
        assert_eq!(spent, costs["total_cents"].as_i64().unwrap());
    }
);

db_test!(
    the_costs_command_prints_a_table_and_the_api_json,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let out = app.cli(&["costs", "--month", "2026-10", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        let api: Value = app.get_costs("2026-10", None).await;
        assert_eq!(cli["lines"], api["lines"]);
        assert_eq!(cli["total_cents"], 30600);

        let out = app.cli(&["costs", "--month", "2026-10"]);
        assert!(out.status.success());
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("total 306.00"), "{table}");
        assert!(
            table.contains("fund cuda") && table.contains("pool cuda"),
            "{table}"
        );
        assert!(
            table.contains("nixpkgs:cuda") && table.contains("11.00 h"),
            "{table}"
        );
        assert!(
            table.contains("jetson-orin-1"),
            "unpriced machines are listed: {table}"
        );

        let out = app.cli(&["costs", "--month", "October"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--month \"October\" is not a month"));
    }
);
