//! The monthly sponsor email end to end, against a real SMTP server over TCP (tests/src/smtp.rs):
//! the report's parts, headers and figures (equal to `/api/v1/funds` and `/api/v1/costs`),
//! exactly-once sends through the outbox (a second send, an SMTP outage mid-send, permanent
//! refusals), double opt-in and unsubscribe, the admin API and the CLI.
use buildfund_entity::gate_events::EventKind;
use buildfund_entity::{email_outbox, gate_events, subscribers};
use buildfund_jobs::config::Secrets;
use buildfund_jobs::email::subscriptions::{self, SubscriberEmail};
use buildfund_jobs::email::{links, EmailKey};
use buildfund_tests::smtp::Received;
use buildfund_tests::{buildfund_bin, db_test, TestApp, TestAppBuilder};
use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{json, Value};
use std::time::Duration;

const BOOKS: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"
idle = "separate"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"
accounts = ["nix-cuda"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "800.00"

[[machines]]
name = "build03"
slots = 2
monthly = "300.00"
invoice_tags = ["hosting-build03"]

[[machines]]
name = "gpu01"
metered = "2.40"
"#;

/// An app with a local SMTP server (`app.smtp()`) and `[smtp]` pointing at it.
fn with_smtp(books: &str) -> TestAppBuilder {
    TestApp::builder(books).smtp()
}

fn t(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn cents(c: i64) -> String {
    buildfund_jobs::money::format_cents(c)
}

async fn seed_books(app: &TestApp) {
    let steps = [
        json!({"build": 1, "step": 1, "project": "nixpkgs", "jobset": "cuda", "machine": "build03",
               "start": t("2026-10-05T00:00:00Z"), "stop": t("2026-10-05T10:00:00Z")}),
        json!({"build": 2, "step": 1, "project": "nixpkgs", "jobset": "trunk", "machine": "build03",
               "start": t("2026-10-12T00:00:00Z"), "stop": t("2026-10-12T05:00:00Z")}),
        json!({"build": 3, "step": 1, "project": "nixpkgs", "jobset": "cuda-tests", "machine": "gpu01",
               "start": t("2026-10-20T00:00:00Z"), "stop": t("2026-10-20T02:30:00Z")}),
    ];
    app.ingest_steps(&steps).await;
    let admin = app.token("admin").await;
    for (key, name, account, amount, fees) in [
        ("d1", "<script>alert(1)</script>", "nix-cuda", 12_345, 617),
        ("d2", "Ada & Co", "general", 5_000, 0),
    ] {
        let res = app
            .post_donation(
                Some(&admin),
                &json!({"idempotency_key": key, "occurred_at": "2026-10-15T00:00:00Z",
                          "account": account, "contributor_name": name,
                          "amount_cents": amount, "fees_cents": fees, "currency": "EUR"}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
}

async fn add_confirmed(app: &TestApp, emails: &[&str]) {
    for e in emails {
        let email = SubscriberEmail::parse(e).unwrap();
        subscriptions::add(&app.db, &email, true, Utc::now())
            .await
            .unwrap();
    }
}

/// Parsed parts of a received message.
struct Parsed {
    to: String,
    content_type: String,
    text: String,
    html: String,
    headers: Vec<(String, String)>,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(m: &Received) -> Parsed {
    let msg = MessageParser::default()
        .parse(&m.data)
        .expect("a parsable message");
    let ct = msg.content_type().expect("a content type");
    let content_type = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
    // Raw header values, unfolded.
    let raw = String::from_utf8_lossy(&m.data).into_owned();
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let headers = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Parsed {
        to: m.to.join(","),
        content_type,
        text: msg.body_text(0).expect("a text part").into_owned(),
        html: msg.body_html(0).expect("an HTML part").into_owned(),
        headers,
    }
}

/// The path and query of the first link to `path` in `text`, to request from the test app.
/// `report send --month 2026-10` as a second sender once a killed sender's claims have run
/// out (its lease over): `(messages created, the drain's report)`.
async fn send_after_the_lease(app: &TestApp) -> (u64, buildfund_jobs::email::outbox::DrainReport) {
    use buildfund_jobs::clock::Clock;
    use buildfund_jobs::email::outbox::{self, DrainOptions};
    let after_lease = Clock::manual(
        Utc::now() + buildfund_jobs::email::queue::LEASE + chrono::Duration::seconds(1),
    );
    outbox::send_month(
        &app.db,
        &app.config,
        &Secrets::from_env(&app.config),
        buildfund_jobs::calendar::Month::parse("2026-10").unwrap(),
        DrainOptions {
            clock: after_lease,
            ..DrainOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The recipients of `messages`, sorted (one entry a message).
fn recipients(messages: &[Received]) -> Vec<String> {
    let mut to: Vec<String> = messages.iter().map(|m| m.to.join(",")).collect();
    to.sort();
    to
}

/// Each received message as (its recipients, its Message-ID), sorted.
fn recipients_and_ids(messages: &[Received]) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m.to.join(","),
                parse(m).header("Message-ID").unwrap().to_string(),
            )
        })
        .collect();
    ids.sort();
    ids
}

fn link(text: &str, path: &str) -> String {
    let start = text
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in:\n{text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '>' || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_string()
}

db_test!(
    the_report_has_both_parts_the_headers_and_the_api_figures,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        seed_books(&app).await;
        // build03's October invoice (arrears: dated November), 1.00 over the model; a domain
        // fee of the general fund in October, its payee hostile.
        let admin = app.token("admin").await;
        for body in [
            json!({"idempotency_key": "inv-oct", "paid_at": "2026-11-03T10:00:00Z",
                   "incurred_at": "2026-11-02", "payee": "Hosting GmbH",
                   "tags": ["hosting-build03"], "amount_cents": 30_100, "fees_cents": 50}),
            json!({"idempotency_key": "dns-oct", "paid_at": "2026-10-10T10:00:00Z",
                   "incurred_at": "2026-10-10", "payee": "<script>alert(5)</script>",
                   "tags": ["domain"], "description": "Domain fee", "amount_cents": 1_200}),
        ] {
            let (status, answer) = app.post_json("/api/v1/expenses", &admin, body).await;
            assert_eq!(status, 201, "{answer}");
        }
        for (kind, reason) in [
            (EventKind::Pause, "fan replacement on gpu01"),
            (
                EventKind::WebhookFailed,
                "webhook https://hooks.example.org/s3cr3t failed after 5 tries: 500",
            ),
        ] {
            gate_events::ActiveModel {
                at: Set(DateTime::parse_from_rfc3339("2026-10-20T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)),
                pool: Set("cuda".into()),
                kind: Set(kind),
                from_state: Set(None),
                to_state: Set(None),
                actor: Set(Some("ops".into())),
                reason: Set(reason.into()),
                until: Set(None),
                details: Set(None),
                ..Default::default()
            }
            .insert(&app.db)
            .await
            .unwrap();
        }
        add_confirmed(&app, &["ada@example.org", "bob@example.org"]).await;
        let out = app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert!(out.contains("2 messages queued now; 2 sent"), "{out}");
        let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
        let to = recipients(&messages);
        assert_eq!(to, ["ada@example.org", "bob@example.org"]);

        let funds: Value = app
            .get("/api/v1/funds?month=2026-10")
            .await
            .json()
            .await
            .unwrap();
        let costs: Value = app
            .get("/api/v1/costs?month=2026-10")
            .await
            .json()
            .await
            .unwrap();
        let lines = costs["lines"].as_array().unwrap();
        let recon: Value = app
            .get("/api/v1/reconciliation?month=2026-10")
            .await
            .json()
            .await
            .unwrap();
        let machines = recon["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 2, "{recon}");
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        for m in &messages {
            let p = parse(m);
            assert_eq!(p.content_type, "multipart/alternative");
            // RFC 8058 one-click unsubscribe, with this subscriber's own link.
            let unsubscribe = p.header("List-Unsubscribe").expect("List-Unsubscribe");
            assert!(
                unsubscribe.starts_with("<http") && unsubscribe.contains("/unsubscribe?token=u."),
                "{unsubscribe}"
            );
            assert_eq!(
                p.header("List-Unsubscribe-Post"),
                Some("List-Unsubscribe=One-Click")
            );
            assert!(p.text.contains(&link(unsubscribe, "/unsubscribe")));
            // The Message-ID the outbox recorded with the server's acknowledgement.
            let row = rows.iter().find(|r| r.email == p.to).unwrap();
            assert_eq!(row.status, "sent");
            assert_eq!(p.header("Message-ID"), row.message_id.as_deref());
            assert!(
                row.smtp_response.as_deref().unwrap().starts_with("250 "),
                "{row:?}"
            );
            assert!(row.sent_at.is_some());

            // Every fund's figures, as /api/v1/funds gives them.
            for f in funds["funds"].as_array().unwrap() {
                let c = |k: &str| cents(f[k].as_i64().unwrap());
                let expected = format!(
                    "- {}: raised {}, fees {}, net {}, spent {}, balance {}",
                    f["name"].as_str().unwrap(),
                    c("gross_cents"),
                    c("fees_cents"),
                    c("net_cents"),
                    c("spent_cents"),
                    c("balance_cents")
                );
                assert!(
                    p.text.contains(&expected),
                    "missing {expected:?} in\n{}",
                    p.text
                );
                for k in ["gross_cents", "net_cents", "spent_cents", "balance_cents"] {
                    assert!(
                        p.html.contains(&format!(">{}<", c(k))),
                        "HTML lacks {k} of {}",
                        f["slug"]
                    );
                }
            }
            // Spent and idle, and each machine's cost, from /api/v1/costs' lines.
            let total = costs["total_cents"].as_i64().unwrap();
            assert!(total > 0);
            assert!(
                p.text.contains(&format!("Spent:   {} EUR", cents(total))),
                "{}",
                p.text
            );
            let idle: i64 = lines
                .iter()
                .filter(|l| l["idle"] == true)
                .map(|l| l["cost_cents"].as_i64().unwrap())
                .sum();
            assert!(idle > 0);
            assert!(p
                .text
                .contains(&format!("of which idle machine time {}", cents(idle))));
            for machine in ["build03", "gpu01"] {
                let sum: i64 = lines
                    .iter()
                    .filter(|l| l["machine"] == machine)
                    .map(|l| l["cost_cents"].as_i64().unwrap())
                    .sum();
                assert!(
                    p.text.contains(&format!("- {machine}: {} (", cents(sum))),
                    "{machine} {sum}\n{}",
                    p.text
                );
            }
            // Cash beside the books' balance, and each machine's invoices against the model,
            // as /api/v1/reconciliation gives them.
            let c = |v: &Value| cents(v.as_i64().unwrap());
            assert!(
                p.text
                    .contains(&format!("Cash:    {} EUR", c(&recon["cash_cents"]))),
                "{}",
                p.text
            );
            assert!(p.text.contains("not invoiced yet"), "{}", p.text);
            for m in machines {
                let status = match m["status"].as_str().unwrap() {
                    "not_billed" => "not billed",
                    "open" => "month not over",
                    s => s,
                };
                let expected = format!(
                    "- {}: modeled {}, billed {}, difference {}: {status}",
                    m["machine"].as_str().unwrap(),
                    c(&m["modeled_cents"]),
                    c(&m["billed_cents"]),
                    c(&m["difference_cents"])
                );
                assert!(
                    p.text.contains(&expected),
                    "missing {expected:?} in\n{}",
                    p.text
                );
                for k in ["modeled_cents", "billed_cents", "difference_cents"] {
                    assert!(
                        p.html.contains(&format!(">{}<", c(&m[k]))),
                        "HTML lacks {k}"
                    );
                }
            }
            let statuses: Vec<&str> = machines
                .iter()
                .map(|m| m["status"].as_str().unwrap())
                .collect();
            assert_eq!(statuses, ["matched", "unbilled"], "{recon}");
            // The other expenses by fund and listed, the payee as text.
            let other = &recon["other_expenses"][0];
            assert_eq!(other["fund"], "general");
            assert!(
                p.text
                    .contains(&format!("- general: {}", c(&other["total_cents"]))),
                "{}",
                p.text
            );
            assert!(p.text.contains("to <script>alert(5)</script>: Domain fee"));
            assert!(
                p.html.contains("&#60;script&#62;alert(5)&#60;/script&#62;")
                    || p.html.contains("&lt;script&gt;alert(5)&lt;/script&gt;")
            );
            // Thanks, with the donor's name escaped in HTML (and plain in the text part).
            // Names and links only, as on the public page (anyone may subscribe): no amounts.
            assert!(
                p.text
                    .lines()
                    .any(|l| l.trim_end() == "- <script>alert(1)</script>"),
                "{}",
                p.text
            );
            // The month's pause is reported; the failed webhook's text (its URL may carry a
            // secret) is operators' business and never in the email.
            assert!(p.text.contains("fan replacement"), "{}", p.text);
            for part in [&p.text, &p.html] {
                assert!(!part.contains("s3cr3t"), "{part}");
            }
            assert!(!p.html.contains("<script"), "no script in the HTML part");
            assert!(
                p.html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                    || p.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            );
            assert!(p.html.contains("Ada &#38; Co") || p.html.contains("Ada &amp; Co"));
            assert!(!p.html.contains("<img"), "no remote images");
            assert!(p.html.contains("style=\""), "inline styles");
        }

        // A second send delivers nothing new.
        let out = app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert!(out.contains("0 messages queued now; 0 sent"), "{out}");
        assert!(out.contains("2 sent"), "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(smtp.accepted(), 2);
    }
);

db_test!(
    an_smtp_outage_mid_send_still_gives_everyone_exactly_one_message,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        let emails: Vec<String> = (1..=8).map(|i| format!("s{i}@example.org")).collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        add_confirmed(&app, &refs).await;
        smtp.drop_after(3);
        let child = tokio::process::Command::new(buildfund_bin())
            .args(["report", "send", "--month", "2026-10"])
            .current_dir(app.dir.path())
            .env("DATABASE_URL", &app.db_url)
            .env("BUILDFUND_CONFIG", &app.config_path)
            .env("BUILDFUND_SMTP_BACKOFF_MS", "200")
            .env("BUILDFUND_LOG_FORMAT", "text")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The server drops the connection after 3 messages and refuses the sender's retries.
        let start = std::time::Instant::now();
        while smtp.refused_connections() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the sender never retried"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(smtp.accepted(), 3);
        // Only the message that met the outage was tried again (between tries it is `retry`,
        // during one `sending`); the others wait untouched instead of failing one by one.
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        let tried: Vec<_> = rows
            .iter()
            .filter(|r| r.status != "sent" && r.attempts > 0)
            .collect();
        assert_eq!(tried.len(), 1, "{rows:?}");
        assert!(
            tried[0].last_error.as_deref().unwrap().contains("421"),
            "{rows:?}"
        );
        assert_eq!(
            rows.iter()
                .filter(|r| r.status == "pending" && r.attempts == 0)
                .count(),
            4
        );
        smtp.recover();
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("report send finishes after the recovery")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("8 messages queued now; 8 sent"), "{stdout}");
        // The long run showed its progress on stderr while it waited out the outage.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("sending: 1 sent, 0 failed, 0 skipped, 0 transient failures so far"),
            "{stderr}"
        );

        let got = recipients(&smtp.messages());
        let mut want = emails.clone();
        want.sort();
        assert_eq!(got, want, "every subscriber exactly once");
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        assert!(rows.iter().all(|r| r.status == "sent"), "{rows:?}");
        assert!(
            rows.iter().any(|r| r.attempts > 1),
            "the interrupted one was retried"
        );
        // Running send again after the outage sends nothing.
        app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert_eq!(smtp.accepted(), 8);
    }
);

db_test!(
    a_permanent_refusal_is_recorded_and_not_retried,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        // The refused one between others: its transaction is opened while the message before
        // it goes on the other connection.
        add_confirmed(
            &app,
            &[
                "a@example.org",
                "gone@example.org",
                "ok@example.org",
                "z@example.org",
            ],
        )
        .await;
        smtp.reject(
            "gone@example.org",
            "550 5.1.1 <gone@example.org>: mailbox unavailable",
        );
        let out = app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert!(out.contains("3 sent, 1 failed"), "{out}");
        let rows = email_outbox::Entity::find()
            .order_by_asc(email_outbox::Column::Email)
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(rows[1].email, "gone@example.org");
        assert_eq!((rows[1].status.as_str(), rows[1].attempts), ("failed", 1));
        assert!(
            rows[1].last_error.as_deref().unwrap().contains("550"),
            "{:?}",
            rows[1]
        );
        for i in [0, 2, 3] {
            assert_eq!(rows[i].status, "sent", "{:?}", rows[i]);
        }
        let got = recipients(&smtp.messages());
        assert_eq!(got, ["a@example.org", "ok@example.org", "z@example.org"]);
        // Not tried again by a later send.
        app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert_eq!(smtp.accepted(), 3);
    }
);

db_test!(
    a_relay_that_takes_one_connection_gets_every_message_once_over_one,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        smtp.limit_sessions(1);
        // A rate that never holds the next message back, so it is opened while the one before
        // is still on the first connection.
        let config = std::fs::read_to_string(&app.config_path).unwrap();
        assert!(config.contains("rate_per_second = 200"));
        std::fs::write(
            &app.config_path,
            config.replace("rate_per_second = 200", "rate_per_second = 10000"),
        )
        .unwrap();
        let emails: Vec<String> = (1..=6).map(|i| format!("r{i}@example.org")).collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        add_confirmed(&app, &refs).await;
        let out = app.cli_ok(&["report", "send", "--month", "2026-10"]);
        assert!(out.contains("6 messages queued now; 6 sent"), "{out}");
        // The second connection was tried once, refused, and the send went on over the first:
        // no message failed or waited for a retry.
        assert_eq!(smtp.over_limit(), 1);
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        assert!(
            rows.iter().all(|r| r.status == "sent" && r.attempts == 1),
            "{rows:?}"
        );
        let got = recipients(&smtp.messages());
        assert_eq!(got, emails, "every subscriber exactly once");
    }
);

db_test!(
    two_senders_at_once_send_each_row_once,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        let emails: Vec<String> = (1..=30).map(|i| format!("c{i}@example.org")).collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        add_confirmed(&app, &refs).await;
        let start = |_: usize| {
            tokio::process::Command::new(buildfund_bin())
                .args(["report", "send", "--month", "2026-10"])
                .current_dir(app.dir.path())
                .env("DATABASE_URL", &app.db_url)
                .env("BUILDFUND_CONFIG", &app.config_path)
                .env("BUILDFUND_LOG_FORMAT", "text")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(0), start(1));
        let (a, b) = tokio::join!(a.wait_with_output(), b.wait_with_output());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.status.success() && b.status.success(), "{a:?}\n{b:?}");
        let mut got = recipients(&smtp.messages());
        got.dedup();
        assert_eq!(
            (smtp.accepted(), got.len()),
            (30, 30),
            "each subscriber once"
        );
        let sent = |o: &std::process::Output| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            let n: u64 = s
                .split("; ")
                .nth(1)
                .and_then(|p| p.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{s}"));
            n
        };
        assert_eq!(sent(&a) + sent(&b), 30);
    }
);

async fn status_of(app: &TestApp, email: &str) -> Option<String> {
    subscribers::Entity::find()
        .filter(subscribers::Column::Email.eq(email))
        .one(&app.db)
        .await
        .unwrap()
        .map(|s| s.status.as_str().to_string())
}

db_test!(
    double_opt_in_and_unsubscribe_end_to_end,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        // Subscribe from the funding page's form.
        let res = app.post_subscribe("Ada@Example.org", None).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(page.contains("Check your inbox"), "{page}");
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("pending")
        );

        // The confirmation email arrives over SMTP, with a signed link.
        let m = smtp.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(m[0].to, ["ada@example.org"]);
        let confirmation = parse(&m[0]);
        assert_eq!(confirmation.content_type, "multipart/alternative");
        let confirm = link(&confirmation.text, "/confirm?token=");
        assert!(
            confirmation.html.contains(&confirm.replace('&', "&#38;"))
                || confirmation.html.contains(&confirm)
        );

        // Pending subscribers get no report.
        app.cli_ok(&["report", "send", "--month", "2026-09"]);
        assert_eq!(smtp.accepted(), 1);

        // A damaged link is refused; following the real one confirms.
        let last = confirm.chars().last().unwrap();
        let damaged = format!(
            "{}{}",
            &confirm[..confirm.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(app.get(&damaged).await.status(), 400);
        // Following the link shows a Confirm button and changes nothing by itself (mail link
        // scanners follow links too); the subscriber's click confirms.
        let res = app.get(&confirm).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(
            page.contains(&format!(
                "<form method=\"post\" action=\"{}\"",
                confirm.replace('&', "&#38;")
            )) || page.contains("<form method=\"post\" action=\"/confirm?token="),
            "{page}"
        );
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("pending")
        );
        let res = app.client.post(app.url(&confirm)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("You are subscribed"));
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("confirmed")
        );
        // The link again: already subscribed.
        let again = app.get(&confirm).await.text().await.unwrap();
        assert!(again.contains("You are subscribed"), "{again}");

        // An expired confirmation link (signed with the same key, expired an hour ago) is refused.
        let key = EmailKey::load(&app.db, &Secrets::from_env(&app.config), app.clock.now())
            .await
            .unwrap();
        let sub = subscribers::Entity::find()
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let expired = links::sign(
            &key,
            links::Purpose::Confirm,
            sub.id,
            &sub.email,
            Some(app.clock.now().timestamp() - 3600),
        );
        assert_eq!(
            app.get(&format!("/confirm?token={expired}")).await.status(),
            410
        );
        // A link for an id nobody has answers like a damaged one: links do not tell which
        // subscriber ids exist.
        let unknown = links::sign(
            &key,
            links::Purpose::Confirm,
            sub.id + 1000,
            "nobody@example.org",
            Some(Utc::now().timestamp() + 3600),
        );
        let res = app.get(&format!("/confirm?token={unknown}")).await;
        assert_eq!(res.status(), 400);
        let damaged_page = app.get(&damaged).await.text().await.unwrap();
        assert_eq!(res.text().await.unwrap(), damaged_page);

        // The report comes, with a working unsubscribe link.
        app.cli_ok(&["report", "send", "--month", "2026-10"]);
        let m = smtp.wait_for(2, Duration::from_secs(10)).await;
        let report = parse(&m[1]);
        let unsubscribe = link(
            report.header("List-Unsubscribe").unwrap(),
            "/unsubscribe?token=",
        );
        // The page shows a button and changes nothing by itself (link scanners GET it).
        let res = app.get(&unsubscribe).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(page.contains("<form method=\"post\""), "{page}");
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("confirmed")
        );
        // RFC 8058 one-click POST, as a mail client sends it.
        let res = app
            .client
            .post(app.url(&unsubscribe))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("unsubscribed")
        );
        // No more reports; the old confirmation link does not subscribe again.
        assert_eq!(app.get(&confirm).await.status(), 410);
        app.cli_ok(&["report", "send", "--month", "2026-11"]);
        assert_eq!(smtp.accepted(), 2);
        // Subscribing again starts a new opt-in.
        assert_eq!(
            app.post_subscribe("ada@example.org", None).await.status(),
            200
        );
        smtp.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(
            status_of(&app, "ada@example.org").await.as_deref(),
            Some("pending")
        );
    }
);

db_test!(
    subscribe_answers_alike_for_any_address_validates_and_is_rate_limited,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        add_confirmed(&app, &["known@example.org"]).await;
        let known = app.post_subscribe("known@example.org", None).await;
        assert_eq!(known.status(), 200);
        let known = known
            .text()
            .await
            .unwrap()
            .replace("known@example.org", "ADDRESS");
        let fresh = app.post_subscribe("fresh@example.org", None).await;
        assert_eq!(fresh.status(), 200);
        let fresh = fresh
            .text()
            .await
            .unwrap()
            .replace("fresh@example.org", "ADDRESS");
        assert_eq!(
            known, fresh,
            "the answer does not tell whether an address is known"
        );
        // Only the new address gets a confirmation.
        let m = smtp.wait_for(1, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(smtp.accepted(), 1);
        assert_eq!(m[0].to, ["fresh@example.org"]);

        let bad = app.post_subscribe("not-an-address", None).await;
        assert_eq!(bad.status(), 400);
        assert!(bad.text().await.unwrap().contains("has no @"));
        let bad = app.post_subscribe("ada@localhost", None).await;
        assert_eq!(bad.status(), 400);
        assert!(bad.text().await.unwrap().contains("not a full domain name"));
        // The pending address again within ten minutes: the same answer, no second email (the
        // form cannot flood a mailbox).
        assert_eq!(
            app.post_subscribe("fresh@example.org", None).await.status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(smtp.accepted(), 1, "one confirmation per ten minutes");
        // Five requests per client per ten minutes: this was the fifth; the sixth is refused.
        let limited = app.post_subscribe("y@example.org", None).await;
        assert_eq!(limited.status(), 429);
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 600, "{retry}");
        assert_eq!(status_of(&app, "y@example.org").await, None);
    }
);

/// BOOKS behind a reverse proxy on the loopback address (where the test client connects from).
fn behind_proxy() -> String {
    format!("{BOOKS}\n[server]\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n")
}

db_test!(
    behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget,
    with_smtp(&behind_proxy()),
    |app| async move {
        // Six clients through the proxy: each has its own budget of five.
        for i in 0..6 {
            let who = format!("203.0.113.{i}");
            let status = app
                .post_subscribe(&format!("c{i}@example.org"), Some(&who))
                .await
                .status();
            assert_eq!(status, 200, "client {who}");
        }
        // One client, whatever it writes on the left of the proxy's entry, is one client.
        for i in 0..4 {
            let forwarded = format!("198.51.100.{i}, 203.0.113.0");
            let status = app
                .post_subscribe(&format!("d{i}@example.org"), Some(&forwarded))
                .await
                .status();
            assert_eq!(status, 200, "request {i} of 203.0.113.0");
        }
        let forwarded = "198.51.100.99, 203.0.113.0";
        assert_eq!(
            app.post_subscribe("e@example.org", Some(forwarded))
                .await
                .status(),
            429,
            "the sixth request of 203.0.113.0"
        );
    }
);

db_test!(
    subscribers_admin_api_and_cli,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        let admin = app.token("admin").await;
        let post = |body: Value, token: Option<String>| {
            let mut r = app.client.post(app.url("/api/v1/subscribers")).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(
            post(json!({"email": "a@example.org"}), None)
                .await
                .unwrap()
                .status(),
            401
        );
        let res = post(
            json!({"email": "a@example.org", "confirmed": true}),
            Some(admin.clone()),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["subscriber"]["status"], "confirmed");
        assert_eq!(
            post(
                json!({"email": "a@example.org", "confirmed": true}),
                Some(admin.clone())
            )
            .await
            .unwrap()
            .status(),
            200
        );
        let res = post(json!({"email": "b@"}), Some(admin.clone()))
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        assert!(err["error"].as_str().unwrap().contains("email"), "{err}");
        // Pending via the API: a confirmation is sent.
        let res = post(json!({"email": "p@example.org"}), Some(admin.clone()))
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(
            res.json::<Value>().await.unwrap()["confirmation_sent"],
            true
        );
        assert_eq!(
            smtp.wait_for(1, Duration::from_secs(10)).await[0].to,
            ["p@example.org"]
        );

        // The CLI.
        let out = app.cli_ok(&["subscribers", "add", "C@Example.org", "--confirmed"]);
        assert!(out.contains("c@example.org added: confirmed"), "{out}");
        let out = app.cli_ok(&["subscribers", "list"]);
        for (e, s) in [
            ("a@example.org", "confirmed"),
            ("p@example.org", "pending"),
            ("c@example.org", "confirmed"),
        ] {
            assert!(out.lines().any(|l| l.contains(e) && l.contains(s)), "{out}");
        }
        let bad = app.cli(&["subscribers", "add", "nope"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("\"nope\" has no @"));
        app.cli_ok(&["subscribers", "remove", "c@example.org"]);
        let missing = app.cli(&["subscribers", "remove", "c@example.org"]);
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no subscriber c@example.org"));

        let list: Value = app
            .get_with_token("/api/v1/subscribers", &admin)
            .await
            .json()
            .await
            .unwrap();
        let emails: Vec<&str> = list["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, ["a@example.org", "p@example.org"]);
        let res = app
            .client
            .delete(app.url("/api/v1/subscribers/a@example.org"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let res = app
            .client
            .delete(app.url("/api/v1/subscribers/a@example.org"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
);

db_test!(
    preview_writes_both_parts_and_the_jobs_send_last_month,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        seed_books(&app).await;
        let out_dir = app.dir.path().join("preview");
        let out = app.cli_ok(&[
            "report",
            "preview",
            "--month",
            "2026-10",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(
            out.contains("report-2026-10.txt") && out.contains("report-2026-10.html"),
            "{out}"
        );
        let text = std::fs::read_to_string(out_dir.join("report-2026-10.txt")).unwrap();
        let html = std::fs::read_to_string(out_dir.join("report-2026-10.html")).unwrap();
        assert!(
            text.contains("What your money did in October 2026"),
            "{text}"
        );
        assert!(html.contains("<table") && !html.contains("<script>"));
        let bad = app.cli(&["report", "preview", "--month", "2026-13"]);
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--month"),
            "{:?}",
            bad
        );

        // The scheduled jobs: monthly_report queues last month and drains; outbox_drain too.
        add_confirmed(&app, &["ada@example.org"]).await;
        let admin = app.token("admin").await;
        let jobs: Value = app
            .get_with_token("/api/v1/jobs", &admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(jobs["schedule"]["monthly_report"]["cron"], "0 0 9 1 * *");
        assert_eq!(jobs["schedule"]["outbox_drain"]["available"], true);
        let run: Value = app.run_job("monthly_report", &admin).await;
        assert_eq!(run["outcome"], "ok", "{run}");
        let last_month = buildfund_jobs::calendar::Month::of(Utc::now())
            .prev()
            .to_string();
        let m = smtp.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(m[0].to, ["ada@example.org"]);
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(
            (rows.len(), rows[0].month.as_str(), rows[0].status.as_str()),
            (1, last_month.as_str(), "sent")
        );
        // (A job runs once per second: the next run is in the next second.)
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let run: Value = app.run_job("monthly_report", &admin).await;
        assert_eq!(run["outcome"], "ok", "{run}");
        let run: Value = app.run_job("outbox_drain", &admin).await;
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(smtp.accepted(), 1, "a second monthly run sends nothing new");
    }
);

/// The outbox's confirmation rows, oldest first.
async fn confirmations(app: &TestApp) -> Vec<email_outbox::Model> {
    email_outbox::Entity::find()
        .filter(email_outbox::Column::Kind.eq("confirm"))
        .order_by_asc(email_outbox::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
}

/// Waits until the confirmation to `email` is in `status` (panics after 10 s).
async fn confirmation_in(app: &TestApp, email: &str, status: &str) -> email_outbox::Model {
    let start = std::time::Instant::now();
    loop {
        let rows = confirmations(app).await;
        if let Some(row) = rows.iter().find(|r| r.email == email && r.status == status) {
            return row.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {status} confirmation to {email}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

db_test!(
    a_confirmation_the_relay_defers_stays_queued_and_a_later_drain_delivers_it,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        let deferred = "451 4.7.1 greylisted, try again later";
        smtp.reject("late@example.org", deferred);
        smtp.reject("cli@example.org", deferred);
        smtp.reject(
            "gone@example.org",
            "550 5.1.1 <gone@example.org>: no such user",
        );

        // The form answers at once, as for any address; the background sender meets the 451.
        let res = app.post_subscribe("late@example.org", None).await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("Check your inbox"));
        let row = confirmation_in(&app, "late@example.org", "retry").await;
        assert_eq!(row.attempts, 1);
        assert!(
            row.last_error.as_deref().unwrap().contains("451"),
            "{row:?}"
        );
        assert_eq!(
            status_of(&app, "late@example.org").await.as_deref(),
            Some("pending")
        );

        // `subscribers add` tries it once, says it is queued, and succeeds.
        let out = app.cli_ok(&["subscribers", "add", "cli@example.org"]);
        assert!(out.contains("cli@example.org added: pending"), "{out}");
        assert!(out.contains("queued; will retry"), "{out}");
        confirmation_in(&app, "cli@example.org", "retry").await;
        // A 5xx is recorded as failed, and the command says so.
        let refused = app.cli(&["subscribers", "add", "gone@example.org"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("550"),
            "{refused:?}"
        );
        let row = confirmation_in(&app, "gone@example.org", "failed").await;
        assert!(
            row.last_error.as_deref().unwrap().contains("550"),
            "{row:?}"
        );
        assert_eq!(smtp.accepted(), 0);

        // Asking again within ten minutes queues nothing more.
        assert_eq!(
            app.post_subscribe("late@example.org", None).await.status(),
            200
        );
        assert_eq!(confirmations(&app).await.len(), 3);

        // The relay takes them now: the scheduled drain (which waits for retries due within
        // its run) delivers each exactly once, with the row's stable Message-ID.
        smtp.unreject("late@example.org");
        smtp.unreject("cli@example.org");
        let admin = app.token("admin").await;
        let run: Value = app.run_job("outbox_drain", &admin).await;
        assert_eq!(run["outcome"], "ok", "{run}");
        let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
        let to = recipients(&messages);
        assert_eq!(to, ["cli@example.org", "late@example.org"]);
        for row in confirmations(&app).await {
            if row.email == "gone@example.org" {
                assert_eq!(row.status, "failed");
                continue;
            }
            assert_eq!(row.status, "sent", "{row:?}");
            let id = format!("<confirm.{}@example.org>", row.id);
            assert_eq!(row.message_id.as_deref(), Some(id.as_str()));
            let m = messages
                .iter()
                .find(|m| m.to == [row.email.clone()])
                .unwrap();
            assert_eq!(parse(m).header("Message-ID"), Some(id.as_str()));
        }

        // Its link confirms.
        let late = messages
            .iter()
            .find(|m| m.to == ["late@example.org"])
            .unwrap();
        let confirm = link(&parse(late).text, "/confirm?token=");
        let res = app.client.post(app.url(&confirm)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("You are subscribed"));
        assert_eq!(
            status_of(&app, "late@example.org").await.as_deref(),
            Some("confirmed")
        );

        // Nothing is left to send.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let run: Value = app.run_job("outbox_drain", &admin).await;
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(smtp.accepted(), 2);
    }
);

db_test!(
    two_drains_at_once_send_each_confirmation_once,
    with_smtp(BOOKS),
    |app| async move {
        let smtp = app.smtp();
        use buildfund_jobs::email::outbox::{self, DrainOptions};
        use buildfund_jobs::email::Mailer;
        // Queued in this process: the app's background sender is not woken, the drains below
        // are the only senders.
        let emails: Vec<String> = (1..=20).map(|i| format!("q{i}@example.org")).collect();
        for e in &emails {
            let added = subscriptions::add(
                &app.db,
                &SubscriberEmail::parse(e).unwrap(),
                false,
                Utc::now(),
            )
            .await
            .unwrap();
            assert!(added.confirmation.is_some());
        }
        assert_eq!(confirmations(&app).await.len(), 20);
        let secrets = Secrets::from_env(&app.config);
        let key = EmailKey::load(&app.db, &secrets, app.clock.now())
            .await
            .unwrap();
        let drain = || {
            let (db, config, key) = (app.db.clone(), app.config.clone(), key.clone());
            let mailer = Mailer::new(config.smtp.as_ref().unwrap(), &secrets).unwrap();
            tokio::spawn(async move {
                let options = DrainOptions {
                    wait_for_retries: Duration::ZERO,
                    ..Default::default()
                };
                outbox::drain(&db, &config, &mailer, &key, options)
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (drain(), drain());
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a.sent + b.sent, 20, "{a:?} {b:?}");
        let mut got = recipients(&smtp.messages());
        got.dedup();
        assert_eq!((smtp.accepted(), got.len()), (20, 20), "each address once");
        assert!(confirmations(&app).await.iter().all(|r| r.status == "sent"));
    }
);

db_test!(
    confirmation_links_and_resends_follow_the_servers_clock,
    with_smtp(BOOKS).clock(buildfund_jobs::clock::Clock::manual(
        DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    )),
    |app| async move {
        let smtp = app.smtp();
        assert_eq!(
            app.post_subscribe("clocked@example.org", None)
                .await
                .status(),
            200
        );
        let m = smtp.wait_for(1, Duration::from_secs(10)).await;
        let first = link(&parse(&m[0]).text, "/confirm?token=");
        // The row and the subscriber carry the server's instant, not the calendar's.
        let row = confirmation_in(&app, "clocked@example.org", "sent").await;
        assert_eq!(row.created_at, app.clock.now());
        assert_eq!(row.sent_at, Some(app.clock.now()));

        // Ten minutes later on the server's clock, asking again sends a second confirmation.
        app.clock.advance(chrono::Duration::minutes(10));
        assert_eq!(
            app.post_subscribe("clocked@example.org", None)
                .await
                .status(),
            200
        );
        let m = smtp.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(m.len(), 2);

        // The first link works for 48 hours from when it was signed (47 h 10 min so far), then
        // it is refused.
        app.clock.advance(chrono::Duration::hours(47));
        assert_eq!(app.get(&first).await.status(), 200);
        app.clock.advance(chrono::Duration::hours(1));
        assert_eq!(app.get(&first).await.status(), 410);
    }
);

db_test!(
    a_send_killed_after_the_relay_accepted_resends_once_with_the_same_message_id,
    with_smtp(BOOKS),
    |app| async move {
        use buildfund_tests::crash::PAUSE_AT;
        let smtp = app.smtp();
        seed_books(&app).await;
        let everyone = ["a@example.org", "b@example.org", "c@example.org"];
        add_confirmed(&app, &everyone).await;
        // A real `buildfund report send`, killed right after the relay took its first message
        // and before the outbox recorded it as sent.
        let mut send = app.cli_process(
            &["report", "send", "--month", "2026-10"],
            &[(PAUSE_AT, "email.handed_off")],
        );
        send.wait_paused_at("email.handed_off").await;
        send.kill();
        assert_eq!(smtp.accepted(), 1);

        // Once the dead sender's lease is over, the next send delivers the rest, and the one
        // in flight again, under the same Message-ID.
        let (created, report) = send_after_the_lease(&app).await;
        assert_eq!((created, report.sent), (0, 3), "{report:?}");
        let messages = smtp.wait_for(4, Duration::from_secs(10)).await;
        assert_eq!(messages.len(), 4, "at most one duplicate per crash");
        let mut ids = recipients_and_ids(&messages);
        ids.dedup();
        assert_eq!(
            ids.len(),
            3,
            "the duplicate carries its first Message-ID: {ids:?}"
        );
        let mut to: Vec<&str> = ids.iter().map(|(to, _)| to.as_str()).collect();
        to.dedup();
        assert_eq!(to, everyone, "every subscriber got the report");
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        assert!(rows.iter().all(|r| r.status == "sent"), "{rows:?}");
    }
);

db_test!(
    a_send_killed_in_the_middle_of_a_batch_resends_only_the_message_in_flight,
    with_smtp(BOOKS),
    |app| async move {
        use buildfund_tests::crash::PAUSE_AT;
        let smtp = app.smtp();
        seed_books(&app).await;
        let everyone: Vec<String> = (1..=6).map(|i| format!("m{i}@example.org")).collect();
        let refs: Vec<&str> = everyone.iter().map(String::as_str).collect();
        add_confirmed(&app, &refs).await;
        // One batch claims all six; the sender is killed after the relay took the third and
        // before the outbox recorded it: the first two are recorded (relaxed commits), the
        // last three claimed and never handed over.
        let mut send = app.cli_process(
            &["report", "send", "--month", "2026-10"],
            &[(PAUSE_AT, "email.handed_off#3")],
        );
        send.wait_paused_at("email.handed_off").await;
        send.kill();
        assert_eq!(smtp.accepted(), 3);
        let rows = email_outbox::Entity::find()
            .order_by_asc(email_outbox::Column::Id)
            .all(&app.db)
            .await
            .unwrap();
        let states: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(
            states,
            ["sent", "sent", "sending", "sending", "sending", "sending"],
            "the records before the kill outlived the process"
        );

        // After the lease the next send delivers the four unrecorded rows: one duplicate (the
        // message in flight, under its first Message-ID), nobody missing.
        let (created, report) = send_after_the_lease(&app).await;
        assert_eq!((created, report.sent), (0, 4), "{report:?}");
        let messages = smtp.wait_for(7, Duration::from_secs(10)).await;
        assert_eq!(messages.len(), 7, "exactly one duplicate");
        let mut ids = recipients_and_ids(&messages);
        let twice: Vec<_> = ids.windows(2).filter(|w| w[0] == w[1]).collect();
        assert_eq!(twice.len(), 1, "{ids:?}");
        assert_eq!(
            twice[0][0].0, everyone[2],
            "the duplicate is the third message"
        );
        ids.dedup();
        let to: Vec<&str> = ids.iter().map(|(to, _)| to.as_str()).collect();
        assert_eq!(
            to, refs,
            "every subscriber got the report, once under one Message-ID"
        );
        let rows = email_outbox::Entity::find().all(&app.db).await.unwrap();
        assert!(rows.iter().all(|r| r.status == "sent"), "{rows:?}");
    }
);

/// A message with its random MIME boundary and its Date header replaced by fixed text.
fn without_boundary_and_date(message: Vec<u8>) -> String {
    let text = String::from_utf8(message).unwrap();
    let boundary = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a multipart boundary")
        .to_string();
    text.replace(&boundary, "BOUNDARY")
        .lines()
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: D"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

db_test!(
    the_report_laid_out_once_is_byte_for_byte_the_report_rendered_for_each_subscriber,
    with_smtp(BOOKS),
    |app| async move {
        use buildfund_jobs::email::outbox::{report_message_of, report_message_rendered};
        use buildfund_jobs::email::render::{self, ReportParts};
        seed_books(&app).await;
        let config = &app.config;
        let month = buildfund_jobs::calendar::Month::parse("2026-10").unwrap();
        let report = buildfund_jobs::report::month_report(&app.db, config, month, Utc::now())
            .await
            .unwrap();
        let view = buildfund_jobs::report::view::report_view(&report, &[], &[]);
        let parts = ReportParts::new(&view, &config.public_url)
            .unwrap()
            .expect("the link is the only piece that differs");
        let mailer = buildfund_jobs::email::Mailer::new(
            config.smtp.as_ref().unwrap(),
            &Secrets::from_env(config),
        )
        .unwrap();
        for url in [
            format!(
                "{}/unsubscribe?token=u.7.{}",
                config.public_url,
                "a1".repeat(32)
            ),
            "https://x.example/u?a=1&b=\"<x>'".to_string(),
            String::new(),
            "\u{1}unsubscribe-link-a\u{1}".to_string(),
        ] {
            let whole = render::report(&view, &config.public_url, &url).unwrap();
            let filled = parts.fill(&url).unwrap();
            assert_eq!(filled.subject, whole.subject);
            assert_eq!(filled.text, whole.text, "{url}");
            assert_eq!(filled.html, whole.html, "{url}");
            assert!(whole.html.contains("alert(1)") && !whole.html.contains("<script>"));
            let id = "<report.2026-10.7@example.org>".to_string();
            let old = report_message_of(&mailer, config, &view, "a@example.org", &url, id.clone())
                .unwrap();
            let new = report_message_rendered(&mailer, filled, "a@example.org", &url, id).unwrap();
            assert_eq!(
                without_boundary_and_date(new.formatted()),
                without_boundary_and_date(old.formatted()),
                "{url}"
            );
        }
    }
);
