//! Stored month books and stored days: every figure read with the store (months and days,
//! months alone, days alone) equals the figure computed from the data without it, and late
//! data (a step ingested into a stored month, a correction moving a step, a manual donation
//! dated in one) reopens exactly the months and days it touches, the balances after them
//! following.
use buildfund_entity::{book_month_funds, book_month_jobs, book_month_lines, book_months};
use buildfund_jobs::books::donations::{self, Contributor, DonationRecord};
use buildfund_jobs::books::store::{self, MonthState};
use buildfund_jobs::books::{costs, funds};
use buildfund_jobs::bounds::At;
use buildfund_jobs::calendar::{parse_rfc3339, Month};
use buildfund_jobs::{gate, report};
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-15"
idle = "separate"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"
reserve = "50.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"
tiers = ["gpu-sponsor"]
accounts = ["nix-cuda"]

[[funds]]
slug = "infra"
name = "Infrastructure"
accounts = ["nix-infra"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "200.00"

[[pools]]
slug = "release"
fund = "infra"
jobsets = ["nixos:release-*"]

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"

[[machines]]
name = "hourly01"
slots = 1
hourly = "0.37"
idle_fund = "infra"

[[machines]]
name = "gpu01"
metered = "2.40"

[[machines]]
name = "late01"
slots = 3
monthly = "99.99"
active_from = 2026-03-10
active_until = 2026-09-20T12:00:00Z
idle_fund = "cuda"
"#;

const MACHINES: &[&str] = &["build03", "hourly01", "gpu01", "late01", "ghost01"];
const JOBSETS: &[(&str, &str)] = &[
    ("nixpkgs", "cuda"),
    ("nixpkgs", "cuda-tests"),
    ("nixpkgs", "trunk"),
    ("nixos", "release-26.05"),
    ("hydra", "master"),
];

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn step(build: i64, machine: &str, jobset: (&str, &str), start: i64, stop: i64) -> Value {
    json!({"build": build, "step": 1, "project": jobset.0, "jobset": jobset.1,
           "job": format!("pkg{}.x86_64-linux", build % 7),
           "machine": machine, "start": start, "stop": stop})
}

async fn ingest(app: &TestApp, steps: &[Value]) -> Value {
    let body: String = steps.iter().map(|s| format!("{s}\n")).collect();
    let token = app.token("ingest").await;
    let res = app
        .client
        .post(app.url("/api/v1/build-steps"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A manual donation (a refund when `gross` is negative) with 5 % fees.
pub(crate) fn donation(
    id: &str,
    at: DateTime<Utc>,
    account: &str,
    tier: Option<&str>,
    gross: i64,
) -> DonationRecord {
    let fees = gross / 20;
    DonationRecord {
        source: "manual".into(),
        external_id: id.into(),
        kind: if gross < 0 { "refund" } else { "contribution" }.into(),
        occurred_at: at,
        account_slug: account.into(),
        tier_slug: tier.map(Into::into),
        contributor: Contributor::anonymous(),
        gross_cents: gross,
        fees_cents: fees,
        net_cents: gross - fees,
        original_amount: format!("{}.{:02}", gross / 100, (gross % 100).abs()),
        original_currency: "EUR".into(),
        refund_of: None,
        description: None,
    }
}

/// About 700 steps from before `ledger_start` into December, across month ends, on every kind
/// of machine (and one that is not configured), and 40 donations.
async fn seed(app: &TestApp) {
    let base = t("2026-01-13T00:00:00Z").timestamp();
    let mut steps = Vec::new();
    for i in 0..700i64 {
        let start = base + i * 11 * 3600 + (i * i * 37) % 9000;
        let len = 600 + (i * 7919) % 40_000;
        let m = MACHINES[(i as usize * 7 + i as usize / 3) % MACHINES.len()];
        let j = JOBSETS[(i as usize * 3 + i as usize / 5) % JOBSETS.len()];
        steps.push(step(i + 1, m, j, start, start + len));
    }
    for chunk in steps.chunks(250) {
        ingest(app, chunk).await;
    }
    let accounts = [
        ("nixos", None),
        ("nix-cuda", None),
        ("nixos", Some("gpu-sponsor")),
        ("nix-infra", None),
    ];
    let mut records = Vec::new();
    for i in 0..40i64 {
        let at = t("2026-01-10T00:00:00Z") + chrono::Duration::seconds(i * 8 * 86_400 + i * 3_333);
        let (account, tier) = accounts[i as usize % accounts.len()];
        let gross = if i % 13 == 12 { -1500 } else { 1000 + i * 250 };
        records.push(donation(&format!("d{i}"), at, account, tier, gross));
    }
    donations::upsert(&app.db, &records, app.clock.now())
        .await
        .unwrap();
}

/// Every figure the books give, at instants around month ends, mid-month, at `ledger_start`
/// and at the end of the stored months, as JSON text (the `as_of` of now-based answers left
/// out).
async fn figures(app: &TestApp) -> Vec<String> {
    let (db, config) = (&app.db, app.config.as_ref());
    let far = t("2026-12-01T00:00:00Z");
    let mut out = Vec::new();
    let mut month = Month::parse("2026-01").unwrap();
    while month <= Month::parse("2026-11").unwrap() {
        let c = costs::costs_report(db, config, month, At::new(far, far).unwrap())
            .await
            .unwrap();
        out.push(format!(
            "costs {month} {}",
            serde_json::to_string(&c).unwrap()
        ));
        let (f, _) = funds::funds_month(db, config, month, far).await.unwrap();
        out.push(format!(
            "funds {month} {}",
            serde_json::to_string(&f).unwrap()
        ));
        let mid = month.start() + chrono::Duration::seconds(14 * 86_400 + 3_601);
        let (f, _) = funds::funds_month(db, config, month, mid).await.unwrap();
        out.push(format!(
            "funds {month} at {mid} {}",
            serde_json::to_string(&f).unwrap()
        ));
        for path in [
            format!("/api/v1/funds?month={month}"),
            format!("/api/v1/costs?month={month}"),
            format!("/api/v1/costs/jobs?month={month}&limit=10000"),
        ] {
            let mut body: Value = app.get(&path).await.json().await.unwrap();
            body.as_object_mut().unwrap().remove("as_of");
            out.push(format!("{path} {body}"));
        }
        month = month.next();
    }
    let instants = [
        "2026-01-15T00:00:00Z",
        "2026-01-20T12:00:00Z",
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-03-02T06:30:00Z",
        "2026-03-31T23:59:59Z",
        "2026-04-15T00:00:00Z",
        "2026-07-01T00:00:00Z",
        "2026-09-20T12:00:00Z",
        "2026-10-31T12:00:00Z",
        "2026-11-30T12:00:00Z",
        "2026-12-01T00:00:00Z",
    ];
    for s in instants {
        let at = t(s);
        let st = funds::standing(db, config, at).await.unwrap();
        out.push(format!(
            "standing {s} {:?} {:?}",
            st.balance, st.cost_30_days
        ));
        let to_date = costs::cost_to_date_by_fund(db, config, at).await.unwrap();
        out.push(format!("to date {s} {to_date:?}"));
        let g = gate::evaluate(db, config, at).await.unwrap();
        out.push(format!(
            "gate {s} {}",
            serde_json::to_string(&g.pools).unwrap()
        ));
        let body: Value = app
            .get(&format!("/api/v1/gate/nixpkgs/cuda?at={s}"))
            .await
            .json()
            .await
            .unwrap();
        out.push(format!("gate http {s} {body}"));
        let r = report::month_report(db, config, Month::of(at), at)
            .await
            .unwrap();
        out.push(format!("report {s} {}", serde_json::to_string(&r).unwrap()));
        let parts = costs::span_lines(
            db,
            config,
            buildfund_jobs::calendar::Span::new(
                t("2026-01-01T00:00:00Z").timestamp(),
                at.timestamp(),
            ),
            at,
        )
        .await
        .unwrap();
        out.push(format!(
            "span {s} {}",
            serde_json::to_string(&parts).unwrap()
        ));
        let raised = funds::raised_by_fund(
            db,
            config,
            t("2026-02-01T00:00:00Z"),
            t("2026-03-01T00:00:00Z"),
        )
        .await
        .unwrap();
        out.push(format!("raised {raised:?}"));
    }
    let history =
        buildfund_jobs::books::history(db, config, Month::parse("2026-11").unwrap(), 12, far)
            .await
            .unwrap();
    out.push(format!(
        "history {}",
        serde_json::to_string(&history).unwrap()
    ));
    out
}

fn assert_same(with: &[String], without: &[String]) {
    assert_eq!(with.len(), without.len());
    for (a, b) in with.iter().zip(without) {
        assert_eq!(a, b, "a figure differs with the store");
    }
}

async fn states(app: &TestApp) -> Vec<(String, MonthState)> {
    store::books_status(&app.db, &app.config, Utc::now())
        .await
        .unwrap()
        .months
        .into_iter()
        .filter(|(m, _)| *m <= Month::parse("2026-11").unwrap())
        .map(|(m, s)| (m.to_string(), s))
        .collect()
}

/// The months (through November) that are not stored fresh.
async fn reopened(app: &TestApp) -> Vec<String> {
    states(app)
        .await
        .into_iter()
        .filter(|(_, s)| *s != MonthState::Stored)
        .map(|(m, _)| m)
        .collect()
}

async fn ensure(app: &TestApp) -> store::Ensured {
    store::ensure(&app.db, &app.config, Utc::now(), |_, _, _| {})
        .await
        .unwrap()
}

/// Forgets every stored month, so reads compute from the data again.
async fn clear(app: &TestApp) {
    book_month_lines::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    book_month_funds::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    book_month_jobs::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    book_months::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
}

/// The days (through November) whose busy seconds are not stored fresh.
async fn reopened_days(app: &TestApp) -> Vec<String> {
    let status = store::books_status(&app.db, &app.config, Utc::now())
        .await
        .unwrap();
    status
        .days
        .todo
        .into_iter()
        .filter(|d| d.as_str() < "2026-12-01")
        .collect()
}

/// The days of the inclusive ranges, as `books status` names them.
fn days(ranges: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in ranges {
        let mut d = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap();
        let to = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap();
        while d <= to {
            out.push(d.to_string());
            d = d.succ_opt().unwrap();
        }
    }
    out
}

/// Forgets every stored day, so reads take their busy seconds from the steps again.
async fn clear_days(app: &TestApp) {
    for table in ["book_day_busy", "book_days"] {
        app.db
            .execute_unprepared(&format!("DELETE FROM {table}"))
            .await
            .unwrap();
    }
}

/// Every figure, read with months and days stored, with the days alone (months forgotten) and
/// with nothing stored, is the same; the store is left with months and days stored again.
async fn check_every_way(app: &TestApp) -> Vec<String> {
    ensure(app).await;
    assert!(reopened(app).await.is_empty());
    assert!(reopened_days(app).await.is_empty());
    let stored = figures(app).await;
    clear(app).await;
    assert_same(&figures(app).await, &stored);
    clear_days(app).await;
    assert_same(&figures(app).await, &stored);
    ensure(app).await;
    stored
}

db_test!(
    every_figure_is_the_same_with_the_store,
    CONFIG,
    |app| async move {
        seed(&app).await;
        let without = figures(&app).await;
        assert_eq!(reopened(&app).await.len(), 11, "nothing is stored yet");
        let done = ensure(&app).await;
        assert!(done.stored >= 11, "{done:?}");
        assert!(reopened(&app).await.is_empty());
        // The months are really read from the store: a stored month is found for each.
        let mut month = Month::parse("2026-01").unwrap();
        while month <= Month::parse("2026-11").unwrap() {
            let m = store::stored_month(&app.db, &app.config, month, true, true)
                .await
                .unwrap();
            assert!(m.is_some(), "{month} is not read from the store");
            month = month.next();
        }
        let with = figures(&app).await;
        assert_same(&with, &without);
        // Every day from the first step's month (2026-01) to the last that is over is stored, and
        // the figures read from the days alone, or the months alone, are the same.
        let status = store::books_status(&app.db, &app.config, Utc::now())
            .await
            .unwrap();
        assert_eq!(status.days.first.as_deref(), Some("2026-01-01"));
        assert!(status.days.days >= 334, "{:?}", status.days);
        assert_eq!(status.days.stored, status.days.days, "{:?}", status.days);
        assert!(reopened_days(&app).await.is_empty());
        clear(&app).await;
        assert_same(&figures(&app).await, &without);
        // The reads really sum the stored days: a stored day changed behind the marks'
        // back changes a figure.
        app.db
            .execute_unprepared(
                "UPDATE book_day_busy SET busy_seconds = busy_seconds + 3600 \
                 WHERE day = 1774915200 AND machine = 'build03'",
            )
            .await
            .unwrap();
        assert_ne!(
            figures(&app).await,
            without,
            "2026-03-20 is read from the store"
        );
        clear_days(&app).await;
        ensure(&app).await;
        clear_days(&app).await;
        assert_same(&figures(&app).await, &without);
        let done = ensure(&app).await;
        assert_eq!(done.stored, 0, "the months are stored");
        assert_eq!(done.days, status.days.days, "every day is stored again");
        // Storing again finds nothing to do; the same months and days stay.
        let again = ensure(&app).await;
        assert_eq!((again.stored, again.days), (0, 0));
        let rows = book_months::Entity::find().count(&app.db).await.unwrap();
        assert_eq!(
            rows,
            store::books_status(&app.db, &app.config, Utc::now())
                .await
                .unwrap()
                .months
                .len() as u64
        );
    }
);

db_test!(
    late_data_reopens_exactly_its_months,
    CONFIG,
    |app| async move {
        seed(&app).await;
        ensure(&app).await;
        let before = figures(&app).await;

        // The same steps again change nothing and reopen nothing.
        let base = t("2026-01-13T00:00:00Z").timestamp();
        let i = 300i64;
        let original = step(
            i + 1,
            MACHINES[(i as usize * 7 + i as usize / 3) % MACHINES.len()],
            JOBSETS[(i as usize * 3 + i as usize / 5) % JOBSETS.len()],
            base + i * 11 * 3600 + (i * i * 37) % 9000,
            base + i * 11 * 3600 + (i * i * 37) % 9000 + 600 + (i * 7919) % 40_000,
        );
        let counts = ingest(&app, std::slice::from_ref(&original)).await;
        assert_eq!(counts["unchanged"], 1, "{counts}");
        assert!(reopened(&app).await.is_empty());

        // A step ingested late into May reopens May only (June is 30 days long).
        let may = t("2026-05-12T08:00:00Z").timestamp();
        ingest(
            &app,
            &[step(9001, "build03", ("nixpkgs", "cuda"), may, may + 7200)],
        )
        .await;
        assert_eq!(reopened(&app).await, ["2026-05"]);
        assert_eq!(
            reopened_days(&app).await,
            days(&[("2026-05-12", "2026-05-31")])
        );
        // Until it is stored again, reads compute May (and what follows it) from the data and
        // the stored days around the stale one, and agree with a read that has no store.
        let reading = figures(&app).await;
        assert_ne!(reading, before, "the late step changes figures");
        // With the months forgotten, every window reads the stored days and May 12 from the
        // steps.
        clear(&app).await;
        assert_same(&figures(&app).await, &reading);
        let done = ensure(&app).await;
        assert_eq!(
            done.days, 20,
            "only May 12 and the days after it in May are recomputed"
        );
        assert!(reopened(&app).await.is_empty());
        let stored = figures(&app).await;
        assert_same(&stored, &reading);
        assert_same(&check_every_way(&app).await, &stored);

        // A step across midnight ingested late reopens both its days.
        let night = t("2026-06-30T23:00:00Z").timestamp();
        ingest(
            &app,
            &[step(
                9003,
                "gpu01",
                ("nixpkgs", "cuda-tests"),
                night,
                night + 7200,
            )],
        )
        .await;
        assert_eq!(reopened(&app).await, ["2026-06", "2026-07"]);
        assert_eq!(
            reopened_days(&app).await,
            days(&[("2026-06-30", "2026-07-31")])
        );
        let reading = figures(&app).await;
        clear(&app).await;
        assert_same(&figures(&app).await, &reading);
        assert_same(&check_every_way(&app).await, &reading);

        // A correction that moves a step from March to August reopens both.
        let march = t("2026-03-20T10:00:00Z").timestamp();
        ingest(
            &app,
            &[step(
                9002,
                "hourly01",
                ("nixos", "release-26.05"),
                march,
                march + 3600,
            )],
        )
        .await;
        ensure(&app).await;
        let aug = t("2026-08-03T10:00:00Z").timestamp();
        ingest(
            &app,
            &[step(
                9002,
                "hourly01",
                ("nixos", "release-26.05"),
                aug,
                aug + 3600,
            )],
        )
        .await;
        assert_eq!(reopened(&app).await, ["2026-03", "2026-08"]);
        assert_eq!(
            reopened_days(&app).await,
            days(&[("2026-03-20", "2026-03-31"), ("2026-08-03", "2026-08-31")])
        );
        let reading = figures(&app).await;
        let done = ensure(&app).await;
        assert_eq!((done.stored, done.days), (2, 12 + 29));
        let stored = figures(&app).await;
        assert_same(&stored, &reading);
        assert_same(&check_every_way(&app).await, &stored);

        // A manual donation dated in January reopens January, and February, whose last 30 days
        // reach back into January; every balance after it moves.
        let (f, _) = funds::funds_month(
            &app.db,
            &app.config,
            Month::parse("2026-11").unwrap(),
            t("2026-12-01T00:00:00Z"),
        )
        .await
        .unwrap();
        let cuda_before = f.iter().find(|x| x.slug == "cuda").unwrap().balance_cents;
        let admin = app.token("admin").await;
        let res = app
            .client
            .post(app.url("/api/v1/donations"))
            .bearer_auth(admin)
            .json(
                &json!({"idempotency_key": "late-1", "occurred_at": "2026-01-20T00:00:00Z",
                      "account": "nix-cuda", "contributor_name": "A late bank transfer",
                      "amount_cents": 12345, "fees_cents": 0, "currency": "EUR"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(reopened(&app).await, ["2026-01", "2026-02"]);
        assert!(
            reopened_days(&app).await.is_empty(),
            "a donation has no busy seconds"
        );
        assert_eq!(ensure(&app).await.stored, 2);
        let (f, _) = funds::funds_month(
            &app.db,
            &app.config,
            Month::parse("2026-11").unwrap(),
            t("2026-12-01T00:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(
            f.iter().find(|x| x.slug == "cuda").unwrap().balance_cents,
            cuda_before + 12345
        );
        let stored = figures(&app).await;
        clear(&app).await;
        assert_same(&figures(&app).await, &stored);
    }
);

db_test!(two_instances_store_one_result, CONFIG, |app| async move {
    seed(&app).await;
    let without = figures(&app).await;
    // Two processes rebuild at once.
    let a = app.clone();
    let b = app.clone();
    let one = std::thread::spawn(move || a.cli(&["books", "rebuild"]));
    let two = std::thread::spawn(move || b.cli(&["books", "rebuild"]));
    for out in [one.join().unwrap(), two.join().unwrap()] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("months stored"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("2026-11:"),
            "a progress line"
        );
    }
    let months = store::books_status(&app.db, &app.config, Utc::now())
        .await
        .unwrap()
        .months
        .len() as u64;
    assert_eq!(
        book_months::Entity::find().count(&app.db).await.unwrap(),
        months
    );
    assert!(reopened(&app).await.is_empty());
    assert_same(&figures(&app).await, &without);
    let out = app.cli(&["books", "status"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&store::fingerprint(&app.config)), "{text}");
    assert!(
        text.contains(&format!(
            "{months} closed months: {months} stored, 0 stale, 0 missing"
        )),
        "{text}"
    );
    // A rebuild from a month recomputes that month and those after it.
    let out = app.cli(&["books", "rebuild", "--from", "2026-10"]);
    assert!(out.status.success());
    let expected = months - 9; // January to September stay
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("{expected} months stored")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_same(&figures(&app).await, &without);
});

db_test!(instants_and_months_are_bounded, CONFIG, |app| async move {
    for path in [
        "/api/v1/gate/nixpkgs/cuda?at=9999-12-31T23:59:59Z",
        "/api/v1/funds?at=9999-12-31T23:59:59Z",
        "/api/v1/costs?at=9999-12-31T23:59:59Z",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 422, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(body.to_string().contains("at"), "{body}");
    }
    let next = Month::of(Utc::now()).next();
    for path in [
        format!("/api/v1/funds?month={next}"),
        format!("/api/v1/costs?month={next}"),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 422, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(body.to_string().contains("month"), "{body}");
    }
    // The command line refuses the future alike.
    for args in [
        &["costs", "--at", "9999-12-31T23:59:59Z"][..],
        &["plans", "--at", "9999-12-31T23:59:59Z"][..],
    ] {
        let out = app.cli(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--at: 9999-12-31T23:59:59Z is later than now"),
            "{err}"
        );
    }
    // Half a minute ahead is clock skew, not the future.
    let soon = buildfund_jobs::calendar::rfc3339(Utc::now() + chrono::Duration::seconds(30));
    assert_eq!(
        app.get(&format!("/api/v1/gate/nixpkgs/cuda?at={soon}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/api/v1/funds?at={soon}")).await.status(),
        200
    );
});

/// Every stored day's rows, as `(machine, project, jobset, busy seconds, steps)` sorted, by day.
async fn stored_days(
    app: &TestApp,
) -> std::collections::BTreeMap<i64, Vec<(String, String, String, i64, i64)>> {
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT day, machine, project, jobset, busy_seconds, steps FROM book_day_busy \
             ORDER BY day, machine, project, jobset",
        ))
        .await
        .unwrap();
    let mut out: std::collections::BTreeMap<i64, Vec<_>> = Default::default();
    for r in rows {
        out.entry(r.try_get_by_index::<i64>(0).unwrap())
            .or_default()
            .push((
                r.try_get_by_index::<String>(1).unwrap(),
                r.try_get_by_index::<String>(2).unwrap(),
                r.try_get_by_index::<String>(3).unwrap(),
                r.try_get_by_index::<i64>(4).unwrap(),
                r.try_get_by_index::<i64>(5).unwrap(),
            ));
    }
    out
}

db_test!(
    every_stored_day_holds_its_month_to_that_day,
    CONFIG,
    |app| async move {
        use buildfund_jobs::books::days::DAY;
        use buildfund_jobs::calendar::{from_unix, month_of, Span};
        seed(&app).await;
        let first = ensure(&app).await;
        assert!(first.days >= 334, "{first:?}");
        // A late step across midnight in the middle of May reopens May 12 to May 31, stored
        // again from the stored May 11 in one run.
        ingest(
            &app,
            &[step(
                9001,
                "build03",
                ("nixpkgs", "cuda"),
                t("2026-05-12T22:00:00Z").timestamp(),
                t("2026-05-13T03:00:00Z").timestamp(),
            )],
        )
        .await;
        assert_eq!(ensure(&app).await.days, 20);
        let stored = stored_days(&app).await;
        let status = store::books_status(&app.db, &app.config, Utc::now())
            .await
            .unwrap();
        // Day by day from the first step's month: the running sums of each day's steps (each
        // step clipped to its day) from its month's start, straight from the steps.
        let mut day = t(&format!("{}T00:00:00Z", status.days.first.unwrap())).timestamp();
        let mut sums: std::collections::BTreeMap<(String, String, String), (i64, i64)> =
            Default::default();
        for _ in 0..status.days.days {
            if day == month_of(day).start {
                sums.clear();
            }
            let q = buildfund_jobs::books::steps::busy_query(Span::new(day, day + DAY), None);
            for r in app.db.query_all(&q).await.unwrap() {
                let key = (
                    r.try_get("", "machine").unwrap(),
                    r.try_get("", "project").unwrap(),
                    r.try_get("", "jobset").unwrap(),
                );
                let s = sums.entry(key).or_default();
                s.0 += r.try_get::<i64>("", "busy").unwrap();
                s.1 += r.try_get::<i64>("", "steps").unwrap();
            }
            let expected: Vec<_> = sums
                .iter()
                .map(|((m, p, j), (b, n))| (m.clone(), p.clone(), j.clone(), *b, *n))
                .collect();
            assert_eq!(
                stored.get(&day).cloned().unwrap_or_default(),
                expected,
                "stored day {}",
                from_unix(day)
            );
            day += DAY;
        }
    }
);
