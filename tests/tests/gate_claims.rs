//! The gate's side effects across replicas and faults (issue #15): one state change is one
//! recorded event, one webhook delivery and one Hydra PUT per jobset however many instances
//! share the database; a hold is written before its PUT, so a PUT whose answer was lost is
//! restored right; a closed pool holds the jobsets it learns about later, from Hydra's own
//! list and from new build steps; leases carry a fencing token; a panic in the gate's refresh
//! marks the snapshot stale instead of freezing it.
use crate::gate::{cuda_events, ingest, store_jobsets, CONFIG};
use actix_web::HttpResponse;
use buildfund_entity::gate_events::{EventKind, State};
use buildfund_entity::{build_steps, gate_events, hydra_jobset_holds, job_leases, sync_cursors};
use buildfund_jobs::clock::Clock;
use buildfund_jobs::db::leases;
use buildfund_jobs::scheduler::{Outcome, Registry, Scheduler};
use buildfund_tests::recorder::{header, Request};
use buildfund_tests::{db_test, run, Backend, TestApp};
use chrono::{Datelike, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, Set};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

fn login() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("set-cookie", "hydra_session=abc123; Path=/; HttpOnly"))
        .json(json!({"username": "buildfund", "fullname": "buildfund", "emailaddress": "", "userroles": []}))
}

/// One jobset as Hydra answers `GET /jobset/{project}/{jobset}`.
fn jobset(name: &str, enabled: i64) -> Value {
    json!({"name": name, "project": "nixpkgs", "enabled": enabled, "visible": true,
           "enableemail": false, "type": 0, "nixexprinput": "src", "nixexprpath": "release.nix",
           "checkinterval": 300, "schedulingshares": 100, "keepnr": 3})
}

/// One entry of `GET /api/jobsets?project=` in the shape of Hydra's `JobsetOverview`
/// (hydra-api.yaml, NixOS/hydra at 14332fbf55470184984bf76488960741510971d0).
fn overview(project: &str, name: &str) -> Value {
    json!({"name": name, "project": project, "nrtotal": 12, "checkinterval": 300,
           "haserrormsg": false, "nrscheduled": 0, "nrfailed": 1, "errortime": 0,
           "fetcherrormsg": null, "starttime": null, "lastcheckedtime": 1787200000,
           "triggertime": null})
}

/// Whether `r` is a PUT of `/jobset/nixpkgs/{name}` setting `enabled`.
fn put_of(r: &Request, name: &str, enabled: i64) -> bool {
    r.0 == "PUT"
        && r.1 == format!("/jobset/nixpkgs/{name}")
        && serde_json::from_str::<Value>(&r.3).is_ok_and(|b| b["enabled"] == enabled)
}

fn puts(app: &TestApp, name: &str, enabled: i64) -> usize {
    let seen = app.hydra().seen().lock().unwrap().clone();
    seen.iter().filter(|r| put_of(r, name, enabled)).count()
}

async fn holds(app: &TestApp) -> Vec<hydra_jobset_holds::Model> {
    hydra_jobset_holds::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
}

/// A Hydra whose `nixpkgs` project lists `cuda`, `cuda-off` (disabled already) and `trunk`,
/// and from its fifth listing on also `cuda-new`, a jobset added while the pool is closed.
fn hydra_listing(method: &str, path: &str, n: usize) -> HttpResponse {
    match (method, path) {
        ("POST", "/login") => login(),
        ("GET", "/api/jobsets?project=nixpkgs") => {
            let mut names = vec!["cuda", "cuda-off", "trunk"];
            if n >= 5 {
                names.push("cuda-new");
            }
            let list: Vec<Value> = names.iter().map(|j| overview("nixpkgs", j)).collect();
            HttpResponse::Ok().json(list)
        }
        ("GET", "/jobset/nixpkgs/cuda-off") => HttpResponse::Ok().json(jobset("cuda-off", 0)),
        ("GET", p) if p.starts_with("/jobset/nixpkgs/") => {
            HttpResponse::Ok().json(jobset(&p["/jobset/nixpkgs/".len()..], 1))
        }
        ("PUT", p) if p.starts_with("/jobset/") => HttpResponse::Ok().json(json!({})),
        ("GET", p) if p.starts_with("/api/queue") => HttpResponse::Ok().json(json!([])),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// `CONFIG` with the `gpu` fund's balance (10.00) below its reserve (50.00): its pools are
/// closed from start-up; donations to the account `gpu-project` go to it.
fn closed_from_start() -> String {
    CONFIG.replace(
        "opening_balance = \"1000000.00\"\nreserve = \"50.00\"",
        "opening_balance = \"10.00\"\nreserve = \"50.00\"\naccounts = [\"gpu-project\"]",
    )
}

// With `cuda` closed from start-up, the jobsets it learns about afterwards are held too: one
// from a build step ingested later, one Hydra lists only later. A jobset disabled already is
// recorded but not PUT, one of another pool is left alone, and opening restores exactly the
// jobsets that were held.
db_test!(
    a_closed_pool_holds_jobsets_it_learns_about_later,
    TestApp::builder(closed_from_start()).hydra(hydra_listing),
    |app| async move {
        let hydra = app.hydra();
        hydra.wait_for(|r| put_of(r, "cuda", 0)).await;
        let now = Utc::now().timestamp();
        ingest(&app, &[(1, "nixpkgs:cuda-late", now - 10, now - 9)]).await;
        hydra.wait_for(|r| put_of(r, "cuda-late", 0)).await;
        hydra.wait_for(|r| put_of(r, "cuda-new", 0)).await;
        let held: BTreeSet<(String, i32)> = holds(&app)
            .await
            .into_iter()
            .map(|h| (h.jobset, h.previous_enabled))
            .collect();
        let expected: BTreeSet<(String, i32)> = [
            ("cuda", 1),
            ("cuda-late", 1),
            ("cuda-new", 1),
            ("cuda-off", 0),
        ]
        .into_iter()
        .map(|(j, e)| (j.to_string(), e))
        .collect();
        assert_eq!(held, expected);

        // Money comes in: the pool opens and exactly what was held is restored.
        let admin = app.token("admin").await;
        let at = (Utc::now() - chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let res = app
            .post_donation(
                Some(&admin),
                &json!({"idempotency_key": "bank-1", "occurred_at": at, "account": "gpu-project",
                        "contributor_name": "A sponsor", "amount_cents": 100000, "fees_cents": 0,
                        "currency": "EUR"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        for name in ["cuda", "cuda-late", "cuda-new"] {
            hydra.wait_for(|r| put_of(r, name, 1)).await;
        }
        for _ in 0..50 {
            if holds(&app).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(holds(&app).await.is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        for name in ["cuda", "cuda-late", "cuda-new"] {
            assert_eq!(puts(&app, name, 0), 1, "{name} disabled once");
            assert_eq!(puts(&app, name, 1), 1, "{name} restored once");
        }
        let seen = hydra.seen().lock().unwrap().clone();
        for untouched in ["/jobset/nixpkgs/cuda-off", "/jobset/nixpkgs/trunk"] {
            assert!(
                !seen.iter().any(|r| r.0 == "PUT" && r.1 == untouched),
                "no PUT of {untouched}"
            );
        }
    }
);

/// A Hydra that applies the first PUT disabling `nixpkgs:cuda` but answers it with a 500 (the
/// answer is lost): from then on it shows the jobset disabled. Each other request's first
/// answer is a 500 too, so the restore is retried as well.
fn hydra_lost_answer(method: &str, path: &str, n: usize) -> HttpResponse {
    match (method, path) {
        ("POST", "/login") => login(),
        ("GET", "/jobset/nixpkgs/cuda") => {
            HttpResponse::Ok().json(jobset("cuda", if n == 1 { 1 } else { 0 }))
        }
        ("PUT", "/jobset/nixpkgs/cuda") if n == 1 => HttpResponse::InternalServerError().finish(),
        ("PUT", "/jobset/nixpkgs/cuda") => HttpResponse::Ok().json(json!({})),
        ("GET", p) if p.starts_with("/api/queue") => HttpResponse::Ok().json(json!([])),
        _ => HttpResponse::NotFound().finish(),
    }
}

// The hold row is written before the PUT with the `enabled` value from before, so a PUT that
// half-failed (applied, answer lost) is retried and the release puts back 1, not the 0 the
// jobset showed afterwards.
db_test!(
    a_put_whose_answer_was_lost_is_restored_to_what_it_was,
    TestApp::builder(CONFIG).hydra(hydra_lost_answer),
    |app| async move {
        store_jobsets(&app, &[("nixpkgs", "cuda")]).await;
        let admin = app.token("admin").await;
        let (s, _) = app.pause("cuda", &admin, json!({"reason": "x"})).await;
        assert_eq!(s, 200);
        let kinds = cuda_events(&app, &admin, |k| k.iter().any(|k| k.0 == "hydra_disabled")).await;
        assert!(
            kinds
                .iter()
                .any(|k| k.1 == "disabled nixpkgs:cuda on Hydra (enabled was 1)"),
            "{kinds:?}"
        );
        let (s, _) = app.lift("cuda", &admin, json!({"reason": "y"})).await;
        assert_eq!(s, 200);
        let kinds = cuda_events(&app, &admin, |k| k.iter().any(|k| k.0 == "hydra_restored")).await;
        assert!(
            kinds
                .iter()
                .any(|k| k.1 == "restored nixpkgs:cuda on Hydra to enabled=1"),
            "{kinds:?}"
        );
        assert!(holds(&app).await.is_empty());
    }
);

// Leases carry a fencing token: once another instance took a lease over, the first holder's
// renewal and checks fail, its release leaves the new lease alone, and a scheduled run whose
// lease is taken over is stopped and recorded as such.
db_test!(a_lost_lease_stops_its_work, |app| async move {
    let db = &app.db;
    let minute = chrono::Duration::minutes(1);
    let a = leases::acquire(db, "work", "a", minute, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        leases::acquire(db, "work", "b", minute, Utc::now())
            .await
            .unwrap()
            .unwrap_err(),
        "a"
    );
    assert!(a.renew(db, Utc::now()).await.unwrap() && a.check(db, Utc::now()).await.unwrap());
    // a stalls past its lease; b takes it over.
    job_leases::Entity::update_many()
        .col_expr(
            job_leases::Column::ExpiresAt,
            Expr::value(Utc::now() - minute),
        )
        .exec(db)
        .await
        .unwrap();
    let b = leases::acquire(db, "work", "b", minute, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.token, a.token + 1);
    assert!(
        !a.renew(db, Utc::now()).await.unwrap(),
        "a's renewal sees the lease lost"
    );
    assert!(!a.check(db, Utc::now()).await.unwrap());
    a.release(db).await.unwrap();
    assert!(
        b.check(db, Utc::now()).await.unwrap(),
        "a's release leaves b's lease"
    );

    // A run whose lease another instance takes over stops before its write. The job writes
    // only once the test lets it (after the run was stopped): a run still going would then.
    let (started, proceed) = (
        std::sync::Arc::new(tokio::sync::Notify::new()),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let mut registry = Registry::default();
    let (s, p) = (started.clone(), proceed.clone());
    registry.register("long", move |db, _| {
        let (started, proceed) = (s.clone(), p.clone());
        async move {
            started.notify_one();
            proceed.notified().await;
            sync_cursors::ActiveModel {
                name: Set("written by a stopped run".into()),
                value: Set("x".into()),
                updated_at: Set(Utc::now()),
            }
            .insert(&db)
            .await?;
            Ok(Outcome::Done("wrote".into()))
        }
    });
    let scheduler = Scheduler::new(
        app.db.clone(),
        app.config.clone(),
        registry.clone(),
        Clock::system(),
    )
    .with_lease(chrono::Duration::seconds(3));
    let tick = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let thief = async {
        started.notified().await;
        job_leases::Entity::update_many()
            .col_expr(job_leases::Column::Holder, Expr::value("another instance"))
            .col_expr(
                job_leases::Column::Token,
                Expr::col(job_leases::Column::Token).add(1),
            )
            .filter(job_leases::Column::Job.eq("long"))
            .exec(&app.db)
            .await
            .unwrap();
    };
    let t0 = std::time::Instant::now();
    let (id, _) = tokio::join!(
        scheduler.run_tick("long", tick, registry.get("long").unwrap().clone()),
        thief
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stopped at its renewal"
    );
    let run = buildfund_entity::job_runs::Entity::find_by_id(id.unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.outcome.as_str(), "failed");
    assert!(
        run.error.as_deref().unwrap().contains("lease"),
        "{:?}",
        run.error
    );
    // Were the run still going, it would write now.
    proceed.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sync_cursors::Entity::find_by_id("written by a stopped run")
        .one(&app.db)
        .await
        .unwrap()
        .is_none());
});

// A refresh that panics (here on a corrupt row that the ingest would never store: a step that
// stops before it starts) is logged and marks the snapshot stale; the refresh loop lives on and
// the gate is fresh again once the row is gone.
db_test!(
    a_panicking_refresh_marks_the_gate_stale,
    CONFIG,
    |app| async move {
        let now = Utc::now();
        let start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        ingest(&app, &[(1, "nixpkgs:gpu-a100", start, start + 1)]).await;
        assert_eq!(app.get_gate("nixpkgs/gpu-a100").await["stale"], false);
        let corrupt = build_steps::ActiveModel {
            source: Set("default".into()),
            build: Set(2),
            step: Set(1),
            project: Set("nixpkgs".into()),
            jobset: Set("gpu-corrupt".into()),
            job: Set(None),
            system: Set(None),
            machine: Set("gpu01".into()),
            start_ts: Set(start + 100),
            stop_ts: Set(start + 50),
            status: Set(None),
            ingested_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
        let mut g = Value::Null;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            g = app.get_gate("nixpkgs/gpu-a100").await;
            if g["stale"] == true {
                break;
            }
        }
        assert_eq!(g["stale"], true, "{g}");
        assert_eq!(g["spent_cents"], 100, "the last good figures: {g}");
        build_steps::Entity::delete_by_id(corrupt.id)
            .exec(&app.db)
            .await
            .unwrap();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            g = app.get_gate("nixpkgs/gpu-a100").await;
            if g["stale"] == false {
                break;
            }
        }
        assert_eq!(
            g["stale"], false,
            "the refresh loop survived the panic: {g}"
        );
    }
);

/// A Hydra listing `nixpkgs:cuda` and `nixpkgs:cuda-12`.
fn hydra_two_jobsets(method: &str, path: &str, _n: usize) -> HttpResponse {
    match (method, path) {
        ("POST", "/login") => login(),
        ("GET", "/api/jobsets?project=nixpkgs") => HttpResponse::Ok().json(vec![
            overview("nixpkgs", "cuda"),
            overview("nixpkgs", "cuda-12"),
        ]),
        ("GET", p) if p.starts_with("/jobset/nixpkgs/") => {
            HttpResponse::Ok().json(jobset(&p["/jobset/nixpkgs/".len()..], 1))
        }
        ("PUT", p) if p.starts_with("/jobset/") => HttpResponse::Ok().json(json!({})),
        ("GET", p) if p.starts_with("/api/queue") => HttpResponse::Ok().json(json!([])),
        _ => HttpResponse::NotFound().finish(),
    }
}

fn hook_posts(app: &TestApp) -> Vec<Request> {
    let seen = app.webhooks().seen().lock().unwrap().clone();
    seen.into_iter().filter(|r| r.1 == "/hook").collect()
}

/// The state events of `pool` as (from, to), oldest first.
async fn state_events(app: &TestApp, pool: &str) -> Vec<(Option<String>, Option<String>)> {
    let mut rows = gate_events::Entity::find()
        .filter(gate_events::Column::Pool.eq(pool))
        .filter(gate_events::Column::Kind.eq(EventKind::State))
        .all(&app.db)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .map(|r| {
            let text = |s: Option<State>| s.map(|s| s.as_str().to_string());
            (text(r.from_state), text(r.to_state))
        })
        .collect()
}

// Three `serve` processes (and the test's own instance) on one PostgreSQL database, each
// refreshing its gate every second, with one webhook receiver and one Hydra: a pause is one
// recorded change, one delivery with one delivery id, and one PUT per jobset; the lift too.
// Multi-instance by nature, so PostgreSQL's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_replicas_send_one_webhook_and_one_put_per_change() {
    let setup = TestApp::builder(CONFIG)
        .webhook_receiver("s3cret", |_, _, _| HttpResponse::Ok().finish())
        .hydra(hydra_two_jobsets);
    run(Backend::Postgres, setup, |app| async move {
        let config = std::fs::read_to_string(&app.config_path).unwrap().replace(
            "gate_refresh = \"* * * * * *\"",
            "gate_refresh = \"* * * * * *\"\nhydra_pull = \"\"\nopencollective_sync = \"\"\n\
                 outbox_drain = \"\"\nmonthly_report = \"\"",
        );
        let mut replicas = app.start_replicas(&config, 3);
        replicas.wait_ready().await;
        let admin = app.token("admin").await;
        let client = reqwest::Client::new();
        let control = |i: usize, action: &str| {
            client
                .post(format!(
                    "{}/api/v1/gate/pools/cuda/{action}",
                    replicas.urls[i]
                ))
                .bearer_auth(&admin)
                .json(&json!({"reason": "one change"}))
                .send()
        };
        assert_eq!(control(1, "pause").await.unwrap().status(), 200);
        app.hydra().wait_for(|r| put_of(r, "cuda", 0)).await;
        app.hydra().wait_for(|r| put_of(r, "cuda-12", 0)).await;
        app.webhooks()
            .wait_for(|r| r.3.contains("\"pool\":\"cuda\"") && r.3.contains("\"to\":\"closed\""))
            .await;
        // Several refreshes of every instance later, nothing more came.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(control(2, "lift").await.unwrap().status(), 200);
        app.hydra().wait_for(|r| put_of(r, "cuda", 1)).await;
        app.hydra().wait_for(|r| put_of(r, "cuda-12", 1)).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        replicas.stop();

        assert_eq!(
            state_events(&app, "cuda").await,
            vec![
                (None, Some("open".into())),
                (Some("open".into()), Some("closed".into())),
                (Some("closed".into()), Some("open".into())),
            ]
        );
        let posts = hook_posts(&app);
        let ids: Vec<&str> = posts
            .iter()
            .map(|r| header(r, "x-buildfund-delivery").unwrap())
            .collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "one delivery per change: {ids:?}");
        let cuda: Vec<Value> = posts
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.3).unwrap())
            .filter(|b| b["pool"] == "cuda")
            .collect();
        let moves: Vec<(Value, Value)> = cuda
            .iter()
            .map(|b| (b["from"].clone(), b["to"].clone()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (Value::Null, json!("open")),
                (json!("open"), json!("closed")),
                (json!("closed"), json!("open")),
            ]
        );
        for name in ["cuda", "cuda-12"] {
            assert_eq!(puts(&app, name, 0), 1, "{name} disabled once");
            assert_eq!(puts(&app, name, 1), 1, "{name} restored once");
        }
    })
    .await;
}
