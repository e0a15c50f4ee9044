//! Crashes survived: a real `buildfund` process killed with SIGKILL at a chosen point (see
//! `buildfund_jobs::pause_points`), then run again on the same database.
use buildfund_entity::build_steps;
use buildfund_tests::crash::PAUSE_AT;
use buildfund_tests::{db_test, TestApp};
use sea_orm::{EntityTrait, PaginatorTrait};

const CONFIG: &str = r#"
ledger_start = "2026-01-01"

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"
"#;

/// An upload large enough to be written in several batches.
const STEPS: i64 = 30_000;

fn upload() -> String {
    (0..STEPS)
        .map(|i| {
            let start = 1_790_000_000 + i * 60;
            format!(
                "{{\"build\":{i},\"step\":1,\"project\":\"nixpkgs\",\"jobset\":\"trunk\",\
                 \"job\":\"pkg{i}\",\"machine\":\"build03\",\"start\":{start},\"stop\":{}}}\n",
                start + 45
            )
        })
        .collect()
}

async fn post(url: &str, token: &str, body: String) -> Result<u16, reqwest::Error> {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/build-steps"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
}

async fn steps(app: &TestApp) -> u64 {
    build_steps::Entity::find().count(&app.db).await.unwrap()
}

db_test!(
    an_upload_killed_midway_is_all_or_nothing,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        for point in ["ingest.batch_written", "ingest.before_commit"] {
            let mut serve = app.serve_process(&[(PAUSE_AT, point)]);
            serve.wait_ready().await;
            let url = serve.url.clone();
            let (body, tok) = (upload(), token.clone());
            let sent = tokio::spawn(async move { post(&url, &tok, body).await });
            serve.wait_paused_at(point).await;
            serve.kill();
            assert!(
                sent.await.unwrap().is_err(),
                "the upload's connection dies with the process ({point})"
            );
            assert_eq!(steps(&app).await, 0, "killed at {point}: none of the batch");
        }
        // Run again, the same upload is taken whole.
        let mut serve = app.serve_process(&[]);
        serve.wait_ready().await;
        assert_eq!(post(&serve.url, &token, upload()).await.unwrap(), 200);
        assert_eq!(steps(&app).await, STEPS as u64, "all of the batch");
        serve.stop();
    }
);

/// Every connection of the SQLite pool, not only the first, commits durably: WAL,
/// `synchronous = FULL` (2), foreign keys on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sqlite_connection_commits_durably() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let app = TestApp::builder(CONFIG)
        .start(buildfund_tests::Backend::Sqlite)
        .await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(app.db.begin().await.unwrap());
    }
    for txn in &open {
        let mut seen = Vec::new();
        for pragma in ["journal_mode", "synchronous", "foreign_keys"] {
            let row = txn
                .query_one_raw(Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    format!("PRAGMA {pragma}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let value = row
                .try_get_by_index::<String>(0)
                .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                .unwrap();
            seen.push(value);
        }
        assert_eq!(seen, ["wal", "2", "1"]);
    }
}

const BOOKS: &str = r#"
ledger_start = "2026-09-01"

[[funds]]
slug = "general"
default = true
opening_balance = "500.00"

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"

[[machines]]
name = "gpu01"
metered = "2.40"
"#;

async fn stored_months(app: &TestApp) -> u64 {
    buildfund_entity::book_months::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

/// A month's figures as read (the answer's own `as_of` left out).
async fn figures(url: &str, path: &str) -> String {
    let body = reqwest::get(format!("{url}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
    if let Some(map) = v.as_object_mut() {
        map.remove("as_of");
    }
    v.to_string()
}

db_test!(
    a_month_close_killed_before_its_commit_leaves_no_half_month,
    BOOKS,
    |app| async move {
        let mut steps = Vec::new();
        for (i, month) in ["09", "10", "11"].iter().enumerate() {
            for day in 1..=20i64 {
                let start = buildfund_jobs::calendar::parse_rfc3339(&format!(
                    "2026-{month}-{day:02}T08:00:00Z"
                ))
                .unwrap()
                .timestamp();
                steps.push(serde_json::json!({
                    "build": i as i64 * 100 + day, "step": 1, "project": "nixpkgs",
                    "jobset": if day % 2 == 0 { "cuda" } else { "trunk" },
                    "job": format!("pkg{day}"), "machine": if day % 3 == 0 { "gpu01" } else { "build03" },
                    "start": start, "stop": start + 3600 * (1 + day % 4)}));
            }
        }
        app.ingest_steps(&steps).await;
        assert_eq!(stored_months(&app).await, 0);
        // The truth: the closed months' figures computed from the data, nothing stored.
        let paths = [
            "/api/v1/costs?month=2026-09",
            "/api/v1/costs?month=2026-10",
            "/api/v1/funds?month=2026-10",
            "/api/v1/funds?month=2026-11",
        ];
        let mut truth = Vec::new();
        for p in paths {
            truth.push(figures(&app.address, p).await);
        }

        // The keeper of a real serve starts closing the months, oldest first: killed with the
        // first month's rows written and not committed.
        let mut serve = app.serve_process(&[(PAUSE_AT, "books.month_written")]);
        serve.wait_paused_at("books.month_written").await;
        serve.kill();
        assert_eq!(
            stored_months(&app).await,
            0,
            "no half-written month is stored"
        );
        for (p, t) in paths.iter().zip(&truth) {
            assert_eq!(&figures(&app.address, p).await, t, "{p} after the crash");
        }

        // Run again: the keeper closes every month, and the stored months answer as the data did.
        let mut serve = app.serve_process(&[]);
        serve.wait_ready().await;
        let mut waited = 0;
        while stored_months(&app).await < 3 {
            assert!(
                waited < 600,
                "the keeper never stored the three closed months"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            waited += 1;
        }
        for (p, t) in paths.iter().zip(&truth) {
            assert_eq!(
                &figures(&serve.url, p).await,
                t,
                "{p} from the stored months"
            );
        }
        serve.stop();
    }
);
