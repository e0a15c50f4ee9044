//! Hostile input and faults: a stalled upload, an oversized record, invented HTTP methods,
//! money out of range, and the browser-facing security headers.
use buildfund_entity::build_steps;
use buildfund_tests::{db_test, Backend, TestApp};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
ledger_start = "2025-01-01"
[server]
body_idle_timeout_seconds = 8
[[funds]]
slug = "general"
default = true
[[pools]]
slug = "cuda"
fund = "general"
jobsets = ["nixpkgs:cuda*"]
[[machines]]
name = "build03"
monthly = "120.00"
"#;

fn step(build: i64) -> String {
    json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": "cuda",
           "machine": "build03", "start": 1761955200, "stop": 1761958800})
    .to_string()
        + "\n"
}

/// Opens a raw connection and sends the headers of an NDJSON upload of `length` bytes, then
/// `body` (less than `length`): the rest never comes.
async fn stalled_upload(app: &TestApp, token: &str, length: usize, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /api/v1/build-steps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// The status line and body of the answer on a raw connection.
async fn answer(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .expect("an answer within 30 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn pause(app: &TestApp, admin: &str, reason: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/gate/pools/cuda/pause"))
        .bearer_auth(admin)
        .json(&json!({"reason": reason}))
        .send()
        .await
        .unwrap()
}

async fn stored(app: &TestApp) -> u64 {
    build_steps::Entity::find().count(&app.db).await.unwrap()
}

db_test!(
    a_stalled_upload_blocks_no_write_and_is_answered_408,
    CONFIG,
    |app| async move {
        let ingest = app.token("ingest").await;
        let admin = app.token("admin").await;

        // Headers and ten bytes, then silence: no transaction is open, writes go on at once.
        let mut upload = stalled_upload(&app, &ingest, 100_000, &step(1).as_bytes()[..10]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let res = pause(&app, &admin, "during a stalled upload").await;
        assert!(res.status().is_success(), "{}", res.status());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // The upload is given up after the idle timeout: 408, nothing stored.
        let (status, body) = answer(&mut upload).await;
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("body_idle_timeout_seconds"), "{body}");
        assert_eq!(stored(&app).await, 0);

        // A stall after the first chunk was written: the transaction is open. On SQLite the
        // other writer waits its busy timeout and is told to retry (503 with Retry-After),
        // never 500; PostgreSQL writes the pause at once.
        let mut body: Vec<u8> = (1..=2001).flat_map(|b| step(b).into_bytes()).collect();
        body.extend_from_slice(&step(9999).as_bytes()[..10]);
        let mut upload = stalled_upload(&app, &ingest, body.len() + 1000, &body).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let res = pause(&app, &admin, "during a stalled upload that has begun").await;
        match app.backend {
            Backend::Sqlite => {
                assert_eq!(res.status(), 503);
                assert_eq!(res.headers()["retry-after"], "1");
                let err: Value = res.json().await.unwrap();
                assert!(err["error"].as_str().unwrap().contains("busy"), "{err}");
            }
            Backend::Postgres => assert!(res.status().is_success(), "{}", res.status()),
        }
        let (status, _) = answer(&mut upload).await;
        assert_eq!(status, 408);
        assert_eq!(
            stored(&app).await,
            0,
            "nothing of the stalled upload is stored"
        );
        // Writes work again.
        assert!(pause(&app, &admin, "after").await.status().is_success());
    }
);

const SMALL_RECORDS: &str = r#"
ledger_start = "2025-01-01"
[server]
max_record_bytes = 1024
"#;

async fn post_ndjson(app: &TestApp, token: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/build-steps"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
}

db_test!(
    a_record_over_the_size_cap_is_refused_and_not_echoed,
    SMALL_RECORDS,
    |app| async move {
        let token = app.token("ingest").await;
        // One 4 MiB line between two good ones: refused by line, the value never echoed.
        let long = format!(
            r#"{{"build":"{}","step":1,"project":"p","jobset":"j","machine":"m","start":1761955200,"stop":1761958800}}"#,
            "9".repeat(4 << 20)
        );
        let body = format!("{}{long}\n{}", step(1), step(2)).into_bytes();
        let res = post_ndjson(&app, &token, body).await;
        assert_eq!(res.status(), 422);
        let text = res.text().await.unwrap();
        assert!(text.len() < 2048, "{} bytes", text.len());
        let err: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(err["details"][0]["line"], 2);
        assert!(err["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("longer than 1024 bytes (server.max_record_bytes)"));

        // A long value within the cap is echoed cut short.
        let value = "x".repeat(900);
        let line = format!(
            r#"{{"build":"{value}","step":1,"project":"p","jobset":"j","machine":"m","start":1761955200,"stop":1761958800}}"#
        );
        let res = post_ndjson(&app, &token, line.into_bytes()).await;
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        let message = err["details"][0]["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!("\"{}\"… is not an integer", "x".repeat(100))
        );

        // A JSON array element that goes on and on ends the parse at the cap.
        let body = format!(
            "[{},{{\"job\": \"{}\"}}]",
            step(1).trim(),
            "y".repeat(1 << 20)
        );
        let res = app
            .client
            .post(app.url("/api/v1/build-steps"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let text = res.text().await.unwrap();
        assert!(
            text.len() < 2048 && text.contains("longer than 1024 bytes"),
            "{text}"
        );
        assert_eq!(stored(&app).await, 0);
    }
);

db_test!(
    metrics_labels_stay_bounded_under_invented_methods_and_paths,
    |app| async move {
        for i in 0..20 {
            let method = reqwest::Method::from_bytes(format!("X{i:04}").as_bytes()).unwrap();
            app.client
                .request(method, app.url("/healthz"))
                .send()
                .await
                .unwrap();
            app.get(&format!("/no/such/{i}")).await;
        }
        let text = app.get("/metrics").await.text().await.unwrap();
        assert!(!text.contains("X0001"), "{text}");
        assert!(!text.contains("/no/such"), "{text}");
        assert!(
            text.contains(r#"buildfund_http_requests_total{method="other",route="/healthz""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"buildfund_http_requests_total{method="GET",route="unmatched",status="404"} 20"#
            ),
            "{text}"
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("buildfund_http_requests_total{"))
            .count();
        assert!(series <= 4, "{series} series:\n{text}");
    }
);

db_test!(
    money_out_of_range_is_refused_at_the_door,
    |app| async move {
        let admin = app.token("admin").await;
        let post = |body: Value| {
            app.client
                .post(app.url("/api/v1/donations"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
        };
        let base = json!({"idempotency_key": "k1", "occurred_at": "2026-01-15T00:00:00Z",
                          "amount_cents": -5, "refund_of": "x", "fees_cents": i64::MIN});
        let res = post(base.clone()).await.unwrap();
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["details"][0]["field"], "fees_cents", "{err}");
        assert!(err["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("beyond the bound"));
        let res = post(
            json!({"idempotency_key": "k2", "occurred_at": "2026-01-15T00:00:00Z",
                              "amount_cents": i64::MAX}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 422);
        // At the bound is fine, and the books still add up for everyone.
        let res = post(
            json!({"idempotency_key": "k3", "occurred_at": "2026-01-15T00:00:00Z",
                              "amount_cents": 1_000_000_000_000i64}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        let res = app.get("/api/v1/funds?month=2026-01").await;
        assert_eq!(res.status(), 200);
        let funds: Value = res.json().await.unwrap();
        assert_eq!(
            funds["funds"][0]["gross_cents"], 1_000_000_000_000i64,
            "{funds}"
        );
        assert_eq!(
            app.get("/api/v1/donations?month=2026-01").await.status(),
            200
        );
        assert_eq!(app.get("/").await.status(), 200);
    }
);

db_test!(
    every_answer_carries_the_security_headers,
    |app| async move {
        for path in [
            "/",
            "/reports",
            "/api/v1/funds",
            "/no/such/page",
            "/healthz",
        ] {
            let res = app.get(path).await;
            let h = res.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(
                h["referrer-policy"], "strict-origin-when-cross-origin",
                "{path}"
            );
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        }
    }
);

db_test!(
    the_pages_render_under_their_policy_without_violations,
    |app| async move {
        for path in ["/", "/reports"] {
            let profile = tempfile::tempdir().unwrap();
            let mut cmd = tokio::process::Command::new(
                std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            );
            cmd.args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(app.url(path))
            .kill_on_drop(true);
            let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
                .await
                .expect("chromium finished within 2 minutes")
                .expect("chromium runs (apt-get install -y chromium, or set CHROMIUM)");
            let dom = String::from_utf8_lossy(&out.stdout);
            assert!(dom.contains("<style>"), "{path}: {dom}");
            // Chromium logs every blocked inline style or resource as a console message.
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(!log.contains("Content Security Policy"), "{path}: {log}");
        }
    }
);
