//! The foundation: health, readiness, metrics, JSON errors, tokens and their scopes, the CLI.
use buildfund_entity::api_tokens;
use buildfund_tests::{db_test, run_cli};
use sea_orm::EntityTrait;
use serde_json::Value;
use sha2::{Digest, Sha256};

db_test!(health_and_readiness_answer, |app| async move {
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let expected = match app.backend {
        buildfund_tests::Backend::Sqlite => "sqlite",
        buildfund_tests::Backend::Postgres => "postgresql",
    };
    assert_eq!(body["database"], expected);
});

db_test!(
    metrics_count_requests_by_route_and_status,
    |app| async move {
        for _ in 0..3 {
            app.get("/healthz").await;
        }
        app.get("/api/v1/tokens").await; // 401
        let text = app.get("/metrics").await.text().await.unwrap();
        assert!(
            text.contains(
                r#"buildfund_http_requests_total{method="GET",route="/healthz",status="200"} 3"#
            ),
            "{text}"
        );
        assert!(
        text.contains(r#"buildfund_http_requests_total{method="GET",route="/api/v1/tokens",status="401"} 1"#),
        "{text}"
    );
        assert!(
            text.contains("buildfund_http_request_duration_seconds_bucket{"),
            "{text}"
        );
    }
);

db_test!(unknown_routes_get_json_404, |app| async move {
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "no route for GET /no/such/page");
});

db_test!(
    tokens_missing_wrong_or_revoked_get_401_wrong_scope_403,
    |app| async move {
        let res = app.get("/api/v1/tokens").await;
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("missing Authorization"));

        let res = app
            .get_with_token("/api/v1/tokens", "bf_0000not-a-real-token")
            .await;
        assert_eq!(res.status(), 401);
        assert!(res.json::<Value>().await.unwrap()["error"].is_string());

        let res = app
            .client
            .get(app.url("/api/v1/tokens"))
            .header("Authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);

        let ingest = app.token("ingest").await;
        let res = app.get_with_token("/api/v1/tokens", &ingest).await;
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("needs scope admin"),
            "{body}"
        );

        let admin = app.token("admin").await;
        let res = app.get_with_token("/api/v1/tokens", &admin).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let listed = body["tokens"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            !body.to_string().contains(&ingest),
            "a listing never shows secrets"
        );

        // An admin revokes the ingest token; it stops working at once.
        let id = listed.iter().find(|t| t["scope"] == "ingest").unwrap()["id"]
            .as_i64()
            .unwrap();
        let res = app
            .client
            .delete(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let res = app.get_with_token("/api/v1/tokens", &ingest).await;
        assert_eq!(res.status(), 401);
    }
);

db_test!(
    token_create_prints_once_and_stores_only_a_hash,
    |app| async move {
        let out = app.cli(&["token", "create", "--scope", "admin", "--name", "ci-bot"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(secret.starts_with("bf_") && secret.len() > 40, "{secret}");

        let rows = api_tokens::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.name, "ci-bot");
        assert_eq!(row.scope, "admin");
        assert_eq!(
            row.token_hash,
            hex::encode(Sha256::digest(secret.as_bytes()))
        );
        let stored = serde_json::to_string(row).unwrap();
        assert!(
            !stored.contains(&secret),
            "the secret itself is never stored"
        );

        // The printed token works over HTTP.
        let res = app.get_with_token("/api/v1/tokens", &secret).await;
        assert_eq!(res.status(), 200);

        // A created token via the API is shown once, then never again.
        let res = app
            .client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&secret)
            .json(&serde_json::json!({"scope": "ingest", "name": "hydra"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        let ingest = created["token"].as_str().unwrap();
        let listing = app
            .get_with_token("/api/v1/tokens", &secret)
            .await
            .text()
            .await
            .unwrap();
        assert!(!listing.contains(ingest));

        let bad = app.cli(&["token", "create", "--scope", "root"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("\"root\" is not a scope"));
    }
);

db_test!(
    oversized_and_malformed_bodies_get_json_errors,
    |app| async move {
        let admin = app.token("admin").await;
        let huge = format!(
            r#"{{"scope": "ingest", "name": "{}"}}"#,
            "x".repeat(2 << 20)
        );
        let res = app
            .client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
        assert!(res.json::<Value>().await.unwrap()["error"].is_string());

        let res = app
            .client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    }
);

db_test!(migrate_is_idempotent_from_the_cli, |app| async move {
    for _ in 0..2 {
        let out = app.cli(&["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
});

#[test]
fn check_config_reports_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
ledger_start = "2026-01-01"
[[funds]]
slug = "general"
default = true
[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
[[machines]]
name = "build01"
monthly = "100"
[[machines]]
name = "build02"
hourly = "1.90"
slots = "two"
[[machines]]
name = "build03"
monthly = "12,50"
"#,
    )
    .unwrap();
    let out = run_cli(
        &["check-config", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(
        stderr.contains("pools[0].fund: \"cuda\" is not a fund (funds: general)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("machines[1].slots: must be an integer, not a string"),
        "{stderr}"
    );
    assert!(
        stderr.contains("machines[2].monthly: \"12,50\" is not a decimal amount"),
        "{stderr}"
    );
}

#[test]
fn check_config_accepts_no_file_and_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["check-config"], dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("built-in defaults: OK"));

    let missing = run_cli(&["check-config", "--config", "nope.toml"], dir.path(), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));
}

#[test]
fn serve_refuses_to_start_without_a_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooks.toml");
    std::fs::write(
        &path,
        "ledger_start = \"2026-01-01\"\n[server]\nlisten = \"127.0.0.1:0\"\n[[gate.webhooks]]\nurl = \"https://hooks.example.org/bf\"\nsecret_env = \"BF_TEST_UNSET_WEBHOOK_SECRET\"\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let out = run_cli(&["serve", "--config", config], dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "the environment variable BF_TEST_UNSET_WEBHOOK_SECRET (gate.webhooks[0].secret_env) is not set"
        ),
        "{stderr}"
    );

    // check-config may run where the secrets are not: it says so and succeeds.
    let out = run_cli(&["check-config", "--config", config], dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: the environment variable BF_TEST_UNSET_WEBHOOK_SECRET (gate.webhooks[0].secret_env) is not set"),
        "{stderr}"
    );
}

#[test]
fn database_urls_are_shown_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://u:p%40ss@127.0.0.1:5432/x?password=hunter2";
    for args in [&["migrate"][..], &["check-config"][..]] {
        let out = run_cli(args, dir.path(), &[("DATABASE_URL", url)]);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in ["hunter2", "p%40ss", "ss@", "u:p"] {
            assert!(
                !shown.contains(secret),
                "{args:?} shows {secret:?}: {shown}"
            );
        }
        assert!(shown.contains("127.0.0.1:5432/x"), "{args:?}: {shown}");
    }
}
