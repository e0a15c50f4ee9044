//! OpenCollective's webhook end to end, against the GraphQL stand-in, with the scheduled sync
//! disabled: one call brings a new donation to the funding page within seconds, a burst of 50
//! runs at most two syncs, and a wrong token (or an oversized body) changes nothing.
use buildfund_entity::job_runs;
use buildfund_jobs::calendar::Month;
use buildfund_tests::opencollective::{account, collective, tx, Behaviour, WEBHOOK_TOKEN};
use buildfund_tests::{db_test, TestApp, TestAppBuilder};
use chrono::{SecondsFormat, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The contributor of the donation the webhook announces.
const DONOR: &str = "Wanda Webhook";

/// How long the stand-in holds each first page: a sync takes a few seconds.
const STALL: Duration = Duration::from_secs(2);

/// Books from last month on, the sync never scheduled (only the webhook starts it), and the
/// stand-in holding one donation made a minute ago that no sync has read yet.
fn setup() -> TestAppBuilder {
    let config = format!(
        "currency = \"EUR\"\nledger_start = \"{}-01\"\n\n[schedule]\nopencollective_sync = \"\"\n",
        Month::of(Utc::now()).prev()
    );
    let at =
        (Utc::now() - chrono::Duration::seconds(60)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let donation = tx(
        "wh-1",
        &at,
        true,
        "CONTRIBUTION",
        collective(),
        account("Individual", "wanda", DONOR, false),
        (4200, "EUR"),
        (4200, Some(-210), Some(-130), "EUR"),
        None,
        None,
    );
    TestApp::builder(config).opencollective(Behaviour {
        transactions: vec![donation],
        slow_at_offset: Some((0, STALL)),
        ..Behaviour::default()
    })
}

/// An `order.processed` call as OpenCollective makes it (never read as data).
fn order_processed() -> Value {
    json!({
        "createdAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "id": 918273, "type": "order.processed", "CollectiveId": 4242,
        "data": {
            "order": {"id": 5150, "idV2": "or_8x2k", "publicId": "or_8x2k", "totalAmount": 4200,
                      "currency": "EUR", "interval": null, "description": "Thank you",
                      "quantity": 1, "FromCollectiveId": 77, "TierId": null},
            "fromCollective": {"id": 77, "slug": "wanda", "name": DONOR, "type": "USER"},
            "collective": {"id": 4242, "slug": "nixfund", "name": "Nix Fund", "type": "COLLECTIVE"},
            "firstPayment": true
        }
    })
}

async fn sync_runs(app: &TestApp) -> Vec<job_runs::Model> {
    job_runs::Entity::find()
        .filter(job_runs::Column::Job.eq("opencollective_sync"))
        .all(&app.db)
        .await
        .unwrap()
}

async fn page(app: &TestApp) -> String {
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Waits until no sync runs or waits: every recorded run finished and nothing new for 3 s.
async fn quiet(app: &TestApp) -> Vec<job_runs::Model> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = (usize::MAX, Instant::now());
    loop {
        let runs = sync_runs(app).await;
        let running = runs.iter().any(|r| r.finished_at.is_none());
        if runs.len() != seen.0 || running {
            seen = (runs.len(), Instant::now());
        } else if seen.1.elapsed() > Duration::from_secs(3) {
            return runs;
        }
        assert!(Instant::now() < deadline, "the syncs never ended: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

db_test!(
    one_webhook_brings_the_donation_to_the_funding_page,
    setup(),
    |app| async move {
        assert!(!page(&app).await.contains(DONOR));
        assert_eq!(
            app.opencollective().state().requests,
            0,
            "nothing syncs on its own"
        );

        let res = app
            .post_opencollective_webhook(WEBHOOK_TOKEN, &order_processed())
            .await;
        assert_eq!(res.status(), 202);
        // Answered at once: the sync has not had a single answer from the API yet.
        assert_eq!(app.opencollective().state().requests, 0);

        let sent = Instant::now();
        loop {
            if page(&app).await.contains(DONOR) {
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "the donation is not on the funding page 30 s after its webhook"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let runs = quiet(&app).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].outcome.as_str(), "ok", "{runs:?}");
        assert_eq!(app.opencollective().state().syncs, 1);
        let month = Month::of(Utc::now() - chrono::Duration::seconds(60)).to_string();
        let donations = app.get_donations(&month).await;
        assert!(donations.to_string().contains(DONOR), "{donations}");
    }
);

db_test!(
    a_burst_of_50_webhooks_runs_at_most_two_syncs,
    setup(),
    |app| async move {
        let first = app
            .post_opencollective_webhook(WEBHOOK_TOKEN, &order_processed())
            .await;
        assert_eq!(first.status(), 202);
        // The first sync is under way (held by the stand-in) when the others arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let burst: Vec<_> = (0..49)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    app.post_opencollective_webhook(WEBHOOK_TOKEN, &order_processed())
                        .await
                        .status()
                        .as_u16()
                })
            })
            .collect();
        for call in burst {
            assert_eq!(call.await.unwrap(), 202);
        }
        let runs = quiet(&app).await;
        let syncs = app.opencollective().state().syncs;
        assert!(
            (1..=2).contains(&runs.len()),
            "{} runs: {runs:?}",
            runs.len()
        );
        assert_eq!(syncs as usize, runs.len(), "every run read the API once");
        assert!(runs.iter().all(|r| r.outcome.as_str() == "ok"), "{runs:?}");
        assert!(page(&app).await.contains(DONOR));
    }
);

db_test!(a_wrong_token_changes_nothing, setup(), |app| async move {
    let unknown = app
        .client
        .post(app.url("/no/such/route"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(unknown, 404);
    let mut near = WEBHOOK_TOKEN.to_string();
    near.replace_range(..1, if near.starts_with('0') { "1" } else { "0" });
    let long = format!("{WEBHOOK_TOKEN}{}", "0".repeat(4000));
    for token in [near.as_str(), &WEBHOOK_TOKEN[..63], long.as_str(), "x"] {
        let res = app
            .post_opencollective_webhook(token, &order_processed())
            .await;
        assert_eq!(res.status(), 404, "token {token:.10}…");
        let body: Value = res.json().await.unwrap();
        assert!(!body.to_string().contains(WEBHOOK_TOKEN), "{body}");
    }
    // The right token with a body past the bound: refused, and no sync either.
    let huge = "x".repeat(65 * 1024);
    let res = app
        .client
        .post(app.url(&format!("/webhooks/opencollective/{WEBHOOK_TOKEN}")))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    tokio::time::sleep(STALL + Duration::from_secs(1)).await;
    let oc = app.opencollective().state().requests;
    assert_eq!(oc, 0, "the stand-in was asked {oc} times");
    assert!(sync_runs(&app).await.is_empty());
    assert!(!page(&app).await.contains(DONOR));
});
