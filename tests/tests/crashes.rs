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
