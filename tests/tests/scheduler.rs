//! Scheduled jobs across instances: each tick runs once, a missed tick is caught up once, and
//! failing or panicking jobs are recorded without taking anything down.
use buildfund_entity::job_runs;
use buildfund_jobs::scheduler::{Outcome, Registry, Scheduler};
use buildfund_tests::{buildfund_bin, db_test, TestApp};
use chrono::{Duration, Timelike, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use std::sync::Arc;

fn every_second_config() -> String {
    format!(
        "{}[schedule]\nhydra_pull = \"* * * * * *\"\nopencollective_sync = \"\"\ngate_refresh = \"\"\n\
         outbox_drain = \"\"\nmonthly_report = \"\"\n",
        buildfund_tests::MINIMAL_CONFIG
    )
}

async fn runs(app: &TestApp, job: &str) -> Vec<job_runs::Model> {
    job_runs::Entity::find()
        .filter(job_runs::Column::Job.eq(job))
        .order_by_asc(job_runs::Column::ScheduledFor)
        .all(&app.db)
        .await
        .unwrap()
}

db_test!(
    three_instances_run_each_tick_exactly_once,
    |app| async move {
        let _ = buildfund_bin();
        let children = app.start_replicas(&every_second_config(), 3);
        tokio::time::sleep(std::time::Duration::from_secs(12)).await;
        children.stop();

        let runs = runs(&app, "hydra_pull").await;
        assert!(
            runs.len() >= 8,
            "about ten seconds of ticks, got {}",
            runs.len()
        );
        // Every second from the first tick to the last ran, and ran once.
        for pair in runs.windows(2) {
            assert_eq!(
                (pair[1].scheduled_for - pair[0].scheduled_for).num_seconds(),
                1,
                "ticks {} and {} are not consecutive seconds",
                pair[0].scheduled_for,
                pair[1].scheduled_for
            );
        }
        let instances: std::collections::BTreeSet<&str> =
            runs.iter().map(|r| r.instance.as_str()).collect();
        eprintln!(
            "ticks run by {} instance(s): {instances:?}",
            instances.len()
        );
        for r in &runs {
            assert_eq!(r.outcome, "skipped", "{r:?}");
            assert_eq!(
                r.error.as_deref(),
                Some("no [hydra] table in the configuration")
            );
            assert!(r.finished_at.is_some());
        }
    }
);

db_test!(a_missed_tick_is_caught_up_once_at_start, |app| async move {
    let _ = buildfund_bin();
    // The job last ran three hours ago; every instance was down since.
    let now = Utc::now();
    let hour = now
        .with_minute(0)
        .unwrap()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    job_runs::ActiveModel {
        job: Set("hydra_pull".into()),
        scheduled_for: Set(hour - Duration::hours(3)),
        started_at: Set(hour - Duration::hours(3)),
        finished_at: Set(Some(hour - Duration::hours(3))),
        outcome: Set("ok".into()),
        error: Set(None),
        instance: Set("old".into()),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
    let config = every_second_config().replace(
        "hydra_pull = \"* * * * * *\"",
        "hydra_pull = \"0 0 * * * *\"",
    );
    let children = app.start_replicas(&config, 2);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    children.stop();
    let runs = runs(&app, "hydra_pull").await;
    let ticks: Vec<_> = runs.iter().map(|r| r.scheduled_for).collect();
    assert_eq!(
        ticks,
        vec![hour - Duration::hours(3), hour],
        "one catch-up run, for the latest due tick"
    );
});

db_test!(
    failures_and_panics_are_recorded_and_runs_do_not_overlap,
    |app| async move {
        let mut registry = Registry::default();
        registry.register("fails", |_, _| async {
            Err(anyhow::anyhow!("OpenCollective answered 500"))
        });
        registry.register("panics", |_, _| async { panic!("a bug in a job") });
        registry.register("slow", |_, _| async {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            Ok(Outcome::Done("slept".into()))
        });
        let a = Arc::new(Scheduler::new(
            app.db.clone(),
            app.config.clone(),
            registry.clone(),
        ));
        let b = Arc::new(Scheduler::new(
            app.db.clone(),
            app.config.clone(),
            registry.clone(),
        ));
        let t0 = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();

        a.run_tick("fails", t0, registry.get("fails").unwrap().clone())
            .await
            .unwrap();
        a.run_tick("panics", t0, registry.get("panics").unwrap().clone())
            .await
            .unwrap();
        let fails = &runs(&app, "fails").await[0];
        assert_eq!(
            (fails.outcome.as_str(), fails.error.as_deref()),
            ("failed", Some("OpenCollective answered 500"))
        );
        let panics = &runs(&app, "panics").await[0];
        assert_eq!(
            (panics.outcome.as_str(), panics.error.as_deref()),
            ("panicked", Some("a bug in a job"))
        );

        // The same tick claimed twice runs once; a later tick while the first still runs is skipped.
        let slow = registry.get("slow").unwrap().clone();
        let (first, same, later) = tokio::join!(
            a.run_tick("slow", t0, slow.clone()),
            b.run_tick("slow", t0, slow.clone()),
            async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                b.run_tick("slow", t0 + Duration::seconds(1), slow.clone())
                    .await
            }
        );
        assert_eq!(
            first.is_some() as u8 + same.is_some() as u8,
            1,
            "one claim of the tick wins"
        );
        assert!(later.is_some());
        let slow_runs = runs(&app, "slow").await;
        assert_eq!(slow_runs.len(), 2);
        assert_eq!(slow_runs[0].outcome, "ok");
        assert_eq!(slow_runs[1].outcome, "skipped");
        assert!(slow_runs[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("the previous run is still going on"));
    }
);

db_test!(admins_list_runs_and_start_one, |app| async move {
    let admin = app.token("admin").await;
    let run = app.run_job("hydra_pull", &admin).await;
    assert_eq!(run["outcome"], "skipped");
    assert_eq!(run["job"], "hydra_pull");

    let res = app.get_with_token("/api/v1/jobs", &admin).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["runs"][0]["job"], "hydra_pull");
    assert_eq!(body["schedule"]["hydra_pull"]["cron"], "0 */5 * * * *");

    let res = app
        .client
        .post(app.url("/api/v1/jobs/nope/run"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("no job \"nope\""));

    let ingest = app.token("ingest").await;
    let res = app.get_with_token("/api/v1/jobs", &ingest).await;
    assert_eq!(res.status(), 403);
});
