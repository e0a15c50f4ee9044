//! The Hydra pull (`buildfund sync hydra`) and the SQL export (docs/hydra-export.sql) against a
//! real PostgreSQL database laid out like Hydra's (`jobsets`, `builds`, `buildsteps`), loaded
//! with the 40 sample rows of tests/fixtures/hydra-sample-build-steps.jsonl. The Hydra side is
//! always PostgreSQL; buildfund's own database is SQLite or PostgreSQL as `db_test!` runs it.
use buildfund_entity::{build_steps, sync_cursors};
use buildfund_jobs::config::Secrets;
use buildfund_jobs::sources::hydra_pull::{self, PageReport, PullReport};
use buildfund_jobs::Config;
use buildfund_tests::{
    create_postgres_database, db_test, drop_postgres_database, postgres_enabled, run_cli, TestApp,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, Statement, Value,
};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::process::Output;
use std::sync::Mutex;

const CONFIG: &str = r#"
ledger_start = "2026-01-01"

[hydra]
database_url_env = "BUILDFUND_TEST_HYDRA_URL"

[[machines]]
name = "build03"
aliases = ["ssh://localhost"]
monthly = "120.00"

[[machines]]
name = "build04"
aliases = ["ssh://nix@build04.nix-community.org"]
monthly = "169.00"
"#;

const FIXTURE: &str = include_str!("../fixtures/hydra-sample-build-steps.jsonl");
const LEDGER_START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
/// The latest stop time of the sample (08:16:17 UTC).
const LAST_STOP: i64 = 1_787_213_777;
const LOCALHOST: &str = "ssh://localhost";
const BUILD04: &str = "ssh://nix@build04.nix-community.org";
const GPU01: &str = "ssh://nix@gpu01.nix-community.org";

/// The part of Hydra's schema the pull reads (hydra.sql, schema version 87), with Hydra's
/// partial index on stop times.
const SCHEMA: &str = r#"
CREATE TABLE jobsets (
    id       serial PRIMARY KEY,
    project  text NOT NULL,
    name     text NOT NULL,
    UNIQUE (project, name)
);
CREATE TABLE builds (
    id        integer PRIMARY KEY,
    jobset_id integer NOT NULL REFERENCES jobsets (id),
    job       text NOT NULL
);
CREATE TABLE buildsteps (
    build     integer NOT NULL REFERENCES builds (id),
    stepnr    integer NOT NULL,
    type      integer NOT NULL,
    drvpath   text NOT NULL,
    busy      integer NOT NULL,
    status    integer,
    starttime integer,
    stoptime  integer,
    machine   text NOT NULL DEFAULT '',
    system    text,
    overhead  integer,
    PRIMARY KEY (build, stepnr)
);
CREATE INDEX IndexBuildStepsOnStopTime ON buildsteps (stoptime DESC)
    WHERE starttime IS NOT NULL AND stoptime IS NOT NULL;
"#;

/// A throwaway PostgreSQL database shaped like Hydra's.
struct HydraDb {
    url: String,
    conn: DatabaseConnection,
}

impl HydraDb {
    /// Creates the database and loads the 40 sample rows.
    async fn with_sample() -> HydraDb {
        let url = create_postgres_database()
            .await
            .expect("cannot create the Hydra test database");
        let conn = Database::connect(url.as_str())
            .await
            .expect("connect Hydra");
        conn.execute_unprepared(SCHEMA).await.expect("Hydra schema");
        let hydra = HydraDb { url, conn };
        let rows: Vec<Json> = FIXTURE
            .lines()
            .map(|l| serde_json::from_str(l).expect("fixture row"))
            .collect();
        assert_eq!(rows.len(), 40);
        for row in &rows {
            hydra.insert(row).await;
        }
        hydra
    }

    async fn exec(&self, sql: &str, values: Vec<Value>) {
        self.conn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts one step in the fixture's shape, with its build and jobset when new.
    async fn insert(&self, row: &Json) {
        let int = |k: &str| row[k].as_i64().map(|i| i as i32);
        let text = |k: &str| row[k].as_str().map(str::to_string);
        self.exec(
            "INSERT INTO jobsets (project, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![text("project").into(), text("jobset").into()],
        )
        .await;
        self.exec(
            "INSERT INTO builds (id, jobset_id, job) \
             SELECT $1, id, $4 FROM jobsets WHERE project = $2 AND name = $3 \
             ON CONFLICT DO NOTHING",
            vec![
                int("build").into(),
                text("project").into(),
                text("jobset").into(),
                text("job").into(),
            ],
        )
        .await;
        self.exec(
            "INSERT INTO buildsteps (build, stepnr, type, drvpath, busy, status, starttime, \
                                     stoptime, machine, system, overhead) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            vec![
                int("build").into(),
                int("stepnr").into(),
                int("type").into(),
                text("drv").map(|d| format!("/nix/store/x-{d}.drv")).into(),
                int("busy").into(),
                int("status").into(),
                int("starttime").into(),
                int("stoptime").into(),
                text("machine").into(),
                text("system").into(),
                int("overhead").into(),
            ],
        )
        .await;
    }

    async fn drop(self) {
        self.conn.close().await.ok();
        drop_postgres_database(&self.url).await;
    }
}

/// A finished build step on `machine` of the `nixpkgs:cuda` jobset.
fn new_step(build: i64, start: i64, stop: i64, machine: &str) -> Json {
    serde_json::json!({"build": build, "stepnr": 1, "project": "nixpkgs", "jobset": "cuda",
        "job": "python3Packages.jax.x86_64-linux", "drv": "python3.13-jax",
        "system": "x86_64-linux", "machine": machine, "type": 0, "busy": 0, "status": 0,
        "starttime": start, "stoptime": stop, "overhead": null})
}

/// The app's configuration with `[hydra]` reading the Hydra URL from an environment variable
/// of its own: tests run as threads of one process, so each (test, backend) gets a unique name.
fn config_for(app: &TestApp, test: &str, hydra: &HydraDb, overlap: Option<i64>) -> Config {
    let var = format!("BUILDFUND_TEST_HYDRA_URL_{test}_{:?}", app.backend).to_uppercase();
    std::env::set_var(&var, &hydra.url);
    let mut config = (*app.config).clone();
    let h = config.hydra.as_mut().expect("[hydra] in the test config");
    h.database_url_env = Some(var);
    if let Some(o) = overlap {
        h.overlap_seconds = o;
    }
    config
}

async fn pull(app: &TestApp, config: &Config, page_size: u64) -> (PullReport, Vec<PageReport>) {
    let pages = Mutex::new(Vec::new());
    let report = hydra_pull::pull_with_page_size(
        &app.db,
        config,
        &Secrets::from_env(config),
        page_size,
        app.clock.now(),
        |p| pages.lock().unwrap().push(p.clone()),
    )
    .await
    .expect("pull");
    (report, pages.into_inner().unwrap())
}

async fn stored(app: &TestApp) -> Vec<build_steps::Model> {
    build_steps::Entity::find()
        .order_by_asc(build_steps::Column::Build)
        .order_by_asc(build_steps::Column::Step)
        .all(&app.db)
        .await
        .unwrap()
}

/// Busy hours per (jobset, machine): the sum of stop - start in seconds, rounded to 0.01 h.
fn hours(rows: &[build_steps::Model]) -> BTreeMap<(String, String), String> {
    let mut seconds: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in rows {
        *seconds
            .entry((format!("{}:{}", r.project, r.jobset), r.machine.clone()))
            .or_default() += r.stop_ts - r.start_ts;
    }
    seconds
        .into_iter()
        .map(|(k, s)| (k, format!("{:.2}", s as f64 / 3600.0)))
        .collect()
}

fn expected_hours() -> BTreeMap<(String, String), String> {
    [
        ("nixpkgs:cuda", LOCALHOST, "13.04"),
        ("nixpkgs:cuda-jetson", BUILD04, "11.08"),
        ("nixpkgs:cuda-gpu-tests", GPU01, "0.56"),
        ("nixpkgs:unfree-redist", LOCALHOST, "0.51"),
        ("nixpkgs:unfree-redist", BUILD04, "0.82"),
    ]
    .into_iter()
    .map(|(j, m, h)| ((j.to_string(), m.to_string()), h.to_string()))
    .collect()
}

async fn stored_cursor(app: &TestApp) -> Option<String> {
    sync_cursors::Entity::find_by_id("hydra:hydra".to_string())
        .one(&app.db)
        .await
        .unwrap()
        .map(|c| c.value)
}

fn counts(r: &PullReport) -> (u64, u64, u64, u64) {
    (r.rows, r.inserted, r.updated, r.unchanged)
}

db_test!(
    pull_stores_finished_steps_and_resumes_from_its_cursor,
    CONFIG,
    |app| async move {
        if !postgres_enabled() {
            return;
        }
        let hydra_db = HydraDb::with_sample().await;
        let config = config_for(&app, "resume", &hydra_db, None);

        let (first, pages) = pull(&app, &config, hydra_pull::PAGE_SIZE).await;
        assert_eq!(counts(&first), (35, 35, 0, 0), "{first:?}");
        assert_eq!((first.pages, first.skipped), (1, 0));
        assert_eq!(first.read_from, LEDGER_START);
        assert_eq!(
            (first.cursor_before, first.cursor_after),
            (None, Some(LAST_STOP))
        );
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (pages[0].rows, pages[0].cursor, pages[0].last_stop),
            (35, Some(LAST_STOP), LAST_STOP)
        );
        // build03 and build04 are configured by their Hydra names; gpu01 is not.
        assert_eq!(
            first.unpriced_machines,
            BTreeMap::from([(GPU01.to_string(), 7)])
        );
        assert_eq!(stored_cursor(&app).await.as_deref(), Some("1787213777"));

        let rows = stored(&app).await;
        assert_eq!(rows.len(), 35);
        assert!(rows.iter().all(|r| r.source == "hydra"));
        assert_eq!(hours(&rows), expected_hours());
        let keys: Vec<(i64, i32)> = rows.iter().map(|r| (r.build, r.step)).collect();
        for (absent, what) in [
            ((4718214, 2), "a substitution"),
            ((4718305, 2), "a substitution"),
            ((4718336, 1), "the busy step"),
            ((4718275, 1), "the cached failure with null times"),
            ((4718421, 1), "the cached failure with start = stop"),
        ] {
            assert!(!keys.contains(&absent), "{what} {absent:?} was stored");
        }
        let torch = rows
            .iter()
            .find(|r| (r.build, r.step) == (4718201, 1))
            .unwrap();
        assert_eq!(
            (
                torch.job.as_deref(),
                torch.system.as_deref(),
                torch.machine.as_str(),
                torch.status
            ),
            (
                Some("python3Packages.torch.x86_64-linux"),
                Some("x86_64-linux"),
                LOCALHOST,
                Some(0)
            )
        );
        // Failed (1), aborted (3) and timed-out (7) steps used the machine: kept.
        let statuses: std::collections::BTreeSet<Option<i32>> =
            rows.iter().map(|r| r.status).collect();
        for s in [1, 3, 7] {
            assert!(statuses.contains(&Some(s)), "status {s} missing");
        }

        // A rerun reads only the overlap hour again, and stores nothing new.
        let (again, _) = pull(&app, &config, hydra_pull::PAGE_SIZE).await;
        assert_eq!(counts(&again), (5, 0, 0, 5), "{again:?}");
        assert_eq!(again.read_from, LAST_STOP - 3600);
        assert_eq!(
            (again.cursor_before, again.cursor_after),
            (Some(LAST_STOP), Some(LAST_STOP))
        );
        assert_eq!(stored(&app).await, rows);

        // A step that finishes later is picked up by the next pull alone.
        hydra_db
            .insert(&new_step(
                4718600,
                LAST_STOP + 100,
                LAST_STOP + 3700,
                LOCALHOST,
            ))
            .await;
        let (next, _) = pull(&app, &config, hydra_pull::PAGE_SIZE).await;
        assert_eq!((next.inserted, next.updated), (1, 0), "{next:?}");
        assert_eq!(next.cursor_after, Some(LAST_STOP + 3700));
        assert_eq!(
            stored_cursor(&app).await,
            Some((LAST_STOP + 3700).to_string())
        );
        assert_eq!(stored(&app).await.len(), 36);

        // The step that was busy finishes: it comes with the next pull.
        hydra_db
            .exec(
                "UPDATE buildsteps SET busy = 0, status = 0, stoptime = $1 \
                 WHERE build = 4718336 AND stepnr = 1",
                vec![((LAST_STOP + 4000) as i32).into()],
            )
            .await;
        let (finished, _) = pull(&app, &config, hydra_pull::PAGE_SIZE).await;
        assert_eq!(
            (finished.inserted, finished.updated),
            (1, 0),
            "{finished:?}"
        );
        let jaxlib = build_steps::Entity::find()
            .filter(build_steps::Column::Build.eq(4718336))
            .one(&app.db)
            .await
            .unwrap()
            .expect("the finished step is stored");
        assert_eq!(jaxlib.machine, BUILD04);
        assert_eq!(jaxlib.stop_ts, LAST_STOP + 4000);

        hydra_db.drop().await;
    }
);

db_test!(
    small_pages_store_every_step_once,
    CONFIG,
    |app| async move {
        if !postgres_enabled() {
            return;
        }
        let hydra_db = HydraDb::with_sample().await;
        let config = config_for(&app, "pages", &hydra_db, Some(0));

        let (first, pages) = pull(&app, &config, 4).await;
        assert_eq!(counts(&first), (35, 35, 0, 0), "{first:?}");
        assert_eq!(first.pages, 9);
        assert_eq!(pages.len(), 9);
        assert_eq!(pages.iter().map(|p| p.rows).sum::<u64>(), 35);
        // The cursor moves forward page by page.
        assert!(pages.windows(2).all(|w| w[0].cursor < w[1].cursor));
        assert_eq!(first.cursor_after, Some(LAST_STOP));
        assert_eq!(hours(&stored(&app).await), expected_hours());

        // Three steps stopping in the same second, split over a page boundary: with no overlap
        // the next pull reads the step at the cursor again, then the three.
        for build in [4718601, 4718602, 4718603] {
            hydra_db
                .insert(&new_step(build, LAST_STOP + 10, LAST_STOP + 600, LOCALHOST))
                .await;
        }
        let (next, pages) = pull(&app, &config, 2).await;
        assert_eq!(counts(&next), (4, 3, 0, 1), "{next:?}");
        assert_eq!(pages.len(), 2);
        assert_eq!(next.read_from, LAST_STOP);
        let rows = stored(&app).await;
        assert_eq!(rows.len(), 38);
        assert_eq!(
            rows.iter().filter(|r| r.stop_ts == LAST_STOP + 600).count(),
            3
        );

        hydra_db.drop().await;
    }
);

/// Runs docs/hydra-export.sql with psql, as docs/src/hydra.md says.
fn export(hydra: &HydraDb) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hydra-export.sql");
    std::process::Command::new("psql")
        .args(["-At", "-f", script, &hydra.url])
        .output()
        .expect("run psql")
}

db_test!(
    the_sql_export_gives_the_rows_of_the_pull,
    CONFIG,
    |app| async move {
        if !postgres_enabled() {
            return;
        }
        let hydra_db = HydraDb::with_sample().await;
        let out = export(&hydra_db);
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ndjson = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ndjson.lines().count(), 35);
        let file = app.dir.path().join("steps.ndjson");
        std::fs::write(&file, &ndjson).unwrap();

        let ingest = app.cli(&["ingest", "build-steps", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&ingest.stdout);
        assert!(
            ingest.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&ingest.stderr)
        );
        assert!(stdout.contains("35 records"), "{stdout}");
        assert!(
            stdout.contains("35 inserted, 0 updated, 0 unchanged"),
            "{stdout}"
        );
        let exported = stored(&app).await;
        assert_eq!(hours(&exported), expected_hours());

        // The pull finds every exported row as it would have stored it.
        let config = config_for(&app, "export", &hydra_db, None);
        let (report, _) = pull(&app, &config, hydra_pull::PAGE_SIZE).await;
        assert_eq!(counts(&report), (35, 0, 0, 35), "{report:?}");
        assert_eq!(stored(&app).await, exported);

        hydra_db.drop().await;
    }
);

db_test!(sync_hydra_from_the_command_line, CONFIG, |app| async move {
    if !postgres_enabled() {
        return;
    }
    let hydra_db = HydraDb::with_sample().await;
    let config_path = app.config_path.to_str().unwrap();
    let base_env = [
        ("DATABASE_URL", app.db_url.as_str()),
        ("BUILDFUND_CONFIG", config_path),
    ];

    // The variable named by hydra.database_url_env is not set.
    let unset = run_cli(&["sync", "hydra"], app.dir.path(), &base_env);
    assert_eq!(unset.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
            stderr.starts_with("error: the environment variable BUILDFUND_TEST_HYDRA_URL (hydra.database_url_env) is not set"),
            "{stderr}"
        );

    let mut env = base_env.to_vec();
    env.push(("BUILDFUND_TEST_HYDRA_URL", hydra_db.url.as_str()));
    let out = run_cli(&["sync", "hydra"], app.dir.path(), &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "page 1: 35 steps (35 inserted, 0 updated, 0 unchanged), up to 2026-08-20T08:16:17Z"
        ),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("hydra: 35 steps in 1 page(s) in "),
        "{stdout}"
    );
    assert!(
            stdout.contains("35 inserted, 0 updated, 0 unchanged, 0 skipped; read from 2026-01-01T00:00:00Z, cursor none -> 2026-08-20T08:16:17Z"),
            "{stdout}"
        );
    assert!(
        stdout.contains(&format!("unpriced machine \"{GPU01}\": 7 steps")),
        "{stdout}"
    );
    assert_eq!(hours(&stored(&app).await), expected_hours());

    // Never the URL (nor its password) in the output.
    let wrong = format!("{}_missing", hydra_db.url);
    let mut env = base_env.to_vec();
    env.push(("BUILDFUND_TEST_HYDRA_URL", wrong.as_str()));
    let failed = run_cli(&["sync", "hydra"], app.dir.path(), &env);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to the Hydra database at "),
        "{stderr}"
    );
    assert!(
        stderr.contains("(from BUILDFUND_TEST_HYDRA_URL)"),
        "{stderr}"
    );
    assert!(!stderr.contains("postgres://"), "{stderr}");

    hydra_db.drop().await;
});

db_test!(sync_hydra_needs_a_hydra_table, |app| async move {
    let out = app.cli(&["sync", "hydra"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: the configuration ({}) has no [hydra] table, so there is no Hydra database to pull from; add [hydra] with database_url_env\n",
            app.config_path.display()
        )
    );
    assert!(out.stdout.is_empty());
});
