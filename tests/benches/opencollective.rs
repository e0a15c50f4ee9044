//! The OpenCollective sync of 100,000 transactions, of which 20,000 are paid expenses (every
//! fifth), served by a local stand-in of the GraphQL API over real HTTP on 127.0.0.1, into
//! PostgreSQL: wall time, and the process's peak memory (VmHWM, which includes the stand-in's
//! canned pages).
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p buildfund-tests --bench opencollective
//!
//! It creates a scratch database on that server (`buildfund_tests::database`), syncs once (everything new) and once again
//! (everything unchanged inside the overlap is re-read: here only the last day), prints the
//! figures and drops the database. `BENCH_TRANSACTIONS` changes the number of transactions.
//! The stand-in serializes every transaction once before the sync and answers a page by copying
//! its bytes (in one write), so the figures are the sync's own. It answers the OpenCollective
//! check's balance query from the canned lines' sum, so each sync ends with a check (drift 0).
use buildfund_jobs::config::Secrets;
use buildfund_jobs::sources::opencollective::{self, SyncOptions};
use buildfund_jobs::{db, Config};
use buildfund_tests::database::BenchDatabase;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The instant the syncs read up to: after every canned transaction.
fn sync_now() -> chrono::DateTime<chrono::Utc> {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

/// Transaction `i` and what it moves OpenCollective's balance by (net, host currency EUR).
fn transaction(i: usize) -> (Value, i64) {
    // One every 20 seconds from 2026-09-01: 100,000 span about 23 days.
    let at = chrono::DateTime::parse_from_rfc3339("2026-09-01T00:00:00Z").unwrap()
        + chrono::Duration::seconds(20 * i as i64);
    if i % 5 == 4 {
        return expense(i, at);
    }
    let gross = 500 + (i as i64 % 97) * 100;
    let project = i.is_multiple_of(5);
    let ours = if project {
        json!({"__typename": "Project", "slug": "cuda-project", "name": "CUDA project",
               "type": "PROJECT", "isIncognito": false,
               "parent": {"__typename": "Collective", "slug": "nixfund"}})
    } else {
        json!({"__typename": "Collective", "slug": "nixfund", "name": "Nix fund",
               "type": "COLLECTIVE", "isIncognito": false})
    };
    let t = json!({
        "__typename": "Credit", "id": format!("00000000-0000-4000-8000-{i:012}"),
        "kind": "CONTRIBUTION", "type": "CREDIT", "description": "Monthly contribution",
        "createdAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "isRefund": false, "refundTransaction": null,
        "amount": {"valueInCents": gross as f64, "currency": "EUR"},
        "amountInHostCurrency": {"valueInCents": gross as f64, "currency": "EUR"},
        "platformFee": {"valueInCents": 0.0, "currency": "EUR"},
        "hostFee": {"valueInCents": -(gross / 20) as f64, "currency": "EUR"},
        "paymentProcessorFee": {"valueInCents": -(25 + gross * 29 / 1000) as f64, "currency": "EUR"},
        "account": ours,
        "fromAccount": {"__typename": "Individual", "slug": format!("backer-{}", i % 5000),
                        "name": format!("Backer {}", i % 5000), "type": "INDIVIDUAL",
                        "isIncognito": i.is_multiple_of(50)},
        "toAccount": ours,
        "order": {"id": format!("order-{}", i % 5000), "tier": if i.is_multiple_of(3) { json!({"slug": "gpu-sponsor"}) } else { Value::Null }},
    });
    (t, gross - gross / 20 - (25 + gross * 29 / 1000))
}

/// A paid expense (an EXPENSE DEBIT with its linked expense) of the collective.
fn expense(i: usize, at: chrono::DateTime<chrono::FixedOffset>) -> (Value, i64) {
    let amount = 1000 + (i as i64 % 50) * 100;
    let fee = (i as i64 % 7) * 10;
    let ours = json!({"__typename": "Collective", "slug": "nixfund", "name": "Nix fund",
                      "type": "COLLECTIVE", "isIncognito": false});
    let payee = json!({"__typename": "Organization", "slug": format!("vendor-{}", i % 40),
                       "name": format!("Vendor {}", i % 40), "type": "ORGANIZATION",
                       "isIncognito": false});
    let t = json!({
        "__typename": "Debit", "id": format!("00000000-0000-4000-9000-{i:012}"),
        "kind": "EXPENSE", "type": "DEBIT", "description": "Expense",
        "createdAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "isRefund": false, "refundTransaction": null,
        "amount": {"valueInCents": -amount as f64, "currency": "EUR"},
        "amountInHostCurrency": {"valueInCents": -amount as f64, "currency": "EUR"},
        "platformFee": {"valueInCents": 0.0, "currency": "EUR"},
        "hostFee": null,
        "paymentProcessorFee": {"valueInCents": -fee as f64, "currency": "EUR"},
        "account": ours, "fromAccount": ours, "toAccount": payee, "order": null,
        "expense": {"id": format!("ex-{i}"), "type": "INVOICE", "description": format!("Invoice {i}"),
                    "incurredAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "tags": ["hosting", format!("build{:02}", i % 12)], "payee": payee},
    });
    (t, -amount - fee)
}

/// The canned transactions: each one's `createdAt` and its JSON text, serialized once, so the
/// stand-in answers a page by copying bytes and the benchmark measures the sync, not the
/// stand-in.
struct Canned {
    at: Vec<chrono::DateTime<chrono::FixedOffset>>,
    json: Vec<String>,
    /// What all of them move the balance by.
    net: i64,
}

/// A minimal HTTP/1.1 server answering the two sync queries from `txs` (sorted by createdAt).
async fn serve(listener: tokio::net::TcpListener, txs: Arc<Canned>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let txs = txs.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                let req: Value = serde_json::from_slice(&body).unwrap();
                let v = &req["variables"];
                let (offset, limit) = (
                    v["offset"].as_u64().unwrap_or(0) as usize,
                    v["limit"].as_u64().unwrap_or(0) as usize,
                );
                let out = if req["operationName"] == "CollectiveBalance" {
                    // Before ledger_start: nothing; after the canned lines: all of them.
                    format!(
                        r#"{{"data":{{"account":{{"__typename":"Collective","slug":"nixfund","stats":{{"balanceAt":{{"valueInCents":{},"currency":"EUR"}},"balanceAtStart":{{"valueInCents":0,"currency":"EUR"}}}}}}}}}}"#,
                        txs.net
                    )
                } else if req["operationName"] == "DonationTransactions" {
                    let from = v["dateFrom"].as_str().unwrap().to_string();
                    let from = chrono::DateTime::parse_from_rfc3339(&from).unwrap();
                    let start = txs.at.partition_point(|t| *t < from);
                    let rows = &txs.json[start..];
                    let page: Vec<&str> = rows
                        .iter()
                        .skip(offset)
                        .take(limit)
                        .map(String::as_str)
                        .collect();
                    format!(
                        r#"{{"data":{{"transactions":{{"totalCount":{},"nodes":[{}]}}}}}}"#,
                        rows.len(),
                        page.join(",")
                    )
                } else {
                    r#"{"data":{"orders":{"totalCount":0,"nodes":[]}}}"#.to_string()
                };
                let mut answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", out.len());
                answer.push_str(&out);
                if w.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Some(database) = BenchDatabase::create().await? else {
        eprintln!("set BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run this benchmark");
        return Ok(());
    };
    let n: usize = std::env::var("BENCH_TRANSACTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let (all, nets): (Vec<Value>, Vec<i64>) = (0..n).map(transaction).unzip();
    let txs = Arc::new(Canned {
        net: nets.iter().sum(),
        at: all
            .iter()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t["createdAt"].as_str().unwrap()).unwrap()
            })
            .collect(),
        json: all.iter().map(|t| t.to_string()).collect(),
    });
    drop(all);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/graphql/v2", listener.local_addr()?);
    tokio::spawn(serve(listener, txs));

    let url = &database.url;
    let text = format!(
        "ledger_start = \"2026-09-01\"\n[database]\nurl = \"{url}\"\n[opencollective]\nendpoint = \"{endpoint}\"\ncollective = \"nixfund\"\n\
         [[funds]]\nslug = \"general\"\ndefault = true\n[[funds]]\nslug = \"cuda\"\ntiers = [\"gpu-sponsor\"]\naccounts = [\"cuda-project\"]\n"
    );
    let config = Config::parse(&text, "bench")?;
    let conn = db::connect(&config).await?;
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now()).await?;
    let before = peak_memory_mib();

    let started = Instant::now();
    let first = opencollective::sync(
        &conn,
        &config,
        &Secrets::from_env(&config),
        SyncOptions::default(),
        sync_now(),
        |_| {},
    )
    .await?;
    let t1 = started.elapsed();
    let started = Instant::now();
    let second = opencollective::sync(
        &conn,
        &config,
        &Secrets::from_env(&config),
        SyncOptions::default(),
        sync_now(),
        |_| {},
    )
    .await?;
    let t2 = started.elapsed();
    let check = |r: &opencollective::SyncReport| {
        r.check.as_ref().map_or("none".to_string(), |c| {
            format!("{} (drift {:?})", c.status.as_str(), c.drift_cents)
        })
    };
    println!(
        "opencollective sync of {n} transactions into PostgreSQL: first {:.2} s ({} pages, {} donations and {} expenses inserted, {:.0} transactions/s, check {}), \
         second {:.2} s ({} re-read, {} + {} unchanged, check {}); peak memory {:.0} MiB (before the sync {:.0} MiB, canned pages included)",
        t1.as_secs_f64(), first.pages, first.stored.inserted, first.expenses.inserted, n as f64 / t1.as_secs_f64(), check(&first),
        t2.as_secs_f64(), second.records, second.stored.unchanged, second.expenses.unchanged, check(&second),
        peak_memory_mib(), before
    );
    conn.close().await?;
    database.drop().await?;
    Ok(())
}
