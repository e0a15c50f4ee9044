//! A stand-in of OpenCollective's GraphQL API v2 over real HTTP: canned transactions and
//! recurring orders served page by page, with faults on demand (an error page, a 500, a 429, a
//! slow answer, a cut-off body), recording what it saw; the collective's balance
//! (`account { stats { balance(dateTo:, includeChildren: true) } }`) computed from every
//! transaction it holds, listed or hidden; and the shapes of the API's accounts, transactions
//! and expenses ([`account`], [`tx`], [`expense_tx`]) to can them with.
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The collective the stand-in serves; the builder configures `[opencollective]` with it.
pub const COLLECTIVE: &str = "nixfund";
/// The environment variable `[opencollective] token_env` names.
pub const TOKEN_ENV: &str = "BUILDFUND_TEST_OC_TOKEN";
/// The personal token the tests put in `TOKEN_ENV`.
pub const TOKEN: &str = "test-personal-token";
/// The environment variable `[opencollective] webhook_token_env` names.
pub const WEBHOOK_TOKEN_ENV: &str = "BUILDFUND_TEST_OC_WEBHOOK_TOKEN";
/// The webhook token in `WEBHOOK_TOKEN_ENV` (64 hex digits, as `openssl rand -hex 32` gives).
pub const WEBHOOK_TOKEN: &str = "5f1c0a9e7b3d42c8a6e0f9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b";

/// What the stand-in does, and what it saw.
#[derive(Default)]
pub struct Behaviour {
    pub transactions: Vec<Value>,
    /// Transactions left out of the listing but counted in the balance (a missed line).
    pub hidden: Vec<Value>,
    pub orders: Vec<Value>,
    /// The collective's balance before its first transaction, in `balance_currency` cents.
    pub opening_balance_cents: i64,
    /// The currency of the collective (and of its balance); default EUR. Host amounts in
    /// another currency are converted at 0.90 a unit (the tests' `[rates] USD`), each rounded
    /// half away from zero.
    pub balance_currency: Option<String>,
    /// `(dateTo, ledgerStart)` of every balance request.
    pub balance_requests: Vec<(String, String)>,
    /// Answer the request for this offset with a GraphQL error (HTTP 200), every time.
    pub error_at_offset: Option<i64>,
    /// Answer the next request for this offset with HTTP 500, once.
    pub server_error_at_offset: Option<i64>,
    /// Answer the next request for this offset with 429 and `Retry-After: 1`, once.
    pub rate_limit_at_offset: Option<i64>,
    /// Answer requests for this offset only after this long, every time (past the timeout).
    pub slow_at_offset: Option<(i64, Duration)>,
    /// Answer requests for this offset with a cut-off JSON body (HTTP 200), every time.
    pub malformed_at_offset: Option<i64>,
    /// The newest `createdAt` of any transaction served in a good answer.
    pub served_until: Option<String>,
    /// Syncs seen: requests for the first page (offset 0) of `DonationTransactions`.
    pub syncs: u64,
    pub requests: u64,
    pub tokens: Vec<Option<String>>,
}

pub struct OpenCollective {
    url: String,
    state: Arc<Mutex<Behaviour>>,
    handle: actix_web::dev::ServerHandle,
}

async fn graphql(
    req: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<Arc<Mutex<Behaviour>>>,
) -> HttpResponse {
    let stall = {
        let s = state.lock().unwrap();
        match s.slow_at_offset {
            Some((offset, wait)) if body["variables"]["offset"].as_i64() == Some(offset) => {
                Some(wait)
            }
            _ => None,
        }
    };
    if let Some(wait) = stall {
        tokio::time::sleep(wait).await;
    }
    let mut s = state.lock().unwrap();
    s.requests += 1;
    let token = req
        .headers()
        .get("Personal-Token")
        .map(|v| v.to_str().unwrap().to_string());
    s.tokens.push(token);
    let vars = &body["variables"];
    let offset = vars["offset"].as_i64().unwrap_or(0);
    let limit = vars["limit"].as_i64().unwrap_or(0);
    assert!(limit <= 1000, "the API's maximum page size is 1000");
    match body["operationName"].as_str().unwrap() {
        "DonationTransactions" => {
            if offset == 0 {
                s.syncs += 1;
            }
            assert!(body["query"]
                .as_str()
                .unwrap()
                .contains("includeChildrenTransactions: true"));
            if s.rate_limit_at_offset == Some(offset) {
                s.rate_limit_at_offset = None;
                return HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", "1"))
                    .json(json!({"error": {"message": "Rate limit exceeded. Try again in a minute."}}));
            }
            if s.server_error_at_offset == Some(offset) {
                s.server_error_at_offset = None;
                return HttpResponse::InternalServerError().body("upstream timeout");
            }
            if s.malformed_at_offset == Some(offset) {
                return HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"{"data": {"transactions": {"totalCount": 11, "nodes": [{"id": "#);
            }
            if s.error_at_offset == Some(offset) {
                return HttpResponse::Ok().json(json!({
                    "errors": [{"message": "Something went wrong on our side (test error page)"}],
                    "data": null
                }));
            }
            let from = vars["dateFrom"].as_str().unwrap().to_string();
            let from = chrono::DateTime::parse_from_rfc3339(&from).unwrap();
            let mut rows: Vec<&Value> = s
                .transactions
                .iter()
                .filter(|t| {
                    chrono::DateTime::parse_from_rfc3339(t["createdAt"].as_str().unwrap()).unwrap()
                        >= from
                })
                .collect();
            rows.sort_by_key(|t| t["createdAt"].as_str().unwrap().to_string());
            let total = rows.len() as i64;
            let page: Vec<&Value> = rows
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            let newest = page
                .iter()
                .filter_map(|t| t["createdAt"].as_str())
                .max()
                .map(String::from);
            let answer = json!({"data": {"transactions": {"totalCount": total, "nodes": page}}});
            if newest > s.served_until {
                s.served_until = newest;
            }
            HttpResponse::Ok().json(answer)
        }
        "CollectiveBalance" => {
            assert!(body["query"]
                .as_str()
                .unwrap()
                .contains("includeChildren: true"));
            assert_eq!(vars["slug"], COLLECTIVE);
            let to = vars["dateTo"].as_str().unwrap().to_string();
            let start = vars["ledgerStart"].as_str().unwrap().to_string();
            s.balance_requests.push((to.clone(), start.clone()));
            let currency = s.balance_currency.clone().unwrap_or_else(|| "EUR".into());
            let at = balance_before(&s, &to, &currency);
            let at_start = balance_before(&s, &start, &currency);
            HttpResponse::Ok().json(json!({"data": {"account": {
                "__typename": "Collective", "slug": COLLECTIVE,
                "stats": {"balanceAt": amount(at, &currency),
                          "balanceAtStart": amount(at_start, &currency)}}}}))
        }
        "ActiveRecurringOrders" => {
            let page: Vec<&Value> = s
                .orders
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            HttpResponse::Ok()
                .json(json!({"data": {"orders": {"totalCount": s.orders.len(), "nodes": page}}}))
        }
        other => HttpResponse::BadRequest()
            .json(json!({"errors": [{"message": format!("unknown operation {other}")}]})),
    }
}

impl OpenCollective {
    /// Starts the stand-in and puts [`TOKEN`] and [`WEBHOOK_TOKEN`] in the environment
    /// variables its [`config`](OpenCollective::config) names.
    pub async fn start(behaviour: Behaviour) -> OpenCollective {
        std::env::set_var(TOKEN_ENV, TOKEN);
        std::env::set_var(WEBHOOK_TOKEN_ENV, WEBHOOK_TOKEN);
        let state = Arc::new(Mutex::new(behaviour));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/graphql/v2", web::post().to(graphql))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        OpenCollective {
            url: format!("http://127.0.0.1:{port}/graphql/v2"),
            state,
            handle,
        }
    }

    /// The endpoint, `http://127.0.0.1:PORT/graphql/v2`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the stand-in does (to change it between syncs) and what it saw.
    pub fn state(&self) -> MutexGuard<'_, Behaviour> {
        self.state.lock().unwrap()
    }

    /// The `[opencollective]` table pointing at this stand-in.
    pub fn config(&self) -> String {
        format!(
            "\n[opencollective]\nendpoint = \"{}\"\ncollective = \"{COLLECTIVE}\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_token_env = \"{WEBHOOK_TOKEN_ENV}\"\noverlap_seconds = 86400\n",
            self.url
        )
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

pub fn account(typename: &str, slug: &str, name: &str, incognito: bool) -> Value {
    let kind = match typename {
        "Individual" => "INDIVIDUAL",
        "Organization" => "ORGANIZATION",
        "Project" => "PROJECT",
        _ => "COLLECTIVE",
    };
    let mut a = json!({"__typename": typename, "slug": slug, "name": name, "type": kind,
                       "isIncognito": incognito});
    if typename == "Project" || typename == "Event" {
        a["parent"] = json!({"__typename": "Collective", "slug": COLLECTIVE});
    }
    a
}

pub fn collective() -> Value {
    account("Collective", COLLECTIVE, "Nix Fund", false)
}

pub fn amount(cents: i64, currency: &str) -> Value {
    json!({"valueInCents": cents as f64, "currency": currency})
}

/// A transaction as the API returns it. `host` = (gross, host fee, processor fee, currency) in
/// host currency, fees negative as the API gives them.
#[allow(clippy::too_many_arguments)]
pub fn tx(
    id: &str,
    at: &str,
    credit: bool,
    kind: &str,
    ours: Value,
    other: Value,
    original: (i64, &str),
    host: (i64, Option<i64>, Option<i64>, &str),
    tier: Option<&str>,
    refund_of: Option<&str>,
) -> Value {
    let (from, to) = if credit {
        (other, ours.clone())
    } else {
        (ours.clone(), other)
    };
    json!({
        "__typename": if credit { "Credit" } else { "Debit" },
        "id": id,
        "kind": kind,
        "type": if credit { "CREDIT" } else { "DEBIT" },
        "description": format!("transaction {id}"),
        "createdAt": at,
        "isRefund": refund_of.is_some(),
        "refundTransaction": refund_of.map(|r| json!({"__typename": "Credit", "id": r})),
        "amount": amount(original.0, original.1),
        "amountInHostCurrency": amount(host.0, host.3),
        "platformFee": amount(0, host.3),
        "hostFee": host.1.map(|c| amount(c, host.3)),
        "paymentProcessorFee": host.2.map(|c| amount(c, host.3)),
        "account": {"__typename": ours["__typename"], "slug": ours["slug"]},
        "fromAccount": from,
        "toAccount": to,
        "order": tier.map(|t| json!({"id": format!("order-{id}"), "tier": {"slug": t}})),
    })
}

/// The collective's (and its projects') balance before `date_to`: the opening balance plus the
/// net in host currency (amount plus the negative fee fields) of every transaction held, listed
/// or hidden, on the collective or a project, converted into `currency` when the host currency
/// differs (0.90 a unit, half away from zero).
fn balance_before(s: &Behaviour, date_to: &str, currency: &str) -> i64 {
    let to = chrono::DateTime::parse_from_rfc3339(date_to).unwrap();
    let cents = |v: &Value| v["valueInCents"].as_f64().unwrap_or(0.0).round() as i64;
    let mut total = s.opening_balance_cents;
    for t in s.transactions.iter().chain(s.hidden.iter()) {
        let at = chrono::DateTime::parse_from_rfc3339(t["createdAt"].as_str().unwrap()).unwrap();
        let ours = t["account"]["slug"] == COLLECTIVE
            || matches!(
                t["account"]["__typename"].as_str(),
                Some("Project" | "Event")
            );
        if at >= to || !ours {
            continue;
        }
        let host = &t["amountInHostCurrency"];
        let mut net = cents(host);
        for fee in ["platformFee", "hostFee", "paymentProcessorFee"] {
            if !t[fee].is_null() {
                net += cents(&t[fee]);
            }
        }
        if host["currency"].as_str() != Some(currency) {
            let converted = (net as f64 * 0.90).abs().round() * (net as f64).signum();
            net = converted as i64;
        }
        total += net;
    }
    total
}

/// A linked expense as the API returns it (`payee` an account, see [`account`]).
pub fn expense(
    id: &str,
    tags: &[&str],
    payee: Value,
    incurred_at: &str,
    description: &str,
) -> Value {
    json!({"id": id, "type": "INVOICE", "description": description, "incurredAt": incurred_at,
           "tags": tags, "payee": payee})
}

/// An `EXPENSE` transaction: a payment (a DEBIT on `ours` to the expense's payee) or, with
/// `reversal_of`, its reversal (a CREDIT back to `ours`, `isRefund`). `host` = (amount in host
/// currency, processor fee, currency), signed as the API gives them (a payment and its fee
/// negative); `original` the amount in the expense's currency, signed likewise.
pub fn expense_tx(
    id: &str,
    at: &str,
    ours: Value,
    expense: Value,
    original: (i64, &str),
    host: (i64, Option<i64>, &str),
    reversal_of: Option<&str>,
) -> Value {
    let payee = expense["payee"].clone();
    let credit = reversal_of.is_some();
    let mut t = tx(
        id,
        at,
        credit,
        "EXPENSE",
        ours,
        payee,
        original,
        (host.0, None, host.1, host.2),
        None,
        reversal_of,
    );
    t["expense"] = expense;
    t["description"] = json!(format!("expense transaction {id}"));
    t
}
