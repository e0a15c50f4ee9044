//! Build-step ingest over HTTP and from the CLI: formats, all-or-nothing validation,
//! idempotent upserts, aliases and unknown machines, and the HTTP error statuses.
use buildfund_entity::build_steps;
use buildfund_tests::{db_test, TestApp};
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};
use serde_json::{json, Value};

const CONFIG: &str = r#"
ledger_start = "2025-01-01"
[server]
max_ingest_bytes = 4096
[[machines]]
name = "build03"
aliases = ["ssh://localhost"]
monthly = "120.00"
"#;

fn steps() -> Vec<Value> {
    vec![
        json!({"build": 2210934, "step": 1, "project": "nixpkgs", "jobset": "cuda",
               "job": "python3Packages.torch.x86_64-linux", "system": "x86_64-linux",
               "machine": "build03", "start": 1761955200, "stop": 1761958800, "status": 0}),
        json!({"build": 2210934, "step": 2, "project": "nixpkgs", "jobset": "cuda",
               "machine": "ssh://localhost", "start": "2025-11-01T01:00:00Z", "stop": "2025-11-01T01:30:00Z"}),
        json!({"build": 2210935, "step": 1, "project": "nixpkgs", "jobset": "cuda-jetson",
               "machine": "jetson-orin-1", "start": 1761955200, "stop": 1761955300, "status": 1}),
    ]
}

fn ndjson(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn csv(records: &[Value]) -> String {
    let cols = [
        "build", "step", "project", "jobset", "job", "system", "machine", "start", "stop", "status",
    ];
    let mut out = cols.join(",") + "\n";
    for r in records {
        let row: Vec<String> = cols
            .iter()
            .map(|c| match &r[*c] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out += &(row.join(",") + "\n");
    }
    out
}

async fn stored(app: &TestApp) -> Vec<build_steps::Model> {
    build_steps::Entity::find()
        .order_by_asc(build_steps::Column::Build)
        .order_by_asc(build_steps::Column::Step)
        .all(&app.db)
        .await
        .unwrap()
}

db_test!(
    all_three_formats_store_the_same_steps,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let bodies = [
            ("application/x-ndjson", ndjson(&steps())),
            ("application/json", Value::Array(steps()).to_string()),
            ("text/csv", csv(&steps())),
        ];
        let mut seen = Vec::new();
        for (i, (content_type, body)) in bodies.into_iter().enumerate() {
            let res = app.post_build_steps(&token, content_type, body).await;
            assert_eq!(res.status(), 200, "{content_type}");
            let report: Value = res.json().await.unwrap();
            // The first format inserts; the others send the very same records.
            let expect = if i == 0 { (3, 0) } else { (0, 3) };
            assert_eq!(
                (
                    report["inserted"].as_u64().unwrap(),
                    report["unchanged"].as_u64().unwrap()
                ),
                expect,
                "{content_type}: {report}"
            );
            assert_eq!(report["updated"], 0);
            seen.push(stored(&app).await);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
        let rows = &seen[0];
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].source, "default");
        assert_eq!(
            (rows[1].start_ts, rows[1].stop_ts),
            (1761958800, 1761960600)
        );
        assert_eq!(
            rows[0].job.as_deref(),
            Some("python3Packages.torch.x86_64-linux")
        );
        assert_eq!(rows[1].status, None);
    }
);

db_test!(
    one_bad_record_stores_nothing_and_names_its_line,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let mut records = steps();
        records.insert(
            1,
            json!({"build": 7, "step": 1, "project": "nixpkgs", "jobset": "cuda",
                             "machine": "build03", "start": 1761958800, "stop": 1761955200}),
        );
        records.push(
            json!({"build": "eight", "step": 1, "project": "nixpkgs", "machine": "build03",
                        "start": 1761955200, "stop": 1761955300}),
        );
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&records))
            .await;
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"));
        let details = body["details"].as_array().unwrap();
        let located: Vec<(u64, &str)> = details
            .iter()
            .map(|d| (d["line"].as_u64().unwrap(), d["field"].as_str().unwrap()))
            .collect();
        assert_eq!(located, vec![(2, "stop"), (5, "build"), (5, "jobset")]);
        assert!(details[0]["message"]
            .as_str()
            .unwrap()
            .contains("before start"));
        assert_eq!(
            stored(&app).await.len(),
            0,
            "nothing of the batch is stored"
        );

        // CSV and JSON arrays locate records too.
        let res = app
            .post_build_steps(&token, "text/csv", csv(&records))
            .await;
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["details"][0]["line"], 3, "{body}"); // header is line 1
        let res = app
            .post_build_steps(
                &token,
                "application/json",
                Value::Array(records).to_string(),
            )
            .await;
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["details"][0]["record"], 2, "{body}");
        assert_eq!(stored(&app).await.len(), 0);
    }
);

db_test!(
    resends_are_unchanged_and_corrections_update,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&steps()))
            .await;
        assert_eq!(res.json::<Value>().await.unwrap()["inserted"], 3);

        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&steps()))
            .await;
        let report: Value = res.json().await.unwrap();
        assert_eq!(
            (
                report["inserted"].clone(),
                report["updated"].clone(),
                report["unchanged"].clone()
            ),
            (json!(0), json!(0), json!(3))
        );

        let mut corrected = steps();
        corrected[2]["stop"] = json!(1761955500);
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&corrected))
            .await;
        let report: Value = res.json().await.unwrap();
        assert_eq!(
            (
                report["inserted"].clone(),
                report["updated"].clone(),
                report["unchanged"].clone()
            ),
            (json!(0), json!(1), json!(2))
        );
        let rows = stored(&app).await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].stop_ts, 1761955500);

        // Another source with the same build and step is another record.
        let mut other = steps();
        other[0]["source"] = json!("buildbot");
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&other[..1]))
            .await;
        assert_eq!(res.json::<Value>().await.unwrap()["inserted"], 1);
        assert_eq!(build_steps::Entity::find().count(&app.db).await.unwrap(), 4);
    }
);

db_test!(
    aliases_resolve_and_unknown_machines_are_kept_as_unpriced,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&steps()))
            .await;
        let report: Value = res.json().await.unwrap();
        // build03 by name and by its alias are priced; the Jetson board is not configured.
        assert_eq!(report["unpriced_machines"], json!({"jetson-orin-1": 1}));
        let rows = stored(&app).await;
        assert_eq!(
            rows.iter().filter(|r| r.machine == "jetson-orin-1").count(),
            1,
            "never dropped"
        );
    }
);

db_test!(http_errors_are_json_413_415_401, CONFIG, |app| async move {
    let token = app.token("ingest").await;
    let big = ndjson(&vec![steps()[0].clone(); 40]);
    assert!(big.len() > 4096);
    let res = app
        .post_build_steps(&token, "application/x-ndjson", big)
        .await;
    assert_eq!(res.status(), 413);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("max_ingest_bytes"));

    let res = app
        .post_build_steps(&token, "text/plain", ndjson(&steps()))
        .await;
    assert_eq!(res.status(), 415);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("text/plain"));

    let res = app
        .post_build_steps("bf_wrong", "application/x-ndjson", ndjson(&steps()))
        .await;
    assert_eq!(res.status(), 401);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());

    let scheduler = app.token("scheduler").await;
    let res = app
        .post_build_steps(&scheduler, "application/x-ndjson", ndjson(&steps()))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(stored(&app).await.len(), 0);
});

db_test!(
    the_cli_ingests_files_and_stdin_alike,
    CONFIG,
    |app| async move {
        let path = app.dir.path().join("steps.csv");
        std::fs::write(&path, csv(&steps())).unwrap();
        let out = app.cli(&["ingest", "build-steps", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("3 records") && stdout.contains("3 inserted"),
            "{stdout}"
        );
        assert!(
            stdout.contains("unpriced machine \"jetson-orin-1\": 1 records"),
            "{stdout}"
        );

        let bad = app.dir.path().join("bad.ndjson");
        std::fs::write(&bad, "{\"build\": 1}\n").unwrap();
        let out = app.cli(&["ingest", "build-steps", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("line 1 step: missing"), "{stderr}");
        assert_eq!(stored(&app).await.len(), 3);
    }
);

const BIG_CONFIG: &str = r#"
ledger_start = "2025-01-01"
[[machines]]
name = "build03"
monthly = "120.00"
"#;

fn counts(report: &Value) -> (u64, u64, u64) {
    (
        report["inserted"].as_u64().unwrap(),
        report["updated"].as_u64().unwrap(),
        report["unchanged"].as_u64().unwrap(),
    )
}

db_test!(
    one_batch_mixes_new_changed_and_unchanged_records,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&steps()[..2]))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (2, 0, 0));

        // One statement sees a changed, an unchanged and a new record; `null` optional fields
        // compare equal to absent ones, and a field that becomes absent is a change.
        let mut batch = steps();
        batch[0]["status"] = json!(null);
        batch[1]["job"] = json!(null);
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&batch))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (1, 1, 1));
        let rows = stored(&app).await;
        assert_eq!(rows[0].status, None);
        assert_eq!(rows[2].system, None);
        assert_eq!(
            rows[0].job.as_deref(),
            Some("python3Packages.torch.x86_64-linux")
        );
        assert_eq!(rows[1].job, None);
        assert_eq!(rows[0].ingested_at, rows[1].ingested_at);
        assert!(
            rows[0].updated_at > rows[0].ingested_at,
            "updated rows get a new updated_at"
        );
        assert_eq!(
            rows[1].updated_at, rows[1].ingested_at,
            "unchanged rows are not written"
        );
    }
);

db_test!(
    a_key_twice_in_one_batch_keeps_the_later_record,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let mut again = steps()[0].clone();
        let batch = vec![steps()[0].clone(), steps()[1].clone(), again.clone()];
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&batch))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (2, 0, 1));

        again["stop"] = json!(1761959000);
        let batch = vec![steps()[2].clone(), again.clone(), steps()[2].clone(), again];
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&batch))
            .await;
        // The row inserted by this very batch and then resent unchanged is unchanged; the
        // correction of a stored row is one update, its identical repeat unchanged.
        assert_eq!(counts(&res.json().await.unwrap()), (1, 1, 2));
        let rows = stored(&app).await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].stop_ts, 1761959000);

        // A record new to the database and corrected later in the same batch: one insert, then
        // one update of the row this batch inserted.
        let mut new = steps()[2].clone();
        new["build"] = json!(2210936);
        let mut corrected = new.clone();
        corrected["status"] = json!(0);
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&[new, corrected]))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (1, 1, 0));
        assert_eq!(stored(&app).await[3].status, Some(0));
    }
);

db_test!(
    large_batches_span_many_statements_with_exact_counts,
    BIG_CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let record = |build: i64, stop: i64| {
            json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": format!("js{}", build % 7),
                   "machine": "build03", "start": 1761955200, "stop": stop})
        };
        let first: Vec<Value> = (0..25_000).map(|b| record(b, 1761955300)).collect();
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&first))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(counts(&res.json().await.unwrap()), (25_000, 0, 0));

        // Every third record changed, 5,000 new ones, and an old one repeated with a change.
        let mut second: Vec<Value> = (0..30_000)
            .map(|b| record(b, if b % 3 == 0 { 1761955400 } else { 1761955300 }))
            .collect();
        second.push(record(1, 1761955500));
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&second))
            .await;
        assert_eq!(
            counts(&res.json().await.unwrap()),
            (5_000, 25_000 / 3 + 1 + 1, 25_000 - 25_000 / 3 - 1)
        );
        assert_eq!(
            build_steps::Entity::find().count(&app.db).await.unwrap(),
            30_000
        );
        let jobsets = buildfund_entity::jobsets::Entity::find()
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(jobsets, 7);

        // A bad record at the very end stores nothing of the batch.
        let mut bad: Vec<Value> = (30_000..45_000).map(|b| record(b, 1761955300)).collect();
        bad.push(json!({"build": 1, "step": 1}));
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&bad))
            .await;
        assert_eq!(res.status(), 422);
        assert_eq!(
            build_steps::Entity::find().count(&app.db).await.unwrap(),
            30_000
        );
    }
);

db_test!(
    texts_with_quotes_backslashes_and_braces_are_stored_verbatim,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let odd = [
            r#" python3Packages."torch" \ {a,b} "#,
            "NULL",
            "ünïcødé ✓, \"quoted\"",
        ];
        let batch: Vec<Value> = odd
            .iter()
            .enumerate()
            .map(|(i, text)| {
                json!({"build": 1, "step": i, "project": "nix_pkgs-2", "jobset": ".cuda_12.x-y",
                       "job": text, "system": text, "machine": "build03",
                       "start": 1761955200, "stop": 1761955300})
            })
            .collect();
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&batch))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (3, 0, 0));
        let rows = stored(&app).await;
        for (row, text) in rows.iter().zip(odd) {
            assert_eq!(row.job.as_deref(), Some(text));
            assert_eq!(row.system.as_deref(), Some(text));
            assert_eq!(
                (row.project.as_str(), row.jobset.as_str()),
                ("nix_pkgs-2", ".cuda_12.x-y")
            );
        }
        let res = app
            .post_build_steps(&token, "application/x-ndjson", ndjson(&batch))
            .await;
        assert_eq!(counts(&res.json().await.unwrap()), (0, 0, 3));
    }
);

db_test!(
    project_and_jobset_names_outside_hydras_rule_are_refused,
    CONFIG,
    |app| async move {
        let token = app.token("ingest").await;
        let mut records = steps();
        records[1]["jobset"] = json!("cuda/../trunk");
        records[2]["project"] = json!("nix pkgs");
        records[2]["jobset"] = json!("{cuda}");
        for (content_type, body) in [
            ("application/x-ndjson", ndjson(&records)),
            ("text/csv", csv(&records)),
            (
                "application/json",
                Value::Array(records.clone()).to_string(),
            ),
        ] {
            let res = app.post_build_steps(&token, content_type, body).await;
            assert_eq!(res.status(), 422, "{content_type}");
            let body: Value = res.json().await.unwrap();
            let located: Vec<(u64, &str)> = body["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["record"].as_u64().unwrap(), d["field"].as_str().unwrap()))
                .collect();
            assert_eq!(
                located,
                [(2, "jobset"), (3, "project"), (3, "jobset")],
                "{body}"
            );
            assert!(body["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("is not a Hydra jobset name"));
            if content_type == "application/x-ndjson" {
                assert_eq!(body["details"][0]["line"], 2, "{body}");
            }
        }
        assert_eq!(stored(&app).await.len(), 0);
    }
);
