//! OpenCollective's GraphQL API as the sync reads it: the typed queries (the ledger, the
//! recurring orders, the collective's balance), the client's
//! options, the HTTP client with its retries and the [`Pager`] that reads a query page by page.
use super::SourceError;
use crate::clock::Clock;
use crate::config::secrets::Missing;
use crate::config::{OpenCollectiveConfig, Secrets};
use chrono::Utc;
use graphql_client::{GraphQLQuery, Response};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The GraphQL `DateTime` scalar.
pub type DateTime = chrono::DateTime<Utc>;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "graphql/opencollective.schema.graphql",
    query_path = "graphql/donation_transactions.graphql",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone"
)]
pub struct DonationTransactions;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "graphql/opencollective.schema.graphql",
    query_path = "graphql/active_recurring_orders.graphql",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone"
)]
pub struct ActiveRecurringOrders;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "graphql/opencollective.schema.graphql",
    query_path = "graphql/collective_balance.graphql",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone"
)]
pub struct CollectiveBalance;

/// Transactions and orders asked for per request: the API's documented maximum.
pub const PAGE_SIZE: i64 = 1000;
/// How the client behaves; tests shorten the waits.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub page_size: i64,
    /// Tries per request (the first one included).
    pub max_attempts: u32,
    /// The first backoff; each later one doubles, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the sync (try again later).
    pub max_retry_after: Duration,
    /// Overrides `opencollective.timeout_seconds`.
    pub timeout: Option<Duration>,
    /// What "now" is when a `Retry-After` names an instant.
    pub clock: Clock,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_size: PAGE_SIZE,
            max_attempts: 5,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            timeout: None,
            clock: Clock::system(),
        }
    }
}

/// A request failure in words a user can act on: a timeout says so.
fn describe_request_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer before the timeout (opencollective.timeout_seconds)".to_string()
    } else if e.is_connect() {
        format!("cannot connect: {}", error_chain(e))
    } else {
        error_chain(e)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A GraphQL client for one endpoint, with timeouts, retries and the token header.
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<SecretString>,
    options: SyncOptions,
    retries: std::sync::atomic::AtomicU64,
}

/// The token from the variable named by `token_env`; none when no variable is named.
fn token(secrets: &Secrets) -> Result<Option<SecretString>, SourceError> {
    let Some(secret) = &secrets.opencollective_token else {
        return Ok(None);
    };
    let var = &secret.var;
    match secret.value() {
        Ok(t) => Ok(Some(SecretString::from(t.expose_secret().trim()))),
        Err(e) if e.why == Missing::Empty => Err(SourceError::TokenEmpty { var: var.clone() }),
        Err(e) if e.why == Missing::NotSet => Err(SourceError::TokenNotSet { var: var.clone() }),
        Err(e) => Err(e.into()),
    }
}

/// How long a 429 asks to wait at `now`: `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

impl Client {
    pub fn new(
        oc: &OpenCollectiveConfig,
        secrets: &Secrets,
        options: SyncOptions,
    ) -> Result<Client, SourceError> {
        let timeout = options
            .timeout
            .unwrap_or(Duration::from_secs(oc.timeout_seconds.max(1) as u64));
        let http = crate::http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("buildfund/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SourceError::HttpClient)?;
        Ok(Client {
            http,
            endpoint: oc.endpoint.clone(),
            token: token(secrets)?,
            options,
            retries: Default::default(),
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        crate::backoff::Backoff::new(self.options.backoff, self.options.max_backoff).delay(attempt)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one query, retrying what may pass on a second try.
    pub async fn query<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
        what: &str,
    ) -> Result<Q::ResponseData, SourceError> {
        let body = Q::build_query(variables);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.post(&self.endpoint).json(&body);
            if let Some(t) = &self.token {
                request = request.header("Personal-Token", t.expose_secret());
            }
            let last = attempt >= self.options.max_attempts;
            let failure = match request.send().await {
                Err(e) => describe_request_error(&e),
                Ok(res) => {
                    let status = res.status();
                    if status.is_success() {
                        // A cut-off or garbled body may be a passing fault: retried like one.
                        let decoded: Result<Response<Q::ResponseData>, String> =
                            match res.bytes().await {
                                Err(e) => Err(describe_request_error(&e)),
                                Ok(body) => serde_json::from_slice(&body).map_err(|e| {
                                    format!("the answer is not the expected JSON ({e})")
                                }),
                            };
                        let parsed = match decoded {
                            Ok(parsed) => parsed,
                            Err(failure) if last => {
                                return Err(SourceError::Unreadable {
                                    what: what.to_string(),
                                    attempts: attempt,
                                    failure,
                                })
                            }
                            Err(failure) => {
                                let wait = self.backoff(attempt);
                                tracing::warn!(attempt, wait_s = wait.as_secs_f64(), error = %failure, "OpenCollective answer unreadable; retrying");
                                self.retries
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                        };
                        if let Some(errors) = parsed.errors.filter(|e| !e.is_empty()) {
                            return Err(SourceError::GraphQl {
                                what: what.to_string(),
                                messages: errors.iter().map(|e| e.message.clone()).collect(),
                            });
                        }
                        return parsed.data.ok_or_else(|| SourceError::NoData {
                            what: what.to_string(),
                        });
                    }
                    if status.as_u16() == 429 {
                        let wait = retry_after(res.headers(), self.options.clock.now())
                            .unwrap_or(self.backoff(attempt));
                        if last || wait > self.options.max_retry_after {
                            return Err(SourceError::RateLimited {
                                what: what.to_string(),
                                attempts: attempt,
                                wait_seconds: wait.as_secs(),
                            });
                        }
                        tracing::warn!(
                            attempt,
                            wait_s = wait.as_secs_f64(),
                            "OpenCollective rate limit (429); waiting"
                        );
                        self.retries
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let text = res.text().await.unwrap_or_default();
                    let text: String = text.chars().take(300).collect();
                    if status.is_client_error() {
                        return Err(SourceError::Refused {
                            what: what.to_string(),
                            status,
                            body: text,
                        });
                    }
                    format!("HTTP {status}: {text}")
                }
            };
            if last {
                return Err(SourceError::Unanswered {
                    what: what.to_string(),
                    attempts: attempt,
                    failure,
                });
            }
            let wait = self.backoff(attempt);
            tracing::warn!(attempt, wait_s = wait.as_secs_f64(), error = %failure, "OpenCollective request failed; retrying");
            self.retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

/// A query read page by page with `limit` and `offset`, answering a `totalCount`.
pub trait Paged: GraphQLQuery {
    type Node;
    /// The page's total count and its nodes.
    fn page(data: Self::ResponseData) -> (Option<i64>, Vec<Self::Node>);
}

impl Paged for DonationTransactions {
    type Node = donation_transactions::DonationTransactionsTransactionsNodes;
    fn page(data: donation_transactions::ResponseData) -> (Option<i64>, Vec<Self::Node>) {
        let t = data.transactions;
        let nodes = t.nodes.unwrap_or_default().into_iter().flatten().collect();
        (t.total_count, nodes)
    }
}

impl Paged for ActiveRecurringOrders {
    type Node = active_recurring_orders::ActiveRecurringOrdersOrdersNodes;
    fn page(data: active_recurring_orders::ResponseData) -> (Option<i64>, Vec<Self::Node>) {
        let o = data.orders;
        let nodes = o.nodes.unwrap_or_default().into_iter().flatten().collect();
        (o.total_count, nodes)
    }
}

/// One page read by a [`Pager`].
pub struct Page<N> {
    /// From 1.
    pub number: u64,
    /// The total the API reports for the query.
    pub total: Option<i64>,
    pub nodes: Vec<N>,
}

/// Reads a [`Paged`] query page after page: the next offset is the nodes read so far, and the
/// last page is a short one or the one reaching the total.
pub struct Pager<'c, Q, F> {
    client: &'c Client,
    page_size: i64,
    /// The query's variables for `(limit, offset)`.
    variables: F,
    offset: i64,
    page: u64,
    done: bool,
    query: std::marker::PhantomData<Q>,
}

impl<'c, Q: Paged, F: Fn(i64, i64) -> Q::Variables> Pager<'c, Q, F> {
    pub fn new(client: &'c Client, page_size: i64, variables: F) -> Self {
        Pager {
            client,
            page_size,
            variables,
            offset: 0,
            page: 0,
            done: false,
            query: std::marker::PhantomData,
        }
    }

    /// The next page, or `None` after the last; `what` names page `n` in errors.
    pub async fn next(
        &mut self,
        what: impl Fn(u64) -> String,
    ) -> Result<Option<Page<Q::Node>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let number = self.page + 1;
        let data = self
            .client
            .query::<Q>((self.variables)(self.page_size, self.offset), &what(number))
            .await?;
        let (total, nodes) = Q::page(data);
        self.page = number;
        self.offset += nodes.len() as i64;
        self.done =
            (nodes.len() as i64) < self.page_size || total.is_some_and(|t| self.offset >= t);
        Ok(Some(Page {
            number,
            total,
            nodes,
        }))
    }
}
