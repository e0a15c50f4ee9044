//! `buildfund db copy`: a farm on the embedded SQLite default, with steps, donations, an
//! expense, subscribers, tokens and a paused pool, copied by the real binary to PostgreSQL,
//! answers every public and admin read as the original did, byte for byte; its tokens keep
//! working; a second copy into the now non-empty database is refused and changes nothing; and
//! a copy of that PostgreSQL database back to an SQLite file (a backup, restored) serves the
//! same figures again.
use buildfund_jobs::calendar::parse_rfc3339;
use buildfund_jobs::clock::Clock;
use buildfund_jobs::db::copy;
use buildfund_tests::database::{create_postgres_database, drop_postgres_database};
use buildfund_tests::{Backend, TestApp};
use serde_json::{json, Value};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"
accounts = ["nix-cuda"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "200.00"

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"

[[machines]]
name = "gpu01"
metered = "2.40"
"#;

/// Every read the comparison makes: the public figures and pages, and the admin lists.
const PUBLIC: &[&str] = &[
    "/",
    "/reports",
    "/reports/2026-10",
    "/reports/2026-10.csv",
    "/api/v1/costs?month=2026-10",
    "/api/v1/costs?month=2026-11",
    "/api/v1/costs/jobs?month=2026-10",
    "/api/v1/costs/focus?month=2026-10",
    "/api/v1/funds?month=2026-10",
    "/api/v1/funds?month=2026-11",
    "/api/v1/plans",
    "/api/v1/donations?month=2026-10",
    "/api/v1/gate/nixpkgs/cuda",
    "/api/v1/gate/nixpkgs/trunk",
    "/api/v1/reconciliation?month=2026-10",
    "/api/v1/expenses?month=2026-10",
];
const ADMIN: &[&str] = &[
    "/api/v1/tokens",
    "/api/v1/subscribers",
    "/api/v1/gate/events",
    "/api/v1/jobs",
];

fn step(build: i64, machine: &str, jobset: &str, start: &str, stop: &str) -> Value {
    json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
           "job": format!("pkg{build}.x86_64-linux"), "machine": machine,
           "start": parse_rfc3339(start).unwrap().timestamp(),
           "stop": parse_rfc3339(stop).unwrap().timestamp()})
}

/// The answer's own instant (`as_of`: when it was computed) is not a figure of the books.
fn without_answer_time(body: String) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("as_of");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(mut v) => {
            strip(&mut v);
            v.to_string()
        }
        Err(_) => body,
    }
}

/// What `app` answers to every read, in order (status and body).
async fn answers(app: &TestApp, admin: &str) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for path in PUBLIC {
        let res = app.get(path).await;
        let status = res.status().as_u16();
        out.push((
            path.to_string(),
            status,
            without_answer_time(res.text().await.unwrap()),
        ));
    }
    for path in ADMIN {
        let res = app.get_with_token(path, admin).await;
        let status = res.status().as_u16();
        out.push((
            path.to_string(),
            status,
            without_answer_time(res.text().await.unwrap()),
        ));
    }
    out
}

/// The digests of the farm's own records (what no background job of a running server writes).
async fn farm_rows(app: &TestApp) -> Vec<copy::TableCopy> {
    let keep = [
        "api_tokens",
        "build_steps",
        "donations",
        "expenses",
        "subscribers",
        "pool_controls",
    ];
    let mut tables = copy::digests(&app.db).await.unwrap();
    tables.retain(|t| keep.contains(&t.table.as_str()));
    assert_eq!(tables.len(), keep.len());
    tables
}

fn same(before: &[(String, u16, String)], after: &[(String, u16, String)], what: &str) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        assert_eq!(
            b.1, 200,
            "{} answered {} on the original: {}",
            b.0, b.1, b.2
        );
        assert_eq!(b, a, "{} differs on {what}", b.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_moves_from_sqlite_to_postgresql_and_back_with_every_answer_the_same() {
    if !buildfund_tests::postgres_enabled() {
        return;
    }
    let clock = Clock::manual(parse_rfc3339("2026-11-20T12:00:00Z").unwrap());
    let farm = TestApp::builder(CONFIG)
        .clock(clock.clone())
        .start(Backend::Sqlite)
        .await;
    let admin = farm.token("admin").await;
    let ingest = farm.token("ingest").await;
    let mut steps = Vec::new();
    for (i, day) in (1..=28).enumerate() {
        let jobset = if i % 3 == 0 { "trunk" } else { "cuda" };
        let machine = if i % 2 == 0 { "build03" } else { "gpu01" };
        steps.push(step(
            i as i64 + 1,
            machine,
            jobset,
            &format!("2026-10-{day:02}T08:00:00Z"),
            &format!("2026-10-{day:02}T11:30:00Z"),
        ));
    }
    steps.push(step(
        99,
        "build03",
        "cuda",
        "2026-11-03T10:00:00Z",
        "2026-11-03T12:00:00Z",
    ));
    let body: String = steps.iter().map(|s| format!("{s}\n")).collect();
    let res = farm
        .post_build_steps(&ingest, "application/x-ndjson", body)
        .await;
    assert!(res.status().is_success(), "ingest: {}", res.status());
    let res = farm
        .post_donation(
            Some(&admin),
            &json!({"idempotency_key": "bank-1", "occurred_at": "2026-10-05T00:00:00Z",
                    "account": "nix-cuda", "contributor_name": "A sponsor",
                    "amount_cents": 25000, "fees_cents": 0, "currency": "EUR"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (status, answer) = farm
        .post_json(
            "/api/v1/expenses",
            &admin,
            json!({"idempotency_key": "inv-oct", "paid_at": "2026-10-31T10:00:00Z",
                   "incurred_at": "2026-10-30", "payee": "Hosting GmbH",
                   "tags": ["domain"], "description": "Domain fee", "amount_cents": 1_200}),
        )
        .await;
    assert_eq!(status, 201, "manual expense: {answer}");
    farm.cli_ok(&["subscribers", "add", "a@example.org", "--confirmed"]);
    farm.cli_ok(&["subscribers", "add", "b@example.org"]);
    let (status, answer) = farm
        .pause("cuda", &admin, json!({"reason": "over budget"}))
        .await;
    assert!(status < 300, "pause: {status} {answer}");
    let before = answers(&farm, &admin).await;

    // SQLite -> PostgreSQL, by the real binary, while the farm serves. A first copy killed
    // halfway leaves the target without a row, so the next one takes it as empty.
    let pg = create_postgres_database()
        .await
        .expect("a scratch database");
    {
        use buildfund_tests::crash::PAUSE_AT;
        let mut copy = farm.cli_process(
            &["db", "copy", "--to", &pg],
            &[(PAUSE_AT, "db_copy.table_written")],
        );
        copy.wait_paused_at("db_copy.table_written").await;
        copy.kill();
        let target = sea_orm::Database::connect(pg.as_str()).await.unwrap();
        let rows: u64 = copy::digests(&target)
            .await
            .unwrap()
            .iter()
            .filter(|t| !copy::MIGRATION_SEEDS.contains(&t.table.as_str()))
            .map(|t| t.rows)
            .sum();
        assert_eq!(rows, 0, "a killed copy leaves no row in the target");
        target.close().await.unwrap();
    }
    let out = farm.cli(&["db", "copy", "--to", &pg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "db copy failed: {stderr}");
    assert!(stdout.contains("all equal"), "{stdout}");
    assert!(
        stderr.contains("build_steps: 29 rows"),
        "progress per table: {stderr}"
    );
    assert!(
        !stdout.contains("postgres@"),
        "the URL's user is not shown: {stdout}"
    );

    let moved = TestApp::start_on(Backend::Postgres, CONFIG, &pg, clock.clone()).await;
    same(
        &before,
        &answers(&moved, &admin).await,
        "the PostgreSQL copy",
    );
    // The SQLite farm's ingest token works on the copy.
    let late = step(
        100,
        "build03",
        "trunk",
        "2026-11-04T10:00:00Z",
        "2026-11-04T11:00:00Z",
    );
    let res = moved
        .post_build_steps(&ingest, "application/x-ndjson", format!("{late}\n"))
        .await;
    assert!(
        res.status().is_success(),
        "the copied token: {}",
        res.status()
    );
    let copied = farm_rows(&moved).await;

    // A second copy into the now non-empty database: refused, nothing changed.
    let again = farm.cli(&["db", "copy", "--to", &pg]);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("already holds data"), "{why}");
    assert_eq!(farm_rows(&moved).await, copied);

    // PostgreSQL -> an SQLite file: a backup; served, it answers as the PostgreSQL copy does.
    let after_late = answers(&moved, &admin).await;
    let backup = moved.dir.path().join("backup.sqlite");
    let out = moved.cli(&[
        "db",
        "copy",
        "--to",
        &format!("sqlite://{}", backup.display()),
    ]);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = TestApp::start_on(
        Backend::Sqlite,
        CONFIG,
        &format!("sqlite://{}?mode=rwc", backup.display()),
        clock.clone(),
    )
    .await;
    same(
        &after_late,
        &answers(&restored, &admin).await,
        "the SQLite backup",
    );
    assert_eq!(farm_rows(&restored).await, copied);
    drop_postgres_database(&pg).await;
}

/// The copy treats a database whose only rows are the ones its migrations write as empty: a
/// migration that starts writing rows into another table has to be named in
/// `copy::MIGRATION_SEEDS`, or a fresh target would be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_migrated_database_holds_rows_only_in_the_migration_seeds() {
    use buildfund_migration::{Migrator, MigratorTrait};
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fresh.sqlite").display()
    )];
    let pg = if buildfund_tests::postgres_enabled() {
        let url = create_postgres_database().await.unwrap();
        urls.push(url.clone());
        Some(url)
    } else {
        None
    };
    for url in &urls {
        let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let seeded: Vec<String> = copy::digests(&db)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.rows > 0)
            .map(|t| t.table)
            .collect();
        assert_eq!(seeded, copy::MIGRATION_SEEDS, "on {url}");
        db.close().await.unwrap();
    }
    if let Some(url) = pg {
        drop_postgres_database(&url).await;
    }
}
