//! Expenses (money out) end to end: the store (idempotent by key, months marked stale in the
//! write's transaction), the OpenCollective sync of expenses and reversals with the check of
//! OpenCollective's own balance, and manual expenses through `POST /api/v1/expenses`.
use buildfund_entity::{book_stale, donations, sync_cursors};
use buildfund_jobs::books::expenses::{self, ExpenseError, ExpenseKind, ExpenseRecord};
use buildfund_jobs::books::opencollective_check::{latest_check, CheckStatus};
use buildfund_jobs::config::Secrets;
use buildfund_jobs::sources::opencollective::{self, SyncOptions};
use buildfund_tests::opencollective::{
    account, collective, expense, expense_tx, tx, Behaviour, TOKEN, TOKEN_ENV,
};
use buildfund_tests::{db_test, TestApp, TestAppBuilder};
use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde_json::Value;
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(id: &str, paid_at: &str, amount: i64, fees: i64) -> ExpenseRecord {
    ExpenseRecord {
        source: "opencollective".into(),
        external_id: id.into(),
        kind: ExpenseKind::Expense,
        paid_at: t(paid_at),
        account_slug: "nixfund".into(),
        payee: Some("Hetzner".into()),
        tags: vec!["Hosting".into(), "build01".into()],
        description: Some("Invoice".into()),
        incurred_at: t("2026-09-30T00:00:00Z"),
        amount_cents: amount,
        fees_cents: fees,
        original_amount: buildfund_jobs::money::format_cents(amount),
        original_currency: "EUR".into(),
        expense_ref: Some(format!("e-{id}")),
        reversal_of: None,
    }
}

/// Generation of each marked month, oldest first.
async fn marks(app: &buildfund_tests::TestApp) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = book_stale::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.month, m.generation))
        .collect();
    rows.sort();
    rows
}

db_test!(
    the_store_is_idempotent_and_marks_the_months_it_touches,
    |app| async move {
        let now = t("2026-12-06T12:00:00Z");
        let a = record("a", "2026-10-05T10:00:00Z", 12000, 150);
        let b = record("b", "2026-11-02T09:00:00Z", 5000, 0);
        let c = record("c", "2026-10-05T10:00:00Z", 300, 25);
        let stored = expenses::upsert(&app.db, &[b.clone(), a.clone(), c.clone()], now)
            .await
            .unwrap();
        assert_eq!(
            (stored.inserted, stored.updated, stored.unchanged),
            (3, 0, 0)
        );
        // November is 30 days long, so a write in October reopens October only.
        let first = marks(&app).await;
        assert_eq!(
            first,
            [("2026-10".to_string(), 1), ("2026-11".to_string(), 1)]
        );
        // The same records again: nothing written, nothing reopened.
        let again = expenses::upsert(&app.db, &[a.clone(), b.clone(), c.clone()], now)
            .await
            .unwrap();
        assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
        assert_eq!(marks(&app).await, first);
        // Moving b into October reopens both months (before and after).
        let mut moved = b.clone();
        moved.paid_at = t("2026-10-31T23:59:59Z");
        moved.tags = vec!["hosting".into()];
        let changed = expenses::upsert(&app.db, &[moved.clone()], now)
            .await
            .unwrap();
        assert_eq!((changed.inserted, changed.updated), (0, 1));
        assert_eq!(
            marks(&app).await,
            [("2026-10".to_string(), 2), ("2026-11".to_string(), 2)]
        );
        // Read back in [from, to), ordered by paid_at, source, external id.
        let october = expenses::paid_in(
            &app.db,
            t("2026-10-01T00:00:00Z"),
            t("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(october, [a.clone(), c.clone(), moved.clone()]);
        assert_eq!(october[0].total_cents(), 12150);
        let end_excluded = expenses::paid_in(
            &app.db,
            t("2026-10-01T00:00:00Z"),
            t("2026-10-31T23:59:59Z"),
        )
        .await
        .unwrap();
        assert_eq!(end_excluded, [a.clone(), c.clone()]);
        // A record beyond the bound refuses its whole batch: nothing of it is written.
        let huge = record("huge", "2026-11-03T00:00:00Z", 1_000_000_000_001, 0);
        let fresh = record("fresh", "2026-11-03T00:00:00Z", 100, 0);
        let err = expenses::upsert(&app.db, &[fresh, huge], now)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExpenseError::Refused { external_id, .. } if external_id == "huge"),
            "{err}"
        );
        assert!(expenses::by_key(&app.db, "opencollective", "fresh")
            .await
            .unwrap()
            .is_none());
    }
);

/// The books the stand-in's ledger goes into (`[opencollective]` is added by the builder).
const BOOKS: &str = r#"
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
"#;

/// The instant the syncs of these tests read up to.
const NOW: &str = "2026-12-01T00:00:00Z";

fn project() -> Value {
    account("Project", "cuda-project", "CUDA", false)
}

fn hetzner() -> Value {
    account(
        "Organization",
        "hetzner-online",
        "Hetzner Online GmbH",
        false,
    )
}

fn jane() -> Value {
    account("Individual", "jane", "Jane Doe", false)
}

/// The hosting invoice paid on 10-03 (its linked expense, shared by its reversal).
fn invoice() -> Value {
    expense(
        "ex-1",
        &["Hetzner", "build01"],
        hetzner(),
        "2026-10-01T00:00:00.000Z",
        "Hetzner invoice R0012 (September)",
    )
}

/// The canned ledger, oldest first; host currency EUR unless said. Expected records, worked by
/// hand (amount = -amountInHostCurrency, fees = -processor fee, USD host cents x 0.90 half away
/// from zero):
///
/// | id   | when  | what                                   | amount | fees | total  |
/// |------|-------|----------------------------------------|--------|------|--------|
/// | pre  | 08-20 | before ledger_start: never read        |        |      |        |
/// | d1   | 09-10 | donation 50000, fees 2500 + 300        | net 47200            |
/// | e1   | 10-03 | invoice Hetzner, EUR                   | 16490  | 120  | 16610  |
/// | e2   | 10-05 | domain, paid by cuda-project, 50 USD   | 4600   | 50   | 4650   |
/// |      |       | converted by OpenCollective to 46 EUR  |        |      |        |
/// | e3   | 10-07 | CI, host currency USD 20.00 + 1.00     | 1800   | 90   | 1890   |
/// | i1d  | 10-08 | cuda-project pays an expense to nixfund: internal, skipped   |
/// | i1c  | 10-08 | nixfund receives it (CREDIT, not a refund): skipped          |
/// | btd  | 10-09 | BALANCE_TRANSFER nixfund -> cuda-project: skipped (kind)     |
/// | btc  | 10-09 | its CREDIT on cuda-project: skipped                          |
/// | i2d  | 10-10 | nixfund pays an expense to cuda-project: internal, skipped   |
/// | i2c  | 10-10 | cuda-project receives it: skipped                            |
/// | r1   | 10-20 | reversal of e1 (fee not returned)      | -16490 | 0    | -16490 |
///
/// The ledger over [09-01, NOW): 47200 - (16610 + 4650 + 1890 - 16490) = 40540, and so is
/// OpenCollective's balance change (the internal pairs cancel out): no drift.
fn ledger() -> Vec<Value> {
    vec![
        tx(
            "pre",
            "2026-08-20T10:00:00.000Z",
            true,
            "CONTRIBUTION",
            collective(),
            jane(),
            (7000, "EUR"),
            (7000, None, None, "EUR"),
            None,
            None,
        ),
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
            invoice(),
            (-16490, "EUR"),
            (-16490, Some(-120), "EUR"),
            None,
        ),
        expense_tx(
            "e2",
            "2026-10-05T12:00:00.000Z",
            project(),
            expense(
                "ex-2",
                &["DOMAIN"],
                jane(),
                "2026-10-04T15:30:00.000Z",
                "nix-cuda.org renewal",
            ),
            (-5000, "USD"),
            (-4600, Some(-50), "EUR"),
            None,
        ),
        expense_tx(
            "e3",
            "2026-10-07T08:00:00.000Z",
            collective(),
            expense(
                "ex-3",
                &["ci", "Hetzner"],
                account("Organization", "ci-corp", "CI Corp", false),
                "2026-10-06T00:00:00.000Z",
                "CI minutes",
            ),
            (-2000, "USD"),
            (-2000, Some(-100), "USD"),
            None,
        ),
        expense_tx(
            "i1d",
            "2026-10-08T08:00:00.000Z",
            project(),
            expense(
                "ex-4",
                &["transfer"],
                collective(),
                "2026-10-08T00:00:00.000Z",
                "Back to the collective",
            ),
            (-3000, "EUR"),
            (-3000, None, "EUR"),
            None,
        ),
        tx(
            "i1c",
            "2026-10-08T08:00:00.000Z",
            true,
            "EXPENSE",
            collective(),
            project(),
            (3000, "EUR"),
            (3000, None, None, "EUR"),
            None,
            None,
        ),
        tx(
            "btd",
            "2026-10-09T08:00:00.000Z",
            false,
            "BALANCE_TRANSFER",
            collective(),
            project(),
            (-10000, "EUR"),
            (-10000, None, None, "EUR"),
            None,
            None,
        ),
        tx(
            "btc",
            "2026-10-09T08:00:00.000Z",
            true,
            "BALANCE_TRANSFER",
            project(),
            collective(),
            (10000, "EUR"),
            (10000, None, None, "EUR"),
            None,
            None,
        ),
        expense_tx(
            "i2d",
            "2026-10-10T08:00:00.000Z",
            collective(),
            expense(
                "ex-5",
                &["transfer"],
                project(),
                "2026-10-10T00:00:00.000Z",
                "To the CUDA project",
            ),
            (-1500, "EUR"),
            (-1500, None, "EUR"),
            None,
        ),
        tx(
            "i2c",
            "2026-10-10T08:00:00.000Z",
            true,
            "EXPENSE",
            project(),
            collective(),
            (1500, "EUR"),
            (1500, None, None, "EUR"),
            None,
            None,
        ),
        expense_tx(
            "r1",
            "2026-10-20T14:00:00.000Z",
            collective(),
            invoice(),
            (16490, "EUR"),
            (16490, None, "EUR"),
            Some("e1"),
        ),
    ]
}

/// The records the ledger must give, in `paid_in` order.
fn expected() -> Vec<ExpenseRecord> {
    let rec = |id: &str,
               kind: ExpenseKind,
               paid: &str,
               account: &str,
               payee: &str,
               tags: &[&str],
               description: &str,
               incurred: &str,
               (amount, fees): (i64, i64),
               (original, currency): (&str, &str),
               expense_ref: &str,
               reversal_of: Option<&str>| ExpenseRecord {
        source: "opencollective".into(),
        external_id: id.into(),
        kind,
        paid_at: t(paid),
        account_slug: account.into(),
        payee: Some(payee.into()),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        description: Some(description.into()),
        incurred_at: t(incurred),
        amount_cents: amount,
        fees_cents: fees,
        original_amount: original.into(),
        original_currency: currency.into(),
        expense_ref: Some(expense_ref.into()),
        reversal_of: reversal_of.map(str::to_string),
    };
    vec![
        rec(
            "e1",
            ExpenseKind::Expense,
            "2026-10-03T09:00:00Z",
            "nixfund",
            "Hetzner Online GmbH",
            &["Hetzner", "build01"],
            "Hetzner invoice R0012 (September)",
            "2026-10-01T00:00:00Z",
            (16490, 120),
            ("164.90", "EUR"),
            "ex-1",
            None,
        ),
        rec(
            "e2",
            ExpenseKind::Expense,
            "2026-10-05T12:00:00Z",
            "cuda-project",
            "Jane Doe",
            &["DOMAIN"],
            "nix-cuda.org renewal",
            "2026-10-04T00:00:00Z",
            (4600, 50),
            ("50.00", "USD"),
            "ex-2",
            None,
        ),
        rec(
            "e3",
            ExpenseKind::Expense,
            "2026-10-07T08:00:00Z",
            "nixfund",
            "CI Corp",
            &["ci", "Hetzner"],
            "CI minutes",
            "2026-10-06T00:00:00Z",
            (1800, 90),
            ("20.00", "USD"),
            "ex-3",
            None,
        ),
        rec(
            "r1",
            ExpenseKind::Reversal,
            "2026-10-20T14:00:00Z",
            "nixfund",
            "Hetzner Online GmbH",
            &["Hetzner", "build01"],
            "Hetzner invoice R0012 (September)",
            "2026-10-01T00:00:00Z",
            (-16490, 0),
            ("-164.90", "EUR"),
            "ex-1",
            Some("e1"),
        ),
    ]
}

fn with_ledger(behaviour: Behaviour) -> TestAppBuilder {
    TestApp::builder(BOOKS).opencollective(Behaviour {
        opening_balance_cents: 250_000,
        ..behaviour
    })
}

fn options() -> SyncOptions {
    SyncOptions {
        page_size: 3,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

async fn sync(app: &TestApp) -> anyhow::Result<opencollective::SyncReport> {
    std::env::set_var(TOKEN_ENV, TOKEN);
    Ok(opencollective::sync(
        &app.db,
        &app.config,
        &Secrets::from_env(&app.config),
        options(),
        t(NOW),
        |_| {},
    )
    .await?)
}

async fn all_expenses(app: &TestApp) -> Vec<ExpenseRecord> {
    expenses::paid_in(&app.db, t("2026-01-01T00:00:00Z"), t(NOW))
        .await
        .unwrap()
}

db_test!(
    a_sync_stores_every_expense_and_reversal_exactly,
    with_ledger(Behaviour {
        transactions: ledger(),
        ..Behaviour::default()
    }),
    |app| async move {
        let report = sync(&app).await.expect("sync");
        // 11 read from ledger_start (pre is before it): d1, four expense records, six skipped.
        assert_eq!((report.pages, report.records), (4, 11));
        assert_eq!(report.stored.inserted, 1);
        assert_eq!(report.expenses.inserted, 4);
        assert_eq!(report.skipped, 6);
        assert_eq!(all_expenses(&app).await, expected());
        let totals: Vec<i64> = expected().iter().map(|e| e.total_cents()).collect();
        assert_eq!(totals, [16610, 4650, 1890, -16490]);

        // The check: no drift, stored, the balances as OpenCollective gave them.
        let check = report.check.expect("a check after the sync");
        assert_eq!(check.status, CheckStatus::Ok, "{check:?}");
        assert_eq!(check.through, t(NOW));
        assert_eq!(check.balance_oc_start_cents, Some(250_000 + 7000));
        assert_eq!(check.balance_oc_cents, Some(250_000 + 7000 + 40540));
        assert_eq!(
            (check.ledger_cents, check.drift_cents),
            (Some(40540), Some(0))
        );
        assert_eq!(latest_check(&app.db).await.unwrap(), Some(check));
        {
            let s = app.opencollective().state();
            assert_eq!(
                s.balance_requests,
                [(
                    "2026-12-01T00:00:00Z".to_string(),
                    "2026-09-01T00:00:00Z".to_string()
                )]
            );
        }

        // A second sync re-reads the overlap and changes nothing.
        let again = sync(&app).await.expect("second sync");
        assert_eq!(
            (again.expenses.inserted, again.expenses.updated),
            (0, 0),
            "{again:?}"
        );
        assert_eq!(all_expenses(&app).await, expected());
        assert_eq!(again.check.unwrap().drift_cents, Some(0));
    }
);

/// Forgets every stored record and the cursor, as before a first sync.
async fn forget(app: &TestApp) {
    buildfund_entity::expenses::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    donations::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    sync_cursors::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
}

db_test!(
    a_sync_interrupted_after_any_page_resumes_without_counting_twice,
    with_ledger(Behaviour {
        transactions: ledger(),
        ..Behaviour::default()
    }),
    |app| async move {
        // The 11 transactions from ledger_start come in pages of 3; page k + 1 fails.
        let read: Vec<&str> = vec![
            "d1", "e1", "e2", "e3", "i1d", "i1c", "btd", "btc", "i2d", "i2c", "r1",
        ];
        for stored_pages in 1..=3usize {
            forget(&app).await;
            app.opencollective().state().error_at_offset = Some(3 * stored_pages as i64);
            let e = format!("{:#}", sync(&app).await.expect_err("an error page"));
            assert!(
                e.contains(&format!("{stored_pages} page(s) were stored")),
                "{e}"
            );
            // Exactly the expenses of the stored pages, once each.
            let stored: Vec<String> = all_expenses(&app)
                .await
                .into_iter()
                .map(|r| r.external_id)
                .collect();
            let first: Vec<String> = read[..3 * stored_pages]
                .iter()
                .filter(|id| expected().iter().any(|r| r.external_id == **id))
                .map(|id| id.to_string())
                .collect();
            assert_eq!(stored, first, "after {stored_pages} page(s)");
            // The rest of the ledger changes nothing that was read; the resumed sync reads
            // from the cursor minus the overlap (a day), so it re-reads stored pages.
            app.opencollective().state().error_at_offset = None;
            let resumed = sync(&app).await.expect("resumed");
            assert_eq!(all_expenses(&app).await, expected(), "after {stored_pages}");
            assert_eq!(resumed.expenses.updated, 0);
            let check = resumed.check.unwrap();
            assert_eq!(
                (check.status, check.drift_cents),
                (CheckStatus::Ok, Some(0)),
                "after {stored_pages}"
            );
        }
    }
);

db_test!(
    an_expense_missing_from_the_listing_is_a_drift_in_the_log_the_gauge_and_the_status,
    with_ledger(Behaviour {
        transactions: ledger(),
        hidden: vec![expense_tx(
            "hidden-1",
            "2026-11-12T10:00:00.000Z",
            collective(),
            expense(
                "ex-9",
                &["misc"],
                jane(),
                "2026-11-10T00:00:00.000Z",
                "A payout the listing leaves out",
            ),
            (-2500, "EUR"),
            (-2500, Some(-30), "EUR"),
            None,
        )],
        ..Behaviour::default()
    }),
    |app| async move {
        // The sync through the CLI (its clock is the wall clock, after every canned line).
        let out = app.cli(&["sync", "opencollective"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("opencollective check: DRIFT of -25.30 EUR"),
            "{stdout}"
        );
        assert!(stderr.contains("WARN"), "{stderr}");
        assert!(
            stderr.contains("OpenCollective check: drift of -25.30 EUR"),
            "{stderr}"
        );
        let check = latest_check(&app.db).await.unwrap().expect("stored");
        assert_eq!(
            (check.status, check.drift_cents, check.ledger_cents),
            (CheckStatus::Drift, Some(-2530), Some(40540))
        );
        // The record the listing hid is not invented: nothing is corrected.
        assert_eq!(all_expenses(&app).await, expected());

        let metrics = app.get_metrics().await;
        let value = |name: &str, labels: &[(&str, &str)]| {
            metrics
                .iter()
                .find(|s| {
                    s.name == name
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| s.value)
        };
        assert_eq!(
            value(
                "buildfund_opencollective_drift_cents",
                &[("collective", "nixfund")]
            ),
            Some(-2530.0)
        );
        assert_eq!(
            value(
                "buildfund_opencollective_check_status",
                &[("collective", "nixfund"), ("status", "drift")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                "buildfund_opencollective_check_timestamp_seconds",
                &[("collective", "nixfund")]
            ),
            Some(check.checked_at.timestamp_micros() as f64 / 1e6)
        );

        let status = app.cli_ok(&["books", "status"]);
        assert!(
            status.contains("opencollective check: DRIFT of -25.30 EUR"),
            "{status}"
        );
        let json: Value =
            serde_json::from_str(&app.cli_ok(&["books", "status", "--json"])).unwrap();
        assert_eq!(json["opencollective_check"]["status"], "drift");
        assert_eq!(json["opencollective_check"]["drift_cents"], -2530);
    }
);

db_test!(
    a_collective_in_another_currency_is_skipped_and_says_why,
    with_ledger(Behaviour {
        transactions: ledger(),
        balance_currency: Some("USD".into()),
        ..Behaviour::default()
    }),
    |app| async move {
        let check = sync(&app).await.expect("sync").check.unwrap();
        assert_eq!(
            (check.status, check.drift_cents),
            (CheckStatus::Skipped, None)
        );
        assert!(
            check
                .reason
                .as_deref()
                .unwrap()
                .contains("in USD, not in the ledger currency EUR"),
            "{check:?}"
        );
        let metrics = app.get_metrics().await;
        assert!(!metrics
            .iter()
            .any(|s| s.name == "buildfund_opencollective_drift_cents"));
        assert!(metrics
            .iter()
            .any(|s| s.name == "buildfund_opencollective_check_status"
                && s.labels.get("status").map(String::as_str) == Some("skipped")
                && s.value == 1.0));
    }
);

// An expense in a currency with no rate (host currency GBP) on page 2.
db_test!(
    an_unconvertible_expense_stops_the_sync_by_name,
    with_ledger(Behaviour {
        transactions: {
            let mut l = ledger();
            l.truncate(4); // pre, d1, e1, e2: page 1 from ledger_start is d1, e1, e2
            l.push(expense_tx(
                "e-gbp",
                "2026-10-11T10:00:00.000Z",
                collective(),
                expense(
                    "ex-gbp",
                    &["misc"],
                    jane(),
                    "2026-10-11T00:00:00.000Z",
                    "GBP",
                ),
                (-1000, "GBP"),
                (-1000, None, "GBP"),
                None,
            ));
            l
        },
        ..Behaviour::default()
    }),
    |app| async move {
        let e = format!("{:#}", sync(&app).await.expect_err("GBP has no rate"));
        assert!(e.contains("transaction e-gbp"), "{e}");
        assert!(
            e.contains("the currency GBP cannot be converted into the ledger currency EUR"),
            "{e}"
        );
        let ids: Vec<String> = all_expenses(&app)
            .await
            .into_iter()
            .map(|r| r.external_id)
            .collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert!(
            latest_check(&app.db).await.unwrap().is_none(),
            "no check after a failed sync"
        );
    }
);

/// Books from last month on, the sync never scheduled (only the webhook starts it), and the
/// stand-in holding one expense paid a minute ago that no sync has read yet.
fn webhook_setup() -> TestAppBuilder {
    use buildfund_jobs::calendar::Month;
    let config = format!(
        "currency = \"EUR\"\nledger_start = \"{}-01\"\n\n[schedule]\nopencollective_sync = \"\"\n",
        Month::of(Utc::now()).prev()
    );
    let at = (Utc::now() - chrono::Duration::seconds(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    TestApp::builder(config).opencollective(Behaviour {
        transactions: vec![expense_tx(
            "wh-expense",
            &at,
            collective(),
            invoice(),
            (-16490, "EUR"),
            (-16490, Some(-120), "EUR"),
            None,
        )],
        ..Behaviour::default()
    })
}

db_test!(
    the_expense_paid_webhook_syncs_the_expense,
    webhook_setup(),
    |app| async move {
        use buildfund_tests::opencollective::WEBHOOK_TOKEN;
        assert_eq!(app.opencollective().state().requests, 0);
        // `collective.expense.paid` as OpenCollective sends it (never read as data).
        let call = serde_json::json!({
            "createdAt": Utc::now().to_rfc3339(), "id": 918274, "type": "collective.expense.paid",
            "CollectiveId": 4242,
            "data": {"expense": {"id": 3141, "description": "Hetzner invoice", "amount": 16490,
                                 "currency": "EUR", "tags": ["hetzner"]},
                     "collective": {"id": 4242, "slug": "nixfund", "type": "COLLECTIVE"}}
        });
        let res = app.post_opencollective_webhook(WEBHOOK_TOKEN, &call).await;
        assert_eq!(res.status(), 202);
        let sent = std::time::Instant::now();
        let stored = loop {
            if let Some((r, _)) = expenses::by_key(&app.db, "opencollective", "wh-expense")
                .await
                .unwrap()
            {
                break r;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "the expense is not stored 30 s after its webhook"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!((stored.amount_cents, stored.fees_cents), (16490, 120));
        // The run's check follows its pages.
        let check = loop {
            if let Some(c) = latest_check(&app.db).await.unwrap() {
                break c;
            }
            assert!(sent.elapsed() < Duration::from_secs(30), "no check");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(
            (check.status, check.drift_cents),
            (CheckStatus::Ok, Some(0))
        );
        assert_eq!(app.opencollective().state().syncs, 1);
    }
);

/// Books for manual expenses only (no OpenCollective).
const MANUAL_BOOKS: &str = "currency = \"EUR\"\nledger_start = \"2026-09-01\"\n[[funds]]\nslug = \"general\"\ndefault = true\n";

db_test!(
    manual_expenses_are_validated_and_idempotent,
    MANUAL_BOOKS,
    |app| async move {
        let admin = app.token("admin").await;
        let ingest = app.token("ingest").await;
        let body = serde_json::json!({
            "idempotency_key": "bank-2026-11-03", "paid_at": "2026-11-03T10:00:00Z",
            "incurred_at": "2026-11-01", "payee": "Hetzner Online GmbH",
            "tags": ["Hetzner", "build01"], "description": "Invoice R0013 (October)",
            "amount_cents": 16490, "fees_cents": 35,
            "original_amount": "164.90", "original_currency": "EUR"});
        let anonymous = reqwest::Client::new()
            .post(app.url("/api/v1/expenses"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        let (status, _) = app
            .post_json("/api/v1/expenses", &ingest, body.clone())
            .await;
        assert_eq!(status, 403);
        assert!(expenses::by_key(&app.db, "manual", "bank-2026-11-03")
            .await
            .unwrap()
            .is_none());

        let (status, created) = app
            .post_json("/api/v1/expenses", &admin, body.clone())
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(
            created,
            serde_json::json!({
                "source": "manual", "id": "bank-2026-11-03", "kind": "manual",
                "paid_at": "2026-11-03T10:00:00Z", "incurred_at": "2026-11-01T00:00:00Z",
                "account": "manual", "payee": "Hetzner Online GmbH",
                "tags": ["Hetzner", "build01"], "description": "Invoice R0013 (October)",
                "amount_cents": 16490, "fees_cents": 35, "total_cents": 16525,
                "original_amount": "164.90", "original_currency": "EUR"})
        );
        // Stored, and November's books reopened in the same write.
        let (stored, _) = expenses::by_key(&app.db, "manual", "bank-2026-11-03")
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.total_cents(), 16525);
        assert!(marks(&app).await.iter().any(|(m, _)| m == "2026-11"));

        // The same key and content (the date written as an instant): a replay, same answer.
        let mut resend = body.clone();
        resend["incurred_at"] = serde_json::json!("2026-11-01T00:00:00+00:00");
        let (status, replayed) = app.post_json("/api/v1/expenses", &admin, resend).await;
        assert_eq!((status, &replayed), (200, &created));
        // The same key with other content: a conflict, nothing changed.
        let mut other = body.clone();
        other["amount_cents"] = serde_json::json!(16491);
        let (status, conflict) = app.post_json("/api/v1/expenses", &admin, other).await;
        assert_eq!(status, 409, "{conflict}");
        assert!(conflict["error"]
            .as_str()
            .unwrap()
            .contains("bank-2026-11-03"));
        assert_eq!(
            expenses::by_key(&app.db, "manual", "bank-2026-11-03")
                .await
                .unwrap()
                .unwrap()
                .0,
            stored
        );

        // Every invalid field is named.
        let bad = serde_json::json!({
            "idempotency_key": "x", "paid_at": "2126-01-01T00:00:00Z", "incurred_at": "soon",
            "tags": vec!["t"; 33], "amount_cents": -5, "fees_cents": -1,
            "original_amount": "abc", "original_currency": "euro"});
        let (status, err) = app.post_json("/api/v1/expenses", &admin, bad).await;
        assert_eq!(status, 422, "{err}");
        let fields: Vec<&str> = err["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "paid_at",
                "incurred_at",
                "tags",
                "amount_cents",
                "fees_cents",
                "original_amount",
                "original_currency"
            ]
        );
        // An unknown field is refused, not ignored.
        let mut unknown = body.clone();
        unknown["idempotency_key"] = serde_json::json!("k2");
        unknown["amount"] = serde_json::json!(5);
        let (status, err) = app.post_json("/api/v1/expenses", &admin, unknown).await;
        assert_eq!(status, 400, "{err}");
        assert!(expenses::by_key(&app.db, "manual", "k2")
            .await
            .unwrap()
            .is_none());
    }
);

db_test!(
    concurrent_manual_expenses_with_one_key_store_one,
    MANUAL_BOOKS,
    |app| async move {
        let admin = app.token("admin").await;
        let body = |amount: i64| {
            serde_json::json!({"idempotency_key": "race", "paid_at": "2026-10-03T10:00:00Z",
                               "incurred_at": "2026-10-01", "amount_cents": amount})
        };
        let posts: Vec<_> = (0..8)
            .map(|i| {
                let app = app.clone();
                let admin = admin.clone();
                tokio::spawn(async move {
                    app.post_json("/api/v1/expenses", &admin, body(1000 + i % 2))
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for p in posts {
            answers.push(p.await.unwrap());
        }
        let created: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s == 201).collect();
        assert_eq!(created.len(), 1, "{answers:?}");
        let winner = created[0].1["amount_cents"].as_i64().unwrap();
        for (status, answer) in &answers {
            match *status {
                201 => {}
                200 => assert_eq!(answer["amount_cents"].as_i64(), Some(winner)),
                409 => {}
                other => panic!("{other}: {answer}"),
            }
        }
        // Every loser with the winner's content replayed, every other conflicted.
        let (stored, _) = expenses::by_key(&app.db, "manual", "race")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.amount_cents, winner);
    }
);
