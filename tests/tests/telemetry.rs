//! Traced requests: every answer carries `x-request-id`, the id of the request's span, and a
//! 500 is logged once, on one line that carries the route, the request id and the error's
//! causes, read from a real `buildfund serve`'s log (JSON lines on stderr).
use buildfund_tests::{db_test, MINIMAL_CONFIG};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn request_id(res: &reqwest::Response) -> String {
    let id = res
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{} has no x-request-id", res.url()))
        .to_str()
        .unwrap()
        .to_string();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("x-request-id {id:?}: {e}"));
    id
}

db_test!(every_answer_carries_a_request_id, |app| async move {
    let mut ids = BTreeSet::new();
    for (path, status) in [
        ("/healthz", 200),
        ("/", 200),
        ("/api/v1/costs", 200),
        ("/api/v1/costs?month=2026-13", 400),
        ("/api/v1/plans?at=9999-12-31T23:59:59Z", 422),
        ("/api/v1/tokens", 401),
        ("/no/such/route", 404),
        ("/reports/2026-13", 400),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), status, "{path}");
        assert!(ids.insert(request_id(&res)), "{path}: a fresh id");
    }
    let res = app
        .client
        .post(app.url("/api/v1/donations"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(ids.insert(request_id(&res)));
});

/// The JSON log lines of `log` that mention `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

db_test!(
    a_500_is_logged_once_with_its_route_request_id_and_cause,
    MINIMAL_CONFIG,
    |app| async move {
        let mut replicas = app.start_replicas(MINIMAL_CONFIG, 1);
        replicas.wait_ready().await;
        let url = format!("{}/api/v1/donations", replicas.urls[0]);
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
        // A fault the server cannot answer for: the donations' table is gone.
        app.db
            .execute_unprepared("DROP TABLE donations")
            .await
            .unwrap();
        let res = reqwest::get(&url).await.unwrap();
        assert_eq!(res.status(), 500);
        let id = request_id(&res);
        let body: Value = res.json().await.unwrap();
        // The answer stays generic: the cause is in the log only.
        assert_eq!(
            body["error"], "internal error; the cause is in the server log",
            "{body}"
        );
        let log_path = app.dir.path().join("replica0.log");
        let mut lines = Vec::new();
        for _ in 0..50 {
            let log = std::fs::read_to_string(&log_path).unwrap();
            lines = lines_with(&log, &id);
            if !lines.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replicas.stop();
        let log = std::fs::read_to_string(&log_path).unwrap();
        // One error line for the request (beside the access line every request has).
        let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] != "INFO").collect();
        assert_eq!(errors.len(), 1, "one error line for the request:\n{log}");
        let line = errors[0];
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["span"]["request_id"], id.as_str(), "{line}");
        assert_eq!(line["span"]["http.route"], "/api/v1/donations", "{line}");
        let chain = line["error.chain"].as_str().unwrap_or_default();
        assert!(chain.contains("donations"), "the cause: {line}");
    }
);
