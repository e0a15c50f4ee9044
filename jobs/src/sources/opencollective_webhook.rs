//! OpenCollective's webhooks, taken as a hint and nothing more. OpenCollective signs nothing:
//! anyone who knows the URL can post anything to it, so a payload is never read as data. An
//! accepted call (`POST /webhooks/opencollective/{token}`, the token being the secret value
//! of `opencollective.webhook_token_env`) only asks for an incremental sync soon, the same
//! sync `opencollective_sync` runs, which reads the ledger through the API.
//!
//! - [`WebhookToken`]: the URL's secret path segment, compared in constant time.
//! - [`SyncTrigger`]: one worker task per instance and a "waiting" flag (a
//!   [`tokio::sync::Notify`] holds at most one permit): however many calls arrive, at most one
//!   sync runs and one waits, and a call never waits for a sync. Across instances the sync
//!   runs under the job's lease (see [`crate::scheduler::run_triggered`]); a run that finds the
//!   lease taken elsewhere is tried again every [`BUSY_RETRY`], because the run in progress may
//!   have read the ledger before the donation the call announced.
use super::SourceError;
use crate::config::Secrets;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tracing::Instrument;

/// The shortest token accepted (`openssl rand -hex 32` gives 64 characters).
pub const MIN_TOKEN_BYTES: usize = 32;
/// The longest token accepted.
pub const MAX_TOKEN_BYTES: usize = 256;
/// The largest webhook body read (and dropped): OpenCollective's payloads are a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a triggered sync that found the job running elsewhere waits before trying again.
pub const BUSY_RETRY: Duration = Duration::from_secs(5);
/// How many times it tries again: two minutes in all, the lease's lifetime without renewal.
pub const BUSY_RETRIES: u32 = 24;

/// The webhook URL's secret path segment (only its SHA-256 is kept; never logged or shown).
#[derive(Clone)]
pub struct WebhookToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookToken(..)")
    }
}

impl WebhookToken {
    /// The token in the variable `opencollective.webhook_token_env` names; `Ok(None)` when
    /// the key is not set (no webhook), an error naming the variable when its value is missing
    /// or unfit for a URL path segment.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<WebhookToken>, SourceError> {
        let Some(secret) = &secrets.opencollective_webhook_token else {
            return Ok(None);
        };
        let value = secret.value()?.expose_secret();
        let var = &secret.var;
        if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&value.len()) {
            return Err(SourceError::WebhookTokenLength {
                var: var.clone(),
                min: MIN_TOKEN_BYTES,
                max: MAX_TOKEN_BYTES,
            });
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return Err(SourceError::WebhookTokenCharacters { var: var.clone() });
        }
        Ok(Some(WebhookToken {
            digest: Sha256::digest(value.as_bytes()).into(),
        }))
    }

    /// Whether `given` is the token. The SHA-256 digests are compared in constant time, so the
    /// time taken tells nothing of the token, its content or its length.
    pub fn matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(digest.ct_eq(&self.digest))
    }
}

/// What one run of the triggered work says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// It ran (or failed, and said so where it records its runs): nothing to try again.
    Done,
    /// The job was running elsewhere: try again after [`BUSY_RETRY`].
    Busy,
}

/// The coalescing trigger (see the module doc). Cloning gives another handle on the same
/// worker.
#[derive(Clone)]
pub struct SyncTrigger {
    waiting: Arc<Notify>,
}

impl SyncTrigger {
    /// Starts the worker (on the current tokio runtime) that calls `run` for requests.
    pub fn spawn<F, Fut>(run: F) -> SyncTrigger
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        SyncTrigger::spawn_with(run, BUSY_RETRY)
    }

    fn spawn_with<F, Fut>(run: F, busy_retry: Duration) -> SyncTrigger
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let waiting = Arc::new(Notify::new());
        let woken = waiting.clone();
        let worker = async move {
            loop {
                // The permit of a request made while a run goes on is kept: one run follows.
                woken.notified().await;
                // A failed sync is the run's `Err`, logged where it records its runs.
                for attempt in 0..=BUSY_RETRIES {
                    match run().await {
                        Attempt::Busy if attempt < BUSY_RETRIES => {
                            tokio::time::sleep(busy_retry).await
                        }
                        _ => break,
                    }
                }
            }
        }
        .instrument(tracing::info_span!(
            "sync_trigger",
            source = "opencollective"
        ));
        tokio::spawn(worker);
        SyncTrigger { waiting }
    }

    /// Asks for a run soon and returns at once. Requests made before the next run starts are
    /// one request.
    pub fn request(&self) {
        self.waiting.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(delay: Duration, busy_first: u32) -> (Arc<AtomicU32>, SyncTrigger) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let trigger = SyncTrigger::spawn_with(
            move || {
                let c = c.clone();
                async move {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    if n < busy_first {
                        Attempt::Busy
                    } else {
                        Attempt::Done
                    }
                }
            },
            Duration::from_millis(10),
        );
        (calls, trigger)
    }

    /// Waits until `calls` reaches `n` (a generous deadline for a loaded machine; the test
    /// waits for the worker to act, not for time to pass), and returns the count.
    async fn until(calls: &AtomicU32, n: u32) -> u32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while calls.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_burst_runs_once_now_and_once_after() {
        let (calls, trigger) = counting(Duration::from_millis(200), 0);
        trigger.request();
        // The first run has started (it takes 200 ms): the burst comes while it goes on.
        assert_eq!(until(&calls, 1).await, 1);
        for _ in 0..49 {
            trigger.request();
        }
        assert_eq!(until(&calls, 2).await, 2, "one running, one waiting");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the burst made one run");
        // Idle again: a later request runs again.
        trigger.request();
        assert_eq!(until(&calls, 3).await, 3);
    }

    #[tokio::test]
    async fn requests_before_the_worker_wakes_are_one() {
        let (calls, trigger) = counting(Duration::from_millis(100), 0);
        for _ in 0..50 {
            trigger.request();
        }
        assert!(until(&calls, 1).await >= 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = calls.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} runs");
    }

    #[tokio::test]
    async fn a_busy_run_is_tried_again_until_it_runs() {
        let (calls, trigger) = counting(Duration::ZERO, 2);
        trigger.request();
        assert_eq!(until(&calls, 3).await, 3, "busy, busy, done");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "done: no fourth run");
    }

    #[test]
    fn an_unfit_token_is_refused_naming_its_variable_not_its_value() {
        let secrets = |var: &str, value: &str| {
            std::env::set_var(var, value);
            let c = crate::Config::parse(
                &format!(
                    "ledger_start = \"2026-01-01\"\n[opencollective]\ncollective = \"c\"\nwebhook_token_env = \"{var}\"\n"
                ),
                "t",
            )
            .unwrap();
            Secrets::from_env(&c)
        };
        let short = secrets("BF_UNIT_WEBHOOK_SHORT", "tooshort");
        let e = WebhookToken::from_secrets(&short).unwrap_err().to_string();
        assert!(
            e.contains("BF_UNIT_WEBHOOK_SHORT") && !e.contains("tooshort"),
            "{e}"
        );
        let slashed = secrets("BF_UNIT_WEBHOOK_SLASH", &format!("{}/x", "a".repeat(40)));
        let e = WebhookToken::from_secrets(&slashed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("letters, digits"), "{e}");
        let good = secrets("BF_UNIT_WEBHOOK_GOOD", &"ab01".repeat(16));
        let token = WebhookToken::from_secrets(&good).unwrap().unwrap();
        assert!(token.matches(&"ab01".repeat(16)));
    }

    #[test]
    fn the_token_is_checked_whole() {
        let token = WebhookToken {
            digest: Sha256::digest(b"0123456789abcdef0123456789abcdef").into(),
        };
        assert!(token.matches("0123456789abcdef0123456789abcdef"));
        assert!(!token.matches("0123456789abcdef0123456789abcde"));
        assert!(!token.matches("0123456789abcdef0123456789abcdef0"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("0123"));
    }
}
