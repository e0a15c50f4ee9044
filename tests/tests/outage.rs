//! PostgreSQL going away while buildfund runs: requests fail cleanly (503, JSON) during the
//! outage and succeed after it, without restarting buildfund. The outage is made by a TCP
//! proxy in front of the shared server (see `buildfund_tests::proxy`).
use buildfund_tests::proxy::Proxy;
use buildfund_tests::{
    create_postgres_database, drop_postgres_database, postgres_enabled, Backend, TestApp,
    MINIMAL_CONFIG,
};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_cleanly_and_recovers_without_restart() {
    if !postgres_enabled() {
        return;
    }
    let direct = create_postgres_database().await.unwrap();
    // postgres://user@host:port/db -> the same through the proxy
    let (scheme_user, rest) = direct.split_once('@').unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let target: std::net::SocketAddr = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let via_proxy = format!("{scheme_user}@127.0.0.1:{}/{db}", proxy.port);
    let app = TestApp::spawn_with_database(
        Backend::Postgres,
        MINIMAL_CONFIG,
        via_proxy,
        tempfile::tempdir().unwrap(),
    )
    .await;

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
    drop(app);
    drop_postgres_database(&direct).await;
}
