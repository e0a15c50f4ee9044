//! Expenses in the books and the reconciliation end to end: expense records in through the
//! store, figures out of `/api/v1/reconciliation`, `/api/v1/expenses`, `/api/v1/funds`, the
//! gate and `buildfund reconcile`/`expenses`, checked against figures worked out here from
//! cost-model.md ("Expenses", "Reconciliation", "Balance, burn, runway"), computed from the
//! data and again from the stored books.
use buildfund_entity::donations;
use buildfund_jobs::books::expenses::{self, ExpenseKind, ExpenseRecord};
use buildfund_jobs::books::store;
use buildfund_jobs::config::Secrets;
use buildfund_jobs::sources::opencollective::{self, SyncOptions};
use buildfund_tests::opencollective::{
    account, collective, expense, expense_tx, tx, Behaviour, TOKEN, TOKEN_ENV,
};
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
opening_balance = "2000.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "2000.00"
accounts = ["nix-cuda"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "build01"
monthly = "310.00"
invoice_tags = ["build01"]

[[machines]]
name = "gpu01"
monthly = "620.00"
idle_fund = "cuda"
billing = "advance"
billing_tolerance = "2.00"
invoice_tags = ["GPU01", "build01"]

[[machines]]
name = "donated"
monthly = "31.00"
billing = "none"
invoice_tags = ["donated"]
"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    tags: &[&str],
    account: &str,
    incurred: &str,
    paid: &str,
    amount: i64,
    fees: i64,
    reversal_of: Option<&str>,
) -> ExpenseRecord {
    ExpenseRecord {
        source: "opencollective".into(),
        external_id: id.into(),
        kind: if reversal_of.is_some() {
            ExpenseKind::Reversal
        } else {
            ExpenseKind::Expense
        },
        paid_at: t(paid),
        account_slug: account.into(),
        payee: Some("Payee".into()),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        description: Some(format!("expense {id}")),
        incurred_at: t(incurred),
        amount_cents: amount,
        fees_cents: fees,
        original_amount: buildfund_jobs::money::format_cents(amount),
        original_currency: "EUR".into(),
        expense_ref: Some(format!("e-{}", reversal_of.unwrap_or(id))),
        reversal_of: reversal_of.map(Into::into),
    }
}

async fn seed(app: &TestApp) {
    let now = t("2026-12-06T00:00:00Z");
    let records = [
        // build01 (arrears): the invoice of 3 November pays for October; the tag in other
        // letter case; its fee is a cost of build01's idle fund (general) on 5 November.
        record(
            "inv-b",
            &["Hosting", "Build01"],
            "nix-community",
            "2026-11-03T00:00:00Z",
            "2026-11-05T10:00:00Z",
            31000,
            150,
            None,
        ),
        // gpu01 (advance): the invoice of 1 October pays for October, 5.00 over.
        record(
            "inv-g",
            &["gpu01"],
            "nix-community",
            "2026-10-01T00:00:00Z",
            "2026-10-02T00:00:00Z",
            62500,
            0,
            None,
        ),
        // build01's September invoice, reversed in full on 10 October.
        record(
            "inv-s",
            &["build01"],
            "nix-community",
            "2026-10-02T00:00:00Z",
            "2026-10-03T00:00:00Z",
            31000,
            0,
            None,
        ),
        record(
            "inv-s-rev",
            &["build01"],
            "nix-community",
            "2026-10-02T00:00:00Z",
            "2026-10-10T00:00:00Z",
            -31000,
            0,
            Some("inv-s"),
        ),
        // Other expenses: a domain fee (general), a CI service paid by the CUDA project
        // (cuda), and an expense tagged for the donated machine (billing none: general).
        record(
            "dom",
            &["domain"],
            "nix-community",
            "2026-10-14T00:00:00Z",
            "2026-10-15T00:00:00Z",
            1500,
            45,
            None,
        ),
        record(
            "ci",
            &[],
            "nix-cuda",
            "2026-10-19T00:00:00Z",
            "2026-10-20T00:00:00Z",
            700,
            0,
            None,
        ),
        record(
            "don",
            &["DONATED"],
            "nix-community",
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z",
            900,
            0,
            None,
        ),
    ];
    expenses::upsert(&app.db, &records, now).await.unwrap();
    let at = t("2026-10-03T00:00:00Z");
    donations::ActiveModel {
        source: Set("manual".into()),
        external_id: Set("d1".into()),
        kind: Set("contribution".into()),
        occurred_at: Set(at),
        account_slug: Set("nixos".into()),
        tier_slug: Set(None),
        contributor_name: Set(None),
        contributor_slug: Set(None),
        contributor_url: Set(None),
        anonymous: Set(false),
        gross_cents: Set(10500),
        fees_cents: Set(500),
        net_cents: Set(10000),
        original_amount: Set("105.00".into()),
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

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

fn machine<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["machine"] == name)
        .unwrap_or_else(|| panic!("no machine {name} in {body}"))
}

fn fund<'a>(body: &'a Value, slug: &str) -> &'a Value {
    body["funds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["slug"] == slug)
        .unwrap_or_else(|| panic!("no fund {slug} in {body}"))
}

/// `floor(balance / (cost_30 / 30))`, 0 when the balance is not positive.
fn runway(balance: i64, cost_30: i64) -> i64 {
    if balance <= 0 {
        0
    } else {
        balance * 30 / cost_30
    }
}

/// Every figure of the worked example, whether computed from the data or the stored books.
async fn check_figures(app: &TestApp) {
    // Monthly prices accrue per second: a whole month costs the price; 30 of October's 31
    // days cost 30/31 of it (exact with these prices).
    let (b01, g01, don) = (31000, 62000, 3100);
    let r = get(app, "/api/v1/reconciliation?month=2026-10").await;
    let b = machine(&r, "build01");
    assert_eq!(
        (
            &b["modeled_cents"],
            &b["billed_cents"],
            &b["difference_cents"],
            &b["tolerance_cents"],
            &b["status"]
        ),
        (
            &json!(b01),
            &json!(31000),
            &json!(0),
            &json!(310),
            &json!("matched")
        ),
        "{r}"
    );
    assert_eq!(b["billing"], "arrears");
    assert_eq!(b["invoices"], json!(["inv-b"]));
    let g = machine(&r, "gpu01");
    assert_eq!(
        (
            &g["billed_cents"],
            &g["difference_cents"],
            &g["tolerance_cents"],
            &g["status"]
        ),
        (&json!(62500), &json!(500), &json!(200), &json!("over")),
        "{r}"
    );
    let d = machine(&r, "donated");
    assert_eq!(
        (&d["modeled_cents"], &d["status"]),
        (&json!(don), &json!("not_billed"))
    );
    assert_eq!(r["modeled_cents"], b01 + g01 + don);
    assert_eq!(r["billed_cents"], 31000 + 62500);
    assert_eq!(r["difference_cents"], 31000 + 62500 - (b01 + g01 + don));
    assert_eq!(
        r["other_expenses"],
        json!([{"fund": "general", "total_cents": 1545 + 900}, {"fund": "cuda", "total_cents": 700}])
    );
    // Cash at 1 November: openings + net donations - every expense's total paid before.
    let out = 62500 + 31000 - 31000 + 1545 + 700 + 900;
    assert_eq!(r["cash_cents"], 200000 + 200000 + 10000 - out, "{r}");
    assert_eq!(r["opencollective"], json!({"status": "never"}));

    // September: its invoice was reversed in full on 10 October.
    let s = get(app, "/api/v1/reconciliation?month=2026-09").await;
    let b = machine(&s, "build01");
    assert_eq!(
        (&b["billed_cents"], &b["status"]),
        (&json!(0), &json!("unbilled")),
        "{s}"
    );
    assert_eq!(b["invoices"], json!(["inv-s", "inv-s-rev"]));
    assert_eq!(machine(&s, "gpu01")["status"], "unbilled");
    // As of 5 October only the invoice was recorded: matched.
    let s = get(
        app,
        "/api/v1/reconciliation?month=2026-09&at=2026-10-05T00:00:00Z",
    )
    .await;
    let b = machine(&s, "build01");
    assert_eq!(
        (&b["billed_cents"], &b["status"]),
        (&json!(31000), &json!("matched")),
        "{s}"
    );
    // October as of the 20th: open, month to date.
    let o = get(
        app,
        "/api/v1/reconciliation?month=2026-10&at=2026-10-20T00:00:00Z",
    )
    .await;
    let b = machine(&o, "build01");
    assert_eq!(
        (&b["modeled_cents"], &b["status"]),
        (&json!(19000), &json!("open")),
        "{o}"
    );
    assert_eq!(
        o["other_expenses"],
        json!([{"fund": "general", "total_cents": 1545}])
    );
    assert_eq!(
        o["cash_cents"],
        400000 + 10000 - (62500 + 31000 - 31000 + 1545),
        "{o}"
    );

    // Funds: spent stays machine cost; expenses_cents is the month's expense costs; balance
    // and runway include both.
    let f = get(app, "/api/v1/funds?month=2026-10").await;
    let gen = fund(&f, "general");
    let gen_balance = 200000 + 10000 - (b01 + don) * 2 - (1545 + 900);
    assert_eq!(
        (
            &gen["spent_cents"],
            &gen["expenses_cents"],
            &gen["balance_cents"]
        ),
        (&json!(b01 + don), &json!(1545 + 900), &json!(gen_balance)),
        "{f}"
    );
    // The 30 days before 1 November: 30 of October's 31 days, and the month's expenses.
    let gen_30 = 30000 + 3000 + 1545 + 900;
    assert_eq!(gen["runway_days"], runway(gen_balance, gen_30), "{f}");
    let cuda = fund(&f, "cuda");
    let cuda_balance = 200000 - g01 * 2 - 700;
    assert_eq!(
        (
            &cuda["spent_cents"],
            &cuda["expenses_cents"],
            &cuda["balance_cents"]
        ),
        (&json!(g01), &json!(700), &json!(cuda_balance)),
        "{f}"
    );
    assert_eq!(
        cuda["runway_days"],
        runway(cuda_balance, 60000 + 700),
        "{f}"
    );
    // November: the fee of build01's invoice is general's expense cost.
    let n = get(app, "/api/v1/funds?month=2026-11&at=2026-11-10T00:00:00Z").await;
    assert_eq!(fund(&n, "general")["expenses_cents"], 150, "{n}");
    assert_eq!(fund(&n, "cuda")["expenses_cents"], 0, "{n}");
    // The gate's fund balance on 25 October: September's and 24 days of October's machine
    // cost, and the CI service paid on the 20th.
    let gate = get(app, "/api/v1/gate/nixpkgs/cuda?at=2026-10-25T00:00:00Z").await;
    let cuda_25 = 200000 - g01 - 48000 - 700;
    assert_eq!(gate["fund_balance_cents"], cuda_25, "{gate}");
    // Burn over [25 Sep, 25 Oct): 6 of September's 30 days and 24 of October's 31, plus the CI.
    assert_eq!(
        gate["runway_days"],
        runway(cuda_25, 62000 * 6 / 30 + 48000 + 700),
        "{gate}"
    );

    // The month's expense records, classified.
    let e = get(app, "/api/v1/expenses?month=2026-10").await;
    let ids: Vec<&str> = e["expenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["inv-g", "inv-s", "inv-s-rev", "dom", "ci", "don"]);
    assert_eq!(e["amount_cents"], 62500 + 1500 + 700 + 900);
    assert_eq!(e["fees_cents"], 45);
    assert_eq!(e["total_cents"], 62500 + 1545 + 700 + 900);
    let first = &e["expenses"][0];
    assert_eq!(
        (&first["machine"], &first["pays_for"], &first["fund"]),
        (&json!("gpu01"), &json!("2026-10"), &Value::Null)
    );
    let rev = &e["expenses"][2];
    assert_eq!(
        (&rev["machine"], &rev["pays_for"]),
        (&json!("build01"), &json!("2026-09"))
    );
    let don_line = &e["expenses"][5];
    assert_eq!(
        (
            &don_line["machine"],
            &don_line["fund"],
            &don_line["total_cents"]
        ),
        (&Value::Null, &json!("general"), &json!(900))
    );
}

db_test!(
    expenses_reach_the_books_and_the_reconciliation,
    CONFIG,
    |app| async move {
        seed(&app).await;
        // From the data (nothing stored yet) ...
        check_figures(&app).await;
        // ... and from the stored books.
        let done = store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
            .await
            .unwrap();
        assert!(done.stored > 0);
        check_figures(&app).await;
        // A late invoice marks its month stale and is in every figure at once.
        let late = record(
            "late",
            &["domain"],
            "nix-cuda",
            "2026-10-01T00:00:00Z",
            "2026-10-31T12:00:00Z",
            300,
            0,
            None,
        );
        expenses::upsert(&app.db, &[late], Utc::now())
            .await
            .unwrap();
        let f = get(&app, "/api/v1/funds?month=2026-10").await;
        assert_eq!(fund(&f, "cuda")["expenses_cents"], 1000, "{f}");
        assert_eq!(
            fund(&f, "cuda")["balance_cents"],
            200000 - 62000 * 2 - 1000,
            "{f}"
        );
        store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
            .await
            .unwrap();
        let f2 = get(&app, "/api/v1/funds?month=2026-10").await;
        assert_eq!(f["funds"], f2["funds"]);
    }
);

db_test!(
    the_cli_prints_what_the_api_answers,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let api = get(
            &app,
            "/api/v1/reconciliation?month=2026-10&at=2026-11-30T00:00:00Z",
        )
        .await;
        let out = app.cli_ok(&[
            "reconcile",
            "--month",
            "2026-10",
            "--at",
            "2026-11-30T00:00:00Z",
            "--json",
        ]);
        let cli: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(cli, api);
        let table = app.cli_ok(&[
            "reconcile",
            "--month",
            "2026-10",
            "--at",
            "2026-11-30T00:00:00Z",
        ]);
        assert!(
            table.contains("build01") && table.contains("matched"),
            "{table}"
        );
        assert!(
            table.contains("over") && table.contains("not_billed"),
            "{table}"
        );
        let api = get(&app, "/api/v1/expenses?month=2026-10").await;
        let cli: Value =
            serde_json::from_str(&app.cli_ok(&["expenses", "--month", "2026-10", "--json"]))
                .unwrap();
        assert_eq!(cli, api);
        let table = app.cli_ok(&["expenses", "--month", "2026-10"]);
        assert!(table.contains("invoice gpu01 2026-10"), "{table}");
        assert!(table.contains("other, fund cuda"), "{table}");
    }
);

db_test!(
    month_and_at_are_checked_as_costs_checks_them,
    CONFIG,
    |app| async move {
        for path in ["/api/v1/reconciliation", "/api/v1/expenses"] {
            let r = app.get(&format!("{path}?month=2026-13")).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            assert!(status == 400 || status == 422, "{path} {status}");
            assert!(
                body["error"].as_str().unwrap().starts_with("month:"),
                "{body}"
            );
            let r = app
                .get(&format!("{path}?month=2026-10&at=9999-01-01T00:00:00Z"))
                .await;
            assert_eq!(r.status(), 422, "{path}");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().starts_with("at:"), "{body}");
        }
        // No expenses at all: nothing listed, cash is the openings.
        let r = get(&app, "/api/v1/reconciliation?month=2026-10").await;
        assert_eq!(r["cash_cents"], 400000);
        assert_eq!(r["other_expenses"], json!([]));
        assert_eq!(machine(&r, "build01")["status"], "unbilled");
    }
);

/// The books of the OpenCollective stand-in's ledger (`[opencollective]` is added by the
/// builder): build01's invoices are tagged `build01`.
const OC_BOOKS: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"

[rates]
USD = "0.90"

[[funds]]
slug = "general"
default = true

[[funds]]
slug = "cuda"
accounts = ["cuda-project"]

[[machines]]
name = "build01"
monthly = "165.00"
invoice_tags = ["build01"]
"#;

/// A donation, build01's September invoice (tag in other letter case, paid 3 October, fee
/// 1.20), a CI service in USD (host USD 20.00 + 1.00 at 0.90: 18.00 + 0.90), and the
/// invoice's reversal on 20 October (the fee is not returned).
fn oc_ledger() -> Vec<Value> {
    let hetzner = account(
        "Organization",
        "hetzner-online",
        "Hetzner Online GmbH",
        false,
    );
    let invoice = expense(
        "ex-1",
        &["Hetzner", "BUILD01"],
        hetzner,
        "2026-10-01T00:00:00.000Z",
        "Hetzner invoice (September)",
    );
    vec![
        tx(
            "d1",
            "2026-09-10T10:00:00.000Z",
            true,
            "CONTRIBUTION",
            collective(),
            account("Individual", "alice", "Alice", false),
            (50000, "EUR"),
            (50000, Some(-2500), Some(-300), "EUR"),
            None,
            None,
        ),
        expense_tx(
            "e1",
            "2026-10-03T09:00:00.000Z",
            collective(),
            invoice.clone(),
            (-16490, "EUR"),
            (-16490, Some(-120), "EUR"),
            None,
        ),
        expense_tx(
            "e3",
            "2026-10-07T08:00:00.000Z",
            collective(),
            expense(
                "ex-3",
                &["ci"],
                account("Organization", "ci-corp", "CI Corp", false),
                "2026-10-06T00:00:00.000Z",
                "CI minutes",
            ),
            (-2000, "USD"),
            (-2000, Some(-100), "USD"),
            None,
        ),
        expense_tx(
            "r1",
            "2026-10-20T14:00:00.000Z",
            collective(),
            invoice,
            (16490, "EUR"),
            (16490, None, "EUR"),
            Some("e1"),
        ),
    ]
}

db_test!(
    a_sync_from_the_stand_in_gives_the_worked_figures,
    TestApp::builder(OC_BOOKS).opencollective(Behaviour {
        transactions: oc_ledger(),
        opening_balance_cents: 100_000,
        ..Behaviour::default()
    }),
    |app| async move {
        std::env::set_var(TOKEN_ENV, TOKEN);
        let report = opencollective::sync(
            &app.db,
            &app.config,
            &Secrets::from_env(&app.config),
            SyncOptions::default(),
            t("2026-12-01T00:00:00Z"),
            |_| {},
        )
        .await
        .expect("sync");
        assert_eq!(report.expenses.inserted, 3);
        // September as of 10 October: the invoice of 1 October (arrears) pays for it, 10 under
        // the model (165.00 a month), within 1 %.
        let s = get(
            &app,
            "/api/v1/reconciliation?month=2026-09&at=2026-10-10T00:00:00Z",
        )
        .await;
        let b = machine(&s, "build01");
        assert_eq!(
            (
                &b["modeled_cents"],
                &b["billed_cents"],
                &b["difference_cents"],
                &b["tolerance_cents"],
                &b["status"]
            ),
            (
                &json!(16500),
                &json!(16490),
                &json!(-10),
                &json!(165),
                &json!("matched")
            ),
            "{s}"
        );
        assert_eq!(b["invoices"], json!(["e1"]));
        // Since the reversal of 20 October: unbilled.
        let s = get(&app, "/api/v1/reconciliation?month=2026-09").await;
        let b = machine(&s, "build01");
        assert_eq!(
            (&b["billed_cents"], &b["status"]),
            (&json!(0), &json!("unbilled")),
            "{s}"
        );
        assert_eq!(b["invoices"], json!(["e1", "r1"]));
        // October: build01 not invoiced yet; the USD CI service is general's other expense.
        let o = get(&app, "/api/v1/reconciliation?month=2026-10").await;
        assert_eq!(machine(&o, "build01")["status"], "unbilled");
        assert_eq!(
            o["other_expenses"],
            json!([{"fund": "general", "total_cents": 1890}])
        );
        // Cash at 1 November: net donations 47200 less what left (16610 + 1890 - 16490); the
        // same as OpenCollective's balance moved, so the check shows no drift.
        assert_eq!(o["cash_cents"], 47200 - (16610 + 1890 - 16490), "{o}");
        assert_eq!(o["opencollective"]["status"], "ok", "{o}");
        assert_eq!(o["opencollective"]["drift_cents"], 0, "{o}");
        // general's expense costs in October: the invoice's fee (build01's idle fund) and the
        // CI service's total.
        let f = get(&app, "/api/v1/funds?month=2026-10").await;
        let g = fund(&f, "general");
        assert_eq!(g["expenses_cents"], 120 + 1890, "{f}");
        assert_eq!(g["balance_cents"], 47200 - 16500 * 2 - (120 + 1890), "{f}");
        let e = get(&app, "/api/v1/expenses?month=2026-10").await;
        assert_eq!(e["total_cents"], 16610 + 1890 - 16490, "{e}");
        assert_eq!(e["expenses"][1]["fund"], "general", "{e}");
        assert_eq!(e["expenses"][1]["original_currency"], "USD", "{e}");
    }
);
