//! One computation per figure, shared: concurrent reads of a month the store cannot serve
//! (stale after late steps) cause one computation of it in the server, all of them answered
//! 200 with the figures a read from scratch gives; a write after it is seen by the next read.
use buildfund_jobs::books::{costs, funds, store};
use buildfund_jobs::bounds::At;
use buildfund_jobs::calendar::{parse_rfc3339, Month};
use buildfund_jobs::clock::Clock;
use buildfund_tests::{db_test, TestApp, TestAppBuilder};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// A small pool, so that reads computing on their own would compete for its connections.
const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"

[database]
max_connections = 4

[[funds]]
slug = "general"
default = true
opening_balance = "500.00"

[[funds]]
slug = "cuda"
accounts = ["nix-cuda"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "build01"
slots = 4
monthly = "300.00"

[[machines]]
name = "build02"
slots = 2
hourly = "0.37"

[[machines]]
name = "gpu01"
metered = "2.40"
"#;

const MACHINES: &[&str] = &["build01", "build02", "gpu01", "ghost01"];
const JOBSETS: &[&str] = &["cuda", "cuda-tests", "trunk", "staging"];

/// September 2026: 30 days, so its last 30 days are the month itself.
const MONTH: &str = "2026-09";
const READERS: usize = 16;

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn setup() -> TestAppBuilder {
    TestApp::builder(CONFIG).clock(Clock::manual(t("2026-12-06T12:00:00Z")))
}

/// `n` steps numbered from `first`, starting within `spread` seconds after `from` (each at most
/// 7,060 seconds long), over the machines and jobsets of the configuration.
fn steps_over(from: &str, spread: i64, first: i64, n: i64) -> Vec<Value> {
    let start = t(from).timestamp();
    (first..first + n)
        .map(|i| {
            let from = start + (i * 7919) % spread;
            json!({"build": i, "step": 1, "project": "nixpkgs",
                   "jobset": JOBSETS[i as usize % JOBSETS.len()],
                   "job": format!("pkg{}.x86_64-linux", i % 97),
                   "machine": MACHINES[(i as usize / 3) % MACHINES.len()],
                   "start": from, "stop": from + 60 + (i * 31) % 7_000})
        })
        .collect()
}

/// `n` steps spread over September, numbered from `first`.
fn steps(first: i64, n: i64) -> Vec<Value> {
    steps_over("2026-09-01T00:00:00Z", 30 * 86_400 - 7_200, first, n)
}

async fn ingest(app: &TestApp, steps: &[Value]) {
    for chunk in steps.chunks(5_000) {
        app.ingest_steps(chunk).await;
    }
}

/// The counter `name` of the server's `/metrics`.
async fn counter(app: &TestApp, name: &str) -> f64 {
    app.get_metrics()
        .await
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("the server exports {name}"))
}

/// `buildfund_books_computations_total` of the server.
async fn computations(app: &TestApp) -> f64 {
    counter(app, "buildfund_books_computations_total").await
}

/// `buildfund_books_computations_to_date_total` of the server: the months to date among them.
async fn to_date_computations(app: &TestApp) -> f64 {
    counter(app, "buildfund_books_computations_to_date_total").await
}

/// `READERS` anonymous reads at once, half of the month's costs and half of its funds: every
/// answer's status and body.
async fn read_at_once(app: &TestApp) -> Vec<(String, u16, Value)> {
    let paths = (0..READERS).map(|i| {
        if i % 2 == 0 {
            format!("/api/v1/costs?month={MONTH}")
        } else {
            format!("/api/v1/funds?month={MONTH}")
        }
    });
    let reads = paths.map(|path| async move {
        let res = app.get(&path).await;
        let status = res.status().as_u16();
        (
            path,
            status,
            res.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    futures_util::future::join_all(reads).await
}

db_test!(
    concurrent_reads_of_a_stale_month_share_one_computation,
    setup(),
    |app| async move {
        let month = Month::parse(MONTH).unwrap();
        let now = app.clock.now();
        ingest(&app, &steps(1, 20_000)).await;
        store::ensure(&app.db, &app.config, now, |_, _, _| {})
            .await
            .unwrap();
        let stored = funds::funds_month(&app.db, &app.config, month, now)
            .await
            .unwrap()
            .0;
        // Late steps, written without this server's after-write refresh of the gate (which
        // would compute the month in the same registry before the reads): the stored month
        // is stale, every read computes it from the steps.
        write_elsewhere(&app, &steps(20_001, 2_000)).await;
        let status = store::books_status(&app.db, &app.config, now)
            .await
            .unwrap();
        assert!(
            status.months.contains(&(month, store::MonthState::Stale)),
            "{:?}",
            status.months
        );

        let before = computations(&app).await;
        let answers = read_at_once(&app).await;
        let after = computations(&app).await;
        for (path, status, body) in &answers {
            assert_eq!(*status, 200, "{path}: {body}");
        }
        assert_eq!(
            after - before,
            1.0,
            "{READERS} concurrent reads of a stale month computed it once"
        );

        // Every reader got the figures a read from scratch gives (this process computes
        // without the server's shared computations).
        let at = At::new(now, now).unwrap();
        let scratch_costs = costs::costs_report(&app.db, &app.config, month, at)
            .await
            .unwrap();
        let scratch_costs = serde_json::to_value(&scratch_costs).unwrap();
        let (scratch_funds, _) = funds::funds_month(&app.db, &app.config, month, now)
            .await
            .unwrap();
        let scratch_funds = serde_json::to_value(&scratch_funds).unwrap();
        assert_ne!(
            scratch_funds,
            serde_json::to_value(&stored).unwrap(),
            "the late steps move the month's figures"
        );
        for (path, _, body) in &answers {
            if path.contains("/costs") {
                assert_eq!(body, &scratch_costs, "{path}");
            } else {
                assert_eq!(body["funds"], scratch_funds, "{path}");
            }
        }

        // Read again: the computed month is kept until the store has it, nothing is computed.
        let again = read_at_once(&app).await;
        assert!(again.iter().all(|(_, s, _)| *s == 200));
        assert_eq!(computations(&app).await, after, "kept, not computed again");

        // A write after the computation is seen: the next reads compute the month once more.
        ingest(&app, &steps(30_001, 1)).await;
        let later = read_at_once(&app).await;
        assert_eq!(computations(&app).await, after + 1.0);
        let scratch = costs::costs_report(&app.db, &app.config, month, at)
            .await
            .unwrap();
        assert_ne!(
            serde_json::to_value(&scratch).unwrap(),
            scratch_costs,
            "the new step moves the month's costs"
        );
        for (path, status, body) in &later {
            assert_eq!(*status, 200, "{path}");
            if path.contains("/costs") {
                assert_eq!(body, &serde_json::to_value(&scratch).unwrap(), "{path}");
            }
        }

        // Once stored, the reads come from the store.
        store::ensure(&app.db, &app.config, now, |_, _, _| {})
            .await
            .unwrap();
        let stored = read_at_once(&app).await;
        assert_eq!(computations(&app).await, after + 1.0);
        for (path, status, body) in &stored {
            assert_eq!(*status, 200, "{path}");
            if path.contains("/costs") {
                assert_eq!(body, &serde_json::to_value(&scratch).unwrap(), "{path}");
            }
        }
    }
);

/// The open month at the test clock's instant (2026-12-06T12:00:00Z).
const OPEN: &str = "2026-12";

/// `n` steps spread over December 1st to the 6th, 10:00 (before the clock's noon), numbered
/// from `first`.
fn open_steps(first: i64, n: i64) -> Vec<Value> {
    steps_over(
        "2026-12-01T00:00:00Z",
        5 * 86_400 + 10 * 3_600 - 7_200,
        first,
        n,
    )
}

/// Writes `steps` as the command line or another instance does (the library's ingest, which
/// marks the days it touches in its transaction), without this server's after-write refresh.
async fn write_elsewhere(app: &TestApp, steps: &[Value]) {
    use buildfund_jobs::sources::ingest::{ingest, Format};
    let mut body = Vec::new();
    for s in steps {
        body.extend_from_slice(s.to_string().as_bytes());
        body.push(b'\n');
    }
    let report = ingest(
        &app.db,
        app.config.clone(),
        Format::Ndjson,
        std::io::Cursor::new(body),
        app.clock.now(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.inserted as usize, steps.len());
}

/// `READERS` anonymous reads of the open month at once: its costs, its funds and the funding
/// page, in turn.
async fn read_open_month_at_once(app: &TestApp) -> Vec<(String, u16, Value)> {
    let paths = (0..READERS).map(|i| match i % 3 {
        0 => format!("/api/v1/costs?month={OPEN}"),
        1 => format!("/api/v1/funds?month={OPEN}"),
        _ => "/".to_string(),
    });
    let reads = paths.map(|path| async move {
        let res = app.get(&path).await;
        let status = res.status().as_u16();
        let body = if path == "/" {
            Value::Null
        } else {
            res.json::<Value>().await.unwrap_or(Value::Null)
        };
        (path, status, body)
    });
    futures_util::future::join_all(reads).await
}

/// The open month's costs and funds read from scratch at the clock's instant (this process
/// computes without the server's shared computations).
async fn open_month_from_scratch(app: &TestApp) -> (Value, Value) {
    let (month, now) = (Month::parse(OPEN).unwrap(), app.clock.now());
    let costs = costs::costs_report(&app.db, &app.config, month, At::new(now, now).unwrap())
        .await
        .unwrap();
    let (funds, _) = funds::funds_month(&app.db, &app.config, month, now)
        .await
        .unwrap();
    (
        serde_json::to_value(&costs).unwrap(),
        serde_json::to_value(&funds).unwrap(),
    )
}

fn assert_answers(answers: &[(String, u16, Value)], scratch: &(Value, Value)) {
    for (path, status, body) in answers {
        assert_eq!(*status, 200, "{path}: {body}");
        if path.contains("/costs") {
            assert_eq!(body, &scratch.0, "{path}");
        } else if path.contains("/funds") {
            assert_eq!(body["funds"], scratch.1, "{path}");
        }
    }
}

db_test!(
    concurrent_reads_of_the_open_month_share_one_computation,
    setup(),
    |app| async move {
        let now = app.clock.now();
        ingest(&app, &open_steps(1, 20_000)).await;
        store::ensure(&app.db, &app.config, now, |_, _, _| {})
            .await
            .unwrap();
        // Late steps written elsewhere: the days of December they touch are stale, so a read
        // of the month to date scans the steps.
        write_elsewhere(&app, &open_steps(20_001, 2_000)).await;
        let status = store::books_status(&app.db, &app.config, now)
            .await
            .unwrap();
        assert!(status.days.todo_count > 0, "{:?}", status.days);

        let to_date = to_date_computations(&app).await;
        let before = computations(&app).await;
        let answers = read_open_month_at_once(&app).await;
        let after = computations(&app).await;
        assert_eq!(
            after - before,
            1.0,
            "{READERS} concurrent reads of the open month at one instant computed it once"
        );
        assert_eq!(
            to_date_computations(&app).await - to_date,
            1.0,
            "a month to date"
        );
        let scratch = open_month_from_scratch(&app).await;
        assert_answers(&answers, &scratch);

        // Read again at the same instant: the result is kept, nothing is computed.
        let again = read_open_month_at_once(&app).await;
        assert_eq!(computations(&app).await, after, "kept, not computed again");
        assert_answers(&again, &scratch);

        // A write in between (its days marked) is seen: the next reads compute once more, at
        // the same instant, and get the new figures.
        write_elsewhere(&app, &open_steps(30_001, 1)).await;
        let later = read_open_month_at_once(&app).await;
        assert_eq!(computations(&app).await, after + 1.0);
        let new_scratch = open_month_from_scratch(&app).await;
        assert_ne!(new_scratch.0, scratch.0, "the new step moves the costs");
        assert_answers(&later, &new_scratch);

        // Another instant is another window: computed on its own, with its own figures (the
        // hourly machine's cost grows with the window). Two windows: the month to date and
        // the part of the last 30 days in November, which now starts an hour later.
        app.clock.advance(chrono::Duration::hours(1));
        let next_second = read_open_month_at_once(&app).await;
        assert_eq!(computations(&app).await, after + 3.0);
        let next_scratch = open_month_from_scratch(&app).await;
        assert_ne!(next_scratch.0["lines"], new_scratch.0["lines"]);
        assert_answers(&next_second, &next_scratch);

        // The gate's refresh computes in the same registry: a write through the server
        // refreshes the gate, which computes the month to date; the reads that follow at the
        // same instant take its result.
        ingest(&app, &open_steps(40_001, 1)).await;
        let after_gate = computations(&app).await;
        let answers = read_open_month_at_once(&app).await;
        assert_eq!(
            computations(&app).await,
            after_gate,
            "the reads take the gate refresh's computation"
        );
        assert_answers(&answers, &open_month_from_scratch(&app).await);
    }
);

/// `n` steps spread over October 2026 (31 days), numbered from `first`.
fn october_steps(first: i64, n: i64) -> Vec<Value> {
    steps_over("2026-10-01T00:00:00Z", 31 * 86_400 - 7_200, first, n)
}

db_test!(
    a_stale_month_of_31_days_and_its_last_30_days_are_one_computation,
    setup(),
    |app| async move {
        let month = Month::parse("2026-10").unwrap();
        let now = app.clock.now();
        ingest(&app, &october_steps(1, 20_000)).await;
        store::ensure(&app.db, &app.config, now, |_, _, _| {})
            .await
            .unwrap();
        write_elsewhere(&app, &october_steps(20_001, 2_000)).await;

        // The funds of a month need its lines and its last 30 days, `[Oct 2, Nov 1)`, a
        // window of its own: both come from one computation (one read of the steps).
        let before = computations(&app).await;
        let reads = (0..READERS).map(|i| {
            let path = if i % 2 == 0 {
                "/api/v1/funds?month=2026-10"
            } else {
                "/api/v1/costs?month=2026-10"
            };
            let app = &app;
            async move {
                let res = app.get(path).await;
                (
                    path,
                    res.status().as_u16(),
                    res.json::<Value>().await.unwrap(),
                )
            }
        });
        let answers = futures_util::future::join_all(reads).await;
        assert_eq!(computations(&app).await - before, 1.0);

        // The same figures as a read from scratch, which computes the two windows apart.
        let at = At::new(now, now).unwrap();
        let scratch_costs = costs::costs_report(&app.db, &app.config, month, at)
            .await
            .unwrap();
        let (scratch_funds, _) = funds::funds_month(&app.db, &app.config, month, now)
            .await
            .unwrap();
        for (path, status, body) in &answers {
            assert_eq!(*status, 200, "{path}: {body}");
            if path.contains("/costs") {
                assert_eq!(body, &serde_json::to_value(&scratch_costs).unwrap());
            } else {
                assert_eq!(body["funds"], serde_json::to_value(&scratch_funds).unwrap());
            }
        }
    }
);
