//! PostgreSQL going away while buildfund runs: requests fail cleanly (503, JSON) during the
//! outage and succeed after it, without restarting buildfund. The outage is made by a TCP
//! proxy in front of the shared server (`TestApp::builder(…).database_behind_proxy()`, see
//! `buildfund_tests::proxy`), so this test is PostgreSQL's only.
use buildfund_tests::{run, Backend, TestApp, MINIMAL_CONFIG};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_cleanly_and_recovers_without_restart() {
    let setup = TestApp::builder(MINIMAL_CONFIG).database_behind_proxy();
    run(Backend::Postgres, setup, |app| async move {
        let proxy = app.proxy();
        assert_eq!(app.get("/readyz").await.status(), 200);
        assert_eq!(app.get("/api/v1/costs?month=2026-10").await.status(), 200);

        proxy.cut();
        let res = app.get("/readyz").await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "unready");
        let res = app.get("/api/v1/costs?month=2026-10").await;
        assert_eq!(
            res.status(),
            503,
            "a database outage is the server's 503, not a 500"
        );
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("database is unavailable"),
            "{body}"
        );
        assert_eq!(
            app.get("/healthz").await.status(),
            200,
            "the process itself stays up"
        );

        proxy.restore();
        let mut recovered = false;
        for _ in 0..40 {
            if app.get("/api/v1/costs?month=2026-10").await.status() == 200 {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            recovered,
            "requests succeed again once the database is back"
        );
        assert_eq!(app.get("/readyz").await.status(), 200);
    })
    .await;
}
