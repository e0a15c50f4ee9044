//! Scheduled jobs across instances: each tick runs once, a missed tick is caught up once, and
//! failing or panicking jobs are recorded without taking anything down. The instances are
//! schedulers of their own (each with its instance name) on one database, driven by a manual
//! clock: each test sets the instants the ticks happen at.
use buildfund_entity::job_runs::{self, RunOutcome};
use buildfund_jobs::clock::Clock;
use buildfund_jobs::config::Secrets;
use buildfund_jobs::gate::Gate;
use buildfund_jobs::scheduler::{builtin_jobs, Outcome, Registry, Scheduler};
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Duration, Timelike, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Notify;

fn every_second_config() -> String {
    format!(
        "{}[schedule]\nhydra_pull = \"* * * * * *\"\nopencollective_sync = \"\"\ngate_refresh = \"\"\n\
         outbox_drain = \"\"\nmonthly_report = \"\"\n",
        buildfund_tests::MINIMAL_CONFIG
    )
}

fn instant(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// `n` instances named `instance0`, `instance1`, … with the built-in jobs, on `clock`.
fn instances(app: &TestApp, clock: &Clock, n: usize) -> Vec<Scheduler> {
    let gate = Arc::new(Gate::new(app.config.clone(), clock.clone()));
    let secrets = Arc::new(Secrets::from_env(&app.config));
    let registry = builtin_jobs(gate, secrets, clock.clone());
    (0..n)
        .map(|i| {
            Scheduler::new(
                app.db.clone(),
                app.config.clone(),
                registry.clone(),
                clock.clone(),
            )
            .with_instance(format!("instance{i}"))
        })
        .collect()
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
    every_second_config(),
    |app| async move {
        let t0 = instant("2026-03-10T12:00:00Z");
        let clock = Clock::manual(t0);
        let instances = instances(&app, &clock, 3);
        for s in &instances {
            assert!(s.start(clock.now()).await.is_empty(), "nothing to catch up");
        }
        // Ten seconds, each instance waking at each one.
        for second in 1..=10 {
            clock.advance(Duration::seconds(1));
            let claimed =
                futures_util::future::join_all(instances.iter().map(|s| s.tick(clock.now()))).await;
            let won: Vec<_> = claimed
                .iter()
                .flatten()
                .filter(|(_, _, id)| id.is_some())
                .collect();
            assert_eq!(won.len(), 1, "second {second}: one instance runs the tick");
            assert_eq!(won[0].1, t0 + Duration::seconds(second));
        }

        let runs = runs(&app, "hydra_pull").await;
        assert_eq!(runs.len(), 10, "ten seconds of ticks, got {}", runs.len());
        assert!(runs.len() >= 8);
        assert_eq!(runs[0].scheduled_for, t0 + Duration::seconds(1));
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
            assert_eq!(r.outcome.as_str(), "skipped", "{r:?}");
            assert_eq!(
                r.error.as_deref(),
                Some("no [hydra] table in the configuration")
            );
            assert!(r.finished_at.is_some());
        }
    }
);

db_test!(
    a_missed_tick_is_caught_up_once_at_start,
    every_second_config().replace(
        "hydra_pull = \"* * * * * *\"",
        "hydra_pull = \"0 0 * * * *\"",
    ),
    |app| async move {
        // The job last ran three hours ago; every instance was down since.
        let now = instant("2026-03-10T12:34:56Z");
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
            outcome: Set(RunOutcome::Ok),
            error: Set(None),
            instance: Set("old".into()),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
        // Two instances start at `now`, each finds the missed tick and runs it.
        let clock = Clock::manual(now);
        let instances = instances(&app, &clock, 2);
        let mut catch_up = Vec::new();
        for s in &instances {
            let due = s.start(clock.now()).await;
            assert_eq!(due.iter().map(|d| d.tick).collect::<Vec<_>>(), vec![hour]);
            catch_up.push(due);
        }
        futures_util::future::join_all(
            instances
                .iter()
                .zip(catch_up)
                .map(|(s, due)| s.run_all(due)),
        )
        .await;
        // Until the next hour nothing more is due.
        clock.advance(Duration::minutes(25));
        for s in &instances {
            assert!(s.tick(clock.now()).await.is_empty());
        }
        let runs = runs(&app, "hydra_pull").await;
        let ticks: Vec<_> = runs.iter().map(|r| r.scheduled_for).collect();
        assert_eq!(
            ticks,
            vec![hour - Duration::hours(3), hour],
            "one catch-up run, for the latest due tick"
        );
    }
);

db_test!(
    failures_and_panics_are_recorded_and_runs_do_not_overlap,
    |app| async move {
        let mut registry = Registry::default();
        registry.register("fails", |_, _| async {
            Err(anyhow::anyhow!("OpenCollective answered 500").into())
        });
        registry.register("panics", |_, _| async { panic!("a bug in a job") });
        // `slow` runs until the test releases it.
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (s, r) = (started.clone(), release.clone());
        registry.register("slow", move |_, _| {
            let (started, release) = (s.clone(), r.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok(Outcome::Done("slept".into()))
            }
        });
        let t0 = instant("2026-03-10T12:00:00Z");
        let clock = Clock::manual(t0);
        let scheduler = || {
            Arc::new(Scheduler::new(
                app.db.clone(),
                app.config.clone(),
                registry.clone(),
                clock.clone(),
            ))
        };
        let (a, b) = (scheduler(), scheduler());

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
                // Once the winner's run has started (it holds the lease) …
                started.notified().await;
                let later = b
                    .run_tick("slow", t0 + Duration::seconds(1), slow.clone())
                    .await;
                release.notify_one();
                later
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
        assert_eq!(slow_runs[0].outcome.as_str(), "ok");
        assert_eq!(slow_runs[1].outcome.as_str(), "skipped");
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
