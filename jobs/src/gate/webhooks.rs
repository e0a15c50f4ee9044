//! Signed webhooks (docs/src/donations.md, "Webhooks"): every gate state change is POSTed as JSON to each
//! `[[gate.webhooks]]` URL with `X-Buildfund-Event`, `X-Buildfund-Delivery` (the event id, the
//! same on retries and from every instance) and `X-Buildfund-Signature: sha256=<hex
//! HMAC-SHA256 of the body>` keyed by the secret in the variable `secret_env` names. Each is a
//! `gate_deliveries` row written with the change; an instance claims it with a lease and sends
//! it, retried [`WEBHOOK_ATTEMPTS`] times in all with a doubling delay.
use crate::clock::Clock;
use crate::config::{redact_url, Config, Secrets};
use crate::gate::record_note;
use crate::gate::store::{self, Delivery};
use buildfund_entity::gate_events::EventKind;
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{DatabaseConnection, DbErr};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Buildfund-Signature";
/// Delivery attempts per webhook and change, and the first delay (doubled each time).
pub const WEBHOOK_ATTEMPTS: u32 = 5;
pub const WEBHOOK_FIRST_DELAY: Duration = Duration::from_millis(500);

/// HMAC-SHA256 (RFC 2104) of `body` under `key`.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `X-Buildfund-Signature` value of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

/// How long an instance holds a delivery it claimed: longer than all its attempts take
/// ([`WEBHOOK_ATTEMPTS`] of at most 10 s each, with 7.5 s of delays between them).
pub const DELIVERY_LEASE_SECONDS: i64 = 120;

/// Claims each webhook delivery that is due (not delivered, not failed, not leased by a live
/// claim) and sends it in the background with its retries. A delivery's body was fixed when
/// its change was recorded and its `X-Buildfund-Delivery` is the change's event id, so a
/// delivery resent after a crash (its lease expired) is the same request from any instance.
/// After the last failed attempt it is `failed` and a `webhook_failed` event is recorded.
/// Claims and outcomes are dated by `clock`.
pub async fn deliver_pending(
    config: &Arc<Config>,
    secrets: &Arc<Secrets>,
    client: &reqwest::Client,
    db: &DatabaseConnection,
    holder: &str,
    clock: &Clock,
) -> Result<(), DbErr> {
    let now = clock.now();
    let until = now + chrono::Duration::seconds(DELIVERY_LEASE_SECONDS);
    for d in store::due_deliveries(db, now, 100).await? {
        let claimed = store::claim_delivery(db, d.id, holder, now, until).await?;
        if claimed {
            let (config, secrets, client, db, clock) = (
                config.clone(),
                secrets.clone(),
                client.clone(),
                db.clone(),
                clock.clone(),
            );
            let span = tracing::info_span!("webhook_delivery", delivery = d.id, event = d.event_id);
            tokio::spawn(async move {
                if let Err(e) = deliver(&config, &secrets, &client, &db, &clock, d).await {
                    tracing::warn!(error = %e, "cannot record a webhook delivery; its lease will expire and it is sent again");
                }
            }.instrument(span));
        }
    }
    Ok(())
}

/// Sends one claimed delivery with its retries and records the outcome.
async fn deliver(
    config: &Config,
    secrets: &Secrets,
    client: &reqwest::Client,
    db: &DatabaseConnection,
    clock: &Clock,
    d: Delivery,
) -> Result<(), DbErr> {
    let shown = redact_url(&d.url);
    let hook = usize::try_from(d.hook).ok();
    // A configured secret that is missing sends nothing rather than an unsigned body.
    let secret: Result<Option<SecretString>, String> =
        match hook.and_then(|i| config.gate.webhooks.get(i).map(|h| (i, h))) {
            Some((i, h)) if h.url == d.url => match secrets.webhook(i).map(|s| s.value()) {
                None => Ok(None),
                Some(Ok(s)) => Ok(Some(s.clone())),
                Some(Err(e)) => Err(e.to_string()),
            },
            _ => Err("the webhook is no longer configured".into()),
        };
    let mut attempts = d.attempts;
    let mut last_error = String::new();
    match secret {
        Err(e) => last_error = e,
        Ok(secret) => {
            let backoff = crate::backoff::Backoff::new(WEBHOOK_FIRST_DELAY, Duration::MAX);
            for attempt in 1..=WEBHOOK_ATTEMPTS {
                attempts += 1;
                let mut req = client
                    .post(&d.url)
                    .header("content-type", "application/json")
                    .header("X-Buildfund-Event", "gate.state_changed")
                    .header("X-Buildfund-Delivery", d.event_id.to_string())
                    .body(d.body.clone());
                if let Some(s) = &secret {
                    req = req.header(
                        SIGNATURE_HEADER,
                        signature(s.expose_secret(), d.body.as_bytes()),
                    );
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        tracing::info!(url = %shown, attempt, event = d.event_id, "webhook delivered");
                        store::delivered(db, d.id, attempts, clock.now()).await?;
                        return Ok(());
                    }
                    Ok(r) => last_error = format!("answered {}", r.status()),
                    Err(e) => last_error = e.without_url().to_string(),
                }
                tracing::warn!(url = %shown, attempt, error = %last_error, "webhook delivery failed");
                if attempt < WEBHOOK_ATTEMPTS {
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
            }
        }
    }
    tracing::error!(url = %shown, event = d.event_id, error = %last_error, "webhook not delivered");
    store::delivery_failed(db, d.id, attempts, &last_error, clock.now()).await?;
    let pool = serde_json::from_str::<serde_json::Value>(&d.body)
        .ok()
        .and_then(|b| b["pool"].as_str().map(str::to_string))
        .unwrap_or_default();
    record_note(
        db,
        clock.now(),
        &pool,
        EventKind::WebhookFailed,
        &format!(
            "webhook {shown} failed {WEBHOOK_ATTEMPTS} times for event {}: {last_error}",
            d.event_id
        ),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_6_a_key_longer_than_a_block() {
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_are_unchanged() {
        // Worked out independently (Python's hmac) and by the former hand-rolled HMAC.
        assert_eq!(
            signature("s3cret", br#"{"event":"gate.state_changed","id":1}"#),
            "sha256=f9f3104c018428514ae28d1385d8efc071d9687cbdce601fd409aaa0970f0bf0"
        );
        assert_eq!(
            hex::encode(hmac_sha256(&[b'k'; 64], b"exactly one block of key")),
            "baa93ea4ccc7062ed6870c5e7937dbd35ad7791df4e29df9addeb429ff491acf"
        );
        assert_eq!(
            signature("", b""),
            "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
    }
}
