//! The public pages end to end: `/`, `/reports`, `/reports/YYYY-MM` and its CSV on seeded data,
//! every figure on the pages checked to the cent against `/api/v1/funds` and `/api/v1/costs`
//! for the same month and instant, outside names shown as text, anonymous donors as
//! "Anonymous", the caching headers, and a headless Chromium run that reads the rendered DOM and
//! saves desktop and phone screenshots to `target/test-artifacts/`.
use buildfund_entity::donations;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::money::format_cents;
use buildfund_tests::{db_test, run, Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2025-01-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "2500.00"
reserve = "50.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
monthly_goal = "1500.00"
accounts = ["nix-cuda"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "800.00"

[[machines]]
name = "build03"
slots = 2
monthly = "30.00"
invoice_tags = ["hosting-build03"]

[[machines]]
name = "gpu01"
metered = "2.40"

[[plans]]
slug = "jetson-cache"
name = "A binary cache for Jetson boards"
fund = "cuda"
monthly = "0.50"

[[plans]]
slug = "gpu-test-runner"
name = "A GPU machine to test CUDA at run time"
fund = "cuda"
monthly = "180.00"
url = "https://example.org/plans/gpu-test-runner"

[[plans]]
slug = "more-branches"
name = "More branches, built more often"
fund = "general"
monthly = "25.00"
"#;

const SCRIPT_DONOR: &str = "<script>alert(1)</script>";
/// As Chromium serialises the text node.
const SCRIPT_DONOR_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
/// As askama escapes it in the served HTML.
const SCRIPT_DONOR_SERVED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";
const HIDDEN_NAME: &str = "Hidden Donor";
/// A name a spreadsheet would run as a formula.
const FORMULA_DONOR: &str = "=HYPERLINK(\"http://evil.invalid\",\"click\")";

fn this_month() -> Month {
    Month::of(Utc::now())
}

/// Steps and donations in the previous month and in this month up to now.
async fn seed(app: &TestApp) {
    let now = Utc::now() - Duration::seconds(5);
    let cur = this_month().start();
    let prev = this_month().prev().start();
    // This month's steps fit in what has elapsed of it.
    let room = (now - cur).num_seconds().max(0);
    let d = (room / 3).min(6 * 3600);
    let t = |x: DateTime<Utc>| x.timestamp();
    let steps = [
        (
            1,
            "cuda",
            "build03",
            t(prev) + 86400,
            t(prev) + 86400 + 10 * 3600,
        ),
        (
            2,
            "trunk",
            "build03",
            t(prev) + 2 * 86400,
            t(prev) + 2 * 86400 + 5 * 3600,
        ),
        (
            3,
            "cuda-tests",
            "gpu01",
            t(prev) + 3 * 86400,
            t(prev) + 3 * 86400 + 3 * 3600,
        ),
        (4, "cuda", "build03", t(cur), t(cur) + d),
        (5, "cuda-tests", "gpu01", t(cur) + d, t(cur) + 2 * d),
        (6, "trunk", "jetson-1", t(cur), t(cur) + d),
    ];
    let steps: Vec<Value> = steps
        .iter()
        .map(|(build, jobset, machine, start, stop)| {
            let job = ["python3Packages.torch.x86_64-linux", "hello.x86_64-linux"]
                [usize::from(*jobset == "trunk")];
            let job = if *build == 5 {
                "python3Packages.torch.aarch64-linux"
            } else {
                job
            };
            json!({"build": build, "step": 1, "project": "nixpkgs", "jobset": jobset,
                   "job": job, "machine": machine, "start": start, "stop": stop})
        })
        .collect();
    app.ingest_steps(&steps).await;

    let in_month = cur + Duration::seconds(room / 2);
    // (id, when, account, name, url, anonymous, gross, fees)
    let rows = [
        (
            "p1",
            prev + Duration::days(4),
            "nixos",
            Some("Grace Hopper"),
            Some("https://opencollective.com/grace"),
            false,
            5000,
            250,
        ),
        (
            "p2",
            prev + Duration::days(9),
            "nix-cuda",
            Some("Grace Hopper"),
            Some("https://opencollective.com/grace"),
            false,
            -500,
            -25,
        ),
        (
            "c1",
            in_month,
            "nix-cuda",
            Some(SCRIPT_DONOR),
            Some("javascript:alert(2)"),
            false,
            2500,
            125,
        ),
        (
            "c2",
            in_month,
            "nixos",
            Some("Ada Lovelace"),
            Some("https://opencollective.com/ada"),
            false,
            10000,
            0,
        ),
        (
            "c3",
            in_month,
            "nix-cuda",
            Some(HIDDEN_NAME),
            Some("https://opencollective.com/hidden"),
            true,
            1000,
            50,
        ),
        (
            "c4",
            in_month,
            "nix-cuda",
            Some("Linus"),
            None,
            false,
            777,
            0,
        ),
        (
            "c5",
            in_month,
            "nixos",
            Some(FORMULA_DONOR),
            None,
            false,
            300,
            0,
        ),
    ];
    for (id, at, account, name, url, anonymous, gross, fees) in rows {
        donation(id, at, account, name, url, anonymous, gross, fees)
            .insert(&app.db)
            .await
            .unwrap();
    }
}

/// A payee and a description from outside, as hostile as they come.
const SCRIPT_PAYEE: &str = "<script>alert(4)</script>";
const SCRIPT_PAYEE_SERVED: &str = "&#60;script&#62;alert(4)&#60;/script&#62;";
const SCRIPT_PAYEE_ESCAPED: &str = "&lt;script&gt;alert(4)&lt;/script&gt;";
const FORMULA_DESCRIPTION: &str = "=1+2 domain fee";

/// Expenses through `POST /api/v1/expenses` (admin): build03's invoice for last month (arrears,
/// so dated this month), a domain fee of the general fund last month with a hostile payee and
/// description, and a CI bill of the cuda fund this month. gpu01 gets no invoice.
async fn seed_expenses(app: &TestApp) {
    let admin = app.token("admin").await;
    let now = Utc::now() - Duration::seconds(5);
    let cur = this_month().start();
    let prev = this_month().prev().start();
    let room = (now - cur).num_seconds().max(0);
    let this = cur + Duration::seconds(room / 4);
    let bodies = [
        json!({"idempotency_key": "inv-build03", "paid_at": this.to_rfc3339(),
               "incurred_at": cur.format("%Y-%m-%d").to_string(), "payee": "Hosting GmbH",
               "tags": ["Hosting-Build03"], "description": "Invoice for build03",
               "amount_cents": 3000, "fees_cents": 40}),
        json!({"idempotency_key": "dns-1", "paid_at": (prev + Duration::days(5)).to_rfc3339(),
               "incurred_at": (prev + Duration::days(5)).format("%Y-%m-%d").to_string(),
               "payee": SCRIPT_PAYEE, "tags": ["domain"], "description": FORMULA_DESCRIPTION,
               "amount_cents": 1200, "fees_cents": 35}),
        json!({"idempotency_key": "ci-1", "paid_at": this.to_rfc3339(),
               "incurred_at": cur.format("%Y-%m-%d").to_string(), "account": "nix-cuda",
               "payee": SCRIPT_PAYEE, "tags": ["ci"], "description": "CI minutes",
               "amount_cents": 500}),
    ];
    for body in bodies {
        let (status, answer) = app.post_json("/api/v1/expenses", &admin, body).await;
        assert_eq!(status, 201, "{answer}");
    }
}

/// Checks cash, the books' balance and the month's reconciliation on a page against
/// `/api/v1/reconciliation`, `/api/v1/expenses` and `/api/v1/funds` at the page's own `as_of`:
/// on a report page (`report`) every machine's modeled, billed, difference, tolerance and
/// status, the other expenses by fund and listed; on the funding page last month's counts.
/// Returns how many figures.
async fn check_recon_against_api(app: &TestApp, html: &str, month: Month, report: bool) -> usize {
    let figs = figures(html);
    let as_of = attr(&figs["as_of"].tag, "datetime").expect("as_of datetime");
    let get = |path: String| async move {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json::<Value>().await.unwrap()
    };
    let recon = get(format!("/api/v1/reconciliation?month={month}&at={as_of}")).await;
    let funds = get(format!("/api/v1/funds?month={month}&at={as_of}")).await;
    let balance: i64 = funds["funds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["balance_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(cents(&figs, "books.balance"), balance, "the books' balance");
    assert_eq!(
        cents(&figs, "cash"),
        recon["cash_cents"].as_i64().unwrap(),
        "cash on the page vs /api/v1/reconciliation"
    );
    assert!(
        html.contains("not invoiced yet"),
        "why cash and the books differ"
    );
    let mut checked = 2;
    if !report {
        let last = month.prev();
        let recon = get(format!("/api/v1/reconciliation?month={last}&at={as_of}")).await;
        for status in ["matched", "over", "under", "unbilled"] {
            let n = recon["machines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["status"] == status)
                .count();
            let f = &figs[&format!("recon.last.{status}")];
            assert_eq!(
                (f.value.as_str(), f.text.as_str()),
                (n.to_string().as_str(), n.to_string().as_str()),
                "machines {status} last month"
            );
            checked += 1;
        }
        for field in ["modeled", "billed"] {
            assert_eq!(
                cents(&figs, &format!("recon.last.{field}")),
                recon[format!("{field}_cents")].as_i64().unwrap(),
                "last month {field}"
            );
            checked += 1;
        }
        assert!(html.contains(&format!("href=\"/reports/{last}#recon-h\"")));
        return checked;
    }
    // The invoices are counted to the request's instant (a past month's arrears invoices are
    // paid after its end), which the section states.
    let recon_at = attr(&figs["recon.as_of"].tag, "datetime").expect("recon.as_of datetime");
    assert!(recon_at >= as_of, "{recon_at} before {as_of}");
    let recon = get(format!(
        "/api/v1/reconciliation?month={month}&at={recon_at}"
    ))
    .await;
    for field in ["modeled", "billed", "difference"] {
        assert_eq!(
            cents(&figs, &format!("recon.{field}")),
            recon[format!("{field}_cents")].as_i64().unwrap(),
            "{field} of {month}"
        );
        checked += 1;
    }
    let machines = recon["machines"].as_array().unwrap();
    let shown: BTreeSet<&str> = figs
        .keys()
        .filter_map(|k| k.strip_prefix("recon.machine.")?.split('.').next())
        .collect();
    let api: BTreeSet<&str> = machines
        .iter()
        .map(|m| m["machine"].as_str().unwrap())
        .collect();
    assert_eq!(shown, api, "every machine of the reconciliation, no other");
    for m in machines {
        let name = m["machine"].as_str().unwrap();
        for field in ["modeled", "billed", "difference", "tolerance"] {
            assert_eq!(
                cents(&figs, &format!("recon.machine.{name}.{field}")),
                m[format!("{field}_cents")].as_i64().unwrap(),
                "machine {name} {field}"
            );
            checked += 1;
        }
        let status = m["status"].as_str().unwrap();
        assert!(
            html.contains(&format!(
                "data-recon-machine=\"{name}\" data-status=\"{status}\""
            )),
            "machine {name} is {status}"
        );
    }
    let others = recon["other_expenses"].as_array().unwrap();
    assert_eq!(
        figs.keys()
            .filter(|k| k.starts_with("recon.other."))
            .count(),
        others.len()
    );
    for o in others {
        let fund = o["fund"].as_str().unwrap();
        assert_eq!(
            cents(&figs, &format!("recon.other.{fund}")),
            o["total_cents"].as_i64().unwrap(),
            "other expenses of {fund}"
        );
        checked += 1;
    }
    let listed = get(format!("/api/v1/expenses?month={month}")).await;
    let listed: Vec<&Value> = listed["expenses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fund"].is_string())
        .collect();
    assert_eq!(
        figs.keys().filter(|k| k.starts_with("expense.")).count(),
        listed.len(),
        "every other expense of the month, no other"
    );
    for e in listed {
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            cents(&figs, &format!("expense.{id}.total")),
            e["total_cents"].as_i64().unwrap(),
            "expense {id}"
        );
        checked += 1;
    }
    checked
}

/// A manual donation record as the seed stores them (a negative one refunds `p1`).
#[allow(clippy::too_many_arguments)]
fn donation(
    id: &str,
    at: DateTime<Utc>,
    account: &str,
    name: Option<&str>,
    url: Option<&str>,
    anonymous: bool,
    gross: i64,
    fees: i64,
) -> donations::ActiveModel {
    donations::ActiveModel {
        source: Set("manual".into()),
        external_id: Set(id.into()),
        kind: Set(if gross < 0 { "refund" } else { "contribution" }.into()),
        occurred_at: Set(at),
        account_slug: Set(account.into()),
        tier_slug: Set(None),
        contributor_name: Set(name.map(Into::into)),
        contributor_slug: Set(None),
        contributor_url: Set(url.map(Into::into)),
        anonymous: Set(anonymous),
        gross_cents: Set(gross),
        fees_cents: Set(fees),
        net_cents: Set(gross - fees),
        original_amount: Set(format_cents(gross)),
        original_currency: Set("EUR".into()),
        refund_of: Set((gross < 0).then(|| "p1".to_string())),
        description: Set(Some("hidden@donor.invalid wrote this".into())),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
}

/// One element marked `data-figure`: its `data-value`, its other attributes and its text.
#[derive(Debug)]
struct Figure {
    value: String,
    tag: String,
    text: String,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Every `data-figure` element of a page (as served, or as Chromium serialised its DOM).
fn figures(html: &str) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(pos) = html[from..].find("data-figure=\"") {
        let pos = from + pos;
        let open = html[..pos].rfind('<').expect("tag start");
        let close = pos + html[pos..].find('>').expect("tag end");
        let tag = &html[open..close];
        let name = attr(tag, "data-figure").expect("figure name");
        let text_end = close + 1 + html[close + 1..].find('<').unwrap_or(0);
        let figure = Figure {
            value: attr(tag, "data-value").unwrap_or_default(),
            tag: tag.to_string(),
            text: unescape(html[close + 1..text_end].trim()),
        };
        assert!(
            out.insert(name.clone(), figure).is_none(),
            "figure {name} twice on the page"
        );
        from = close;
    }
    out
}

fn cents(figs: &BTreeMap<String, Figure>, name: &str) -> i64 {
    let f = figs
        .get(name)
        .unwrap_or_else(|| panic!("no figure {name} on the page (have {:?})", figs.keys()));
    let v: i64 = f
        .value
        .parse()
        .unwrap_or_else(|_| panic!("figure {name}: {:?} is not a number", f.value));
    // What a reader sees is the same amount: "1,234.56" for 123456.
    assert_eq!(
        f.text.replace(',', ""),
        format_cents(v),
        "figure {name}: shown as {:?}, is {v} cents",
        f.text
    );
    v
}

/// Checks every figure of a page against the API at the page's own `as_of`; returns how many.
async fn check_against_api(app: &TestApp, html: &str, month: Month, with_lines: bool) -> usize {
    let figs = figures(html);
    let as_of = attr(&figs["as_of"].tag, "datetime").expect("as_of datetime");
    let funds: Value = app
        .get(&format!("/api/v1/funds?month={month}&at={as_of}"))
        .await
        .json()
        .await
        .unwrap();
    let costs: Value = app
        .get(&format!("/api/v1/costs?month={month}&at={as_of}"))
        .await
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    let api_funds = funds["funds"].as_array().expect("funds");
    let page_funds: BTreeSet<&str> = figs
        .keys()
        .filter_map(|k| k.strip_prefix("fund.")?.split('.').next())
        .collect();
    let api_slugs: BTreeSet<&str> = api_funds
        .iter()
        .map(|f| f["slug"].as_str().unwrap())
        .collect();
    assert_eq!(page_funds, api_slugs, "the page shows every fund, no other");
    let mut net_total = 0;
    for f in api_funds {
        let slug = f["slug"].as_str().unwrap();
        for field in ["gross", "fees", "net", "spent", "balance"] {
            assert_eq!(
                cents(&figs, &format!("fund.{slug}.{field}")),
                f[format!("{field}_cents")].as_i64().unwrap(),
                "fund {slug} {field} on the page vs /api/v1/funds"
            );
            checked += 1;
        }
        match f["goal_cents"].as_i64() {
            Some(goal) => assert_eq!(cents(&figs, &format!("fund.{slug}.goal")), goal),
            None => assert!(!figs.contains_key(&format!("fund.{slug}.goal"))),
        }
        let runway = &figs[&format!("fund.{slug}.runway_days")].value;
        assert_eq!(
            runway.parse::<i64>().ok(),
            f["runway_days"].as_i64(),
            "fund {slug} runway"
        );
        net_total += f["net_cents"].as_i64().unwrap();
        checked += 2;
    }
    assert_eq!(cents(&figs, "raised.net"), net_total);
    let lines = costs["lines"].as_array().expect("lines");
    assert_eq!(
        cents(&figs, "costs.total"),
        costs["total_cents"].as_i64().unwrap()
    );
    let idle: i64 = lines
        .iter()
        .filter(|l| l["idle"] == true)
        .map(|l| l["cost_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(cents(&figs, "costs.idle"), idle);
    let mut by_pool: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_machine: BTreeMap<String, i64> = BTreeMap::new();
    for l in lines {
        let c = l["cost_cents"].as_i64().unwrap();
        if let Some(p) = l["pool"].as_str() {
            *by_pool.entry(p.into()).or_default() += c;
        }
        *by_machine
            .entry(l["machine"].as_str().unwrap().into())
            .or_default() += c;
    }
    assert!(!by_pool.is_empty(), "seeded months have pool costs");
    for (pool, c) in &by_pool {
        assert_eq!(
            cents(&figs, &format!("pool.{pool}.cost")),
            *c,
            "pool {pool}"
        );
    }
    for (machine, c) in &by_machine {
        assert_eq!(
            cents(&figs, &format!("machine.{machine}.cost")),
            *c,
            "machine {machine}"
        );
    }
    checked += 3 + by_pool.len() + by_machine.len();
    if with_lines {
        let page_lines = figs.keys().filter(|k| k.starts_with("line.")).count();
        assert_eq!(page_lines, lines.len(), "every cost line, no other");
        for l in lines {
            let key = l["jobset"].as_str().unwrap_or("idle");
            let name = format!("line.{}.{key}.cost", l["machine"].as_str().unwrap());
            assert_eq!(
                cents(&figs, &name),
                l["cost_cents"].as_i64().unwrap(),
                "{name}"
            );
        }
        checked += lines.len();
    }
    checked
}

/// Checks the page's packages (`package.POOL.PACKAGE.cost`) against `/api/v1/costs/jobs` at
/// the page's own `as_of` ([`crate::cost_jobs::expected_packages`]).
async fn check_packages(app: &TestApp, html: &str, month: Month) {
    let figs = figures(html);
    let as_of = attr(&figs["as_of"].tag, "datetime").expect("as_of datetime");
    let shown: BTreeMap<String, i64> = figs
        .keys()
        .filter(|k| k.starts_with("package."))
        .map(|k| (k.clone(), cents(&figs, k)))
        .collect();
    let expected = crate::cost_jobs::expected_packages(app, month, &as_of).await;
    assert!(!expected.is_empty(), "the seeded month built packages");
    assert_eq!(shown, expected, "the page's packages are the jobs' figures");
}

/// Checks the funding page's plans section against `/api/v1/plans` at the page's own `as_of`:
/// every fund with plans, each plan's monthly cost, cover, funded mark and runway if adopted;
/// returns how many figures.
async fn check_plans_against_api(app: &TestApp, html: &str) -> usize {
    let figs = figures(html);
    let as_of = attr(&figs["as_of"].tag, "datetime").expect("as_of datetime");
    let api: Value = app
        .get(&format!("/api/v1/plans?at={as_of}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["as_of"], as_of.as_str());
    let mut checked = 0;
    let mut api_plans = BTreeSet::new();
    for f in api["funds"].as_array().expect("funds") {
        let fund = f["fund"].as_str().unwrap();
        let plans = f["plans"].as_array().unwrap();
        if plans.is_empty() {
            assert!(
                !figs.contains_key(&format!("plans.{fund}.income30")),
                "fund {fund} has no plans: not in the section"
            );
            continue;
        }
        for field in ["income30", "burn30"] {
            assert_eq!(
                cents(&figs, &format!("plans.{fund}.{field}")),
                f[format!("{field}_cents")].as_i64().unwrap(),
                "plans of {fund}: {field} on the page vs /api/v1/plans"
            );
            checked += 1;
        }
        for p in plans {
            let slug = p["slug"].as_str().unwrap();
            api_plans.insert(slug.to_string());
            assert_eq!(
                cents(&figs, &format!("plan.{slug}.monthly")),
                p["monthly_cents"].as_i64().unwrap(),
                "plan {slug} monthly"
            );
            let cover = &figs[&format!("plan.{slug}.covered_percent")];
            let pct = p["covered_percent"].as_i64().unwrap();
            let funded = p["funded"].as_bool().unwrap();
            assert_eq!(cover.value.parse::<i64>().ok(), Some(pct), "plan {slug}");
            assert_eq!(attr(&cover.tag, "data-funded"), Some(funded.to_string()));
            let shown = if funded {
                "funded".to_string()
            } else {
                format!("{pct} % covered")
            };
            assert_eq!(cover.text, shown, "plan {slug} as a reader sees it");
            let runway = &figs[&format!("plan.{slug}.runway_if_adopted_days")];
            assert_eq!(
                runway.value.parse::<i64>().ok(),
                p["runway_if_adopted_days"].as_i64(),
                "plan {slug} runway if adopted"
            );
            checked += 4;
        }
    }
    let page_plans: BTreeSet<String> = figs
        .keys()
        .filter_map(|k| Some(k.strip_prefix("plan.")?.split('.').next()?.to_string()))
        .collect();
    assert_eq!(page_plans, api_plans, "the page shows every plan, no other");
    assert!(!api_plans.is_empty(), "the seeded config has plans");
    checked
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    res.text().await.unwrap()
}

/// What no public page may show, and how outside names must appear.
fn assert_public_and_escaped(html: &str) {
    assert!(
        html.contains(SCRIPT_DONOR_SERVED),
        "the script donor is shown as text"
    );
    assert!(!html.contains("<script"), "no script element on the page");
    assert!(
        !html.contains("javascript:"),
        "a javascript: profile is never a link"
    );
    assert!(
        !html.contains(HIDDEN_NAME),
        "an anonymous donor's name is never shown"
    );
    assert!(!html.contains("opencollective.com/hidden"));
    assert!(!html.contains("donor.invalid"), "no email, no description");
    assert!(html.contains(">Anonymous<"));
}

db_test!(
    pages_show_the_api_figures_to_the_cent,
    CONFIG,
    |app| async move {
        seed(&app).await;
        seed_expenses(&app).await;
        let cur = this_month();
        let html = page(&app, "/").await;
        let n = check_against_api(&app, &html, cur, false).await;
        assert!(n >= 15, "{n} figures checked");
        // Cash beside the books' balance, and last month's invoices against the model.
        let n = check_recon_against_api(&app, &html, cur, false).await;
        assert!(n >= 8, "{n} reconciliation figures checked");
        // The plans section, as served (no JavaScript): the API's figures too.
        let n = check_plans_against_api(&app, &html).await;
        assert!(n >= 16, "{n} plan figures checked");
        assert!(html.contains(
            "<a href=\"https://example.org/plans/gpu-test-runner\">A GPU machine to test CUDA at run time</a>"
        ));
        let figs = figures(&html);
        // This month's column of the 12-month history is this month's figures.
        assert_eq!(
            cents(&figs, &format!("history.{cur}.raised")),
            cents(&figs, "raised.net")
        );
        assert_eq!(
            cents(&figs, &format!("history.{cur}.spent")),
            cents(&figs, "costs.total")
        );
        let history = figs
            .keys()
            .filter(|k| k.starts_with("history.") && k.ends_with(".raised"));
        assert_eq!(history.count(), 12, "twelve months in the chart's table");
        assert!(html.contains("<svg class=\"chart\" role=\"img\""));
        assert_public_and_escaped(&html);
        assert!(html.contains(
            "<a href=\"https://opencollective.com/ada\" rel=\"nofollow ugc\">Ada Lovelace</a>"
        ));
        assert!(html.contains("<form class=\"subscribe\" method=\"post\" action=\"/subscribe\">"));
        assert!(html.contains("type=\"email\" name=\"email\" required"));
        // The gate's state of each pool, with its reason.
        assert!(
            html.contains("data-pool=\"cuda\""),
            "the cuda pool's gate is shown"
        );
        // ... quoting the same books as the figures beside it: the page refreshed the gate
        // before computing them, so the gate's answer now gives the same reason.
        let gate: Value = app
            .get("/api/v1/gate/nixpkgs/cuda")
            .await
            .json()
            .await
            .unwrap();
        let figs = figures(&html);
        let as_of = attr(&figs["as_of"].tag, "datetime").expect("as_of datetime");
        let funds: Value = app
            .get(&format!("/api/v1/funds?month={cur}&at={as_of}"))
            .await
            .json()
            .await
            .unwrap();
        let cuda = funds["funds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["slug"] == "cuda")
            .unwrap();
        assert_eq!(
            gate["fund_balance_cents"], cuda["balance_cents"],
            "the pool's state was decided on the page's books"
        );
        let reason = gate["reason"].as_str().unwrap();
        let served = reason.replace('\'', "&#39;").replace('"', "&#34;");
        assert!(
            html.contains(&served),
            "the page shows the gate's reason {reason:?}"
        );

        // Last month's report: complete, every cost line.
        let prev = cur.prev();
        let html = page(&app, &format!("/reports/{prev}")).await;
        let n = check_against_api(&app, &html, prev, true).await;
        assert!(n >= 15, "{n} figures checked");
        assert!(html.contains("Grace Hopper"));
        // Its invoices against the model: build03 invoiced, gpu01 not; the domain fee listed,
        // its payee shown as text.
        let n = check_recon_against_api(&app, &html, prev, true).await;
        assert!(n >= 14, "{n} reconciliation figures checked");
        assert!(html.contains("data-recon-machine=\"build03\""));
        assert!(html.contains("data-recon-machine=\"gpu01\" data-status=\"unbilled\""));
        assert!(html.contains("data-expense=\"dns-1\""));
        assert!(html.contains(SCRIPT_PAYEE_SERVED) && html.contains(FORMULA_DESCRIPTION));
        assert!(!html.contains("<script"));
        let figs = figures(&html);
        assert_eq!(
            attr(&figs["as_of"].tag, "datetime").unwrap(),
            cur.start().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "a past month is as of its end"
        );
        // This month's report, so far.
        let html = page(&app, &format!("/reports/{cur}")).await;
        check_against_api(&app, &html, cur, true).await;
        check_recon_against_api(&app, &html, cur, true).await;
        assert!(html.contains("data-expense=\"ci-1\""));
        assert!(html.contains("This month is not over"));
        assert_public_and_escaped(&html);
        assert!(
            html.contains("Linus"),
            "every sponsor of the month is listed"
        );

        // The index lists every month from the ledger's start, with the same history.
        let html = page(&app, "/reports").await;
        let figs = figures(&html);
        assert!(figs.contains_key("history.2025-01.spent"));
        assert!(html.contains(&format!("href=\"/reports/{cur}.csv\"")));
        let funds: Value = app
            .get(&format!("/api/v1/funds?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        let net: i64 = funds["funds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["net_cents"].as_i64().unwrap())
            .sum();
        assert_eq!(cents(&figs, &format!("history.{prev}.raised")), net);
        let costs: Value = app
            .get(&format!("/api/v1/costs?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            cents(&figs, &format!("history.{prev}.spent")),
            costs["total_cents"].as_i64().unwrap()
        );
    }
);

db_test!(
    month_csv_has_every_cost_line_and_donation,
    CONFIG,
    |app| async move {
        seed(&app).await;
        seed_expenses(&app).await;
        let prev = this_month().prev();
        let res = app.get(&format!("/reports/{prev}.csv")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(
            res.headers()["content-disposition"].to_str().unwrap(),
            format!("attachment; filename=\"buildfund-{prev}.csv\"")
        );
        let text = res.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, buildfund_jobs::report::CSV_COLUMNS);
        let rows: Vec<BTreeMap<String, String>> = reader
            .records()
            .map(|r| {
                header
                    .iter()
                    .cloned()
                    .zip(r.unwrap().iter().map(String::from))
                    .collect()
            })
            .collect();
        let costs: Value = app
            .get(&format!("/api/v1/costs?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        let cost_rows: Vec<_> = rows.iter().filter(|r| r["record"] == "cost").collect();
        assert_eq!(cost_rows.len(), costs["lines"].as_array().unwrap().len());
        let total: i64 = cost_rows
            .iter()
            .map(|r| r["amount_cents"].parse::<i64>().unwrap())
            .sum();
        assert_eq!(total, costs["total_cents"].as_i64().unwrap());
        for r in &cost_rows {
            assert_eq!(
                r["amount"],
                format_cents(r["amount_cents"].parse().unwrap())
            );
        }
        let donations: Value = app
            .get(&format!("/api/v1/donations?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        let donation_rows: Vec<_> = rows.iter().filter(|r| r["record"] == "donation").collect();
        assert_eq!(donation_rows.len(), 2);
        let net: i64 = donation_rows
            .iter()
            .map(|r| r["amount_cents"].parse::<i64>().unwrap())
            .sum();
        assert_eq!(net, donations["net_cents"].as_i64().unwrap());
        // A row per job, summing to the jobset lines.
        let job_rows: Vec<_> = rows.iter().filter(|r| r["record"] == "job").collect();
        let jobs: i64 = job_rows
            .iter()
            .map(|r| r["amount_cents"].parse::<i64>().unwrap())
            .sum();
        let jobset_lines: i64 = cost_rows
            .iter()
            .filter(|r| r["idle"] == "false")
            .map(|r| r["amount_cents"].parse::<i64>().unwrap())
            .sum();
        assert_eq!((job_rows.len(), jobs), (3, jobset_lines));
        // A row per machine of the month's reconciliation, its figures the API's.
        let recon: Value = app
            .get(&format!("/api/v1/reconciliation?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        let recon_rows: Vec<_> = rows
            .iter()
            .filter(|r| r["record"] == "reconciliation")
            .collect();
        let machines = recon["machines"].as_array().unwrap();
        assert_eq!(recon_rows.len(), machines.len());
        assert!(machines.len() >= 2, "build03 and gpu01 ran last month");
        for (r, m) in recon_rows.iter().zip(machines) {
            assert_eq!(r["machine"], m["machine"].as_str().unwrap());
            for field in ["modeled", "billed", "difference", "tolerance"] {
                assert_eq!(
                    r[&format!("{field}_cents")],
                    m[format!("{field}_cents")].as_i64().unwrap().to_string(),
                    "{field} of {}",
                    r["machine"]
                );
            }
            assert_eq!(r["status"], m["status"].as_str().unwrap());
        }
        // A row per expense record paid in the month, as /api/v1/expenses lists them; outside
        // text defused.
        let expenses: Value = app
            .get(&format!("/api/v1/expenses?month={prev}"))
            .await
            .json()
            .await
            .unwrap();
        let expense_rows: Vec<_> = rows.iter().filter(|r| r["record"] == "expense").collect();
        let listed = expenses["expenses"].as_array().unwrap();
        assert_eq!(expense_rows.len(), listed.len());
        assert!(!listed.is_empty(), "the domain fee was paid last month");
        for (r, e) in expense_rows.iter().zip(listed) {
            assert_eq!(r["id"], e["id"].as_str().unwrap());
            assert_eq!(
                r["amount_cents"],
                e["total_cents"].as_i64().unwrap().to_string()
            );
            assert_eq!(
                r["fees_cents"],
                e["fees_cents"].as_i64().unwrap().to_string()
            );
            assert_eq!(r["fund"], e["fund"].as_str().unwrap_or(""));
        }
        let dns = expense_rows.iter().find(|r| r["id"] == "dns-1").unwrap();
        assert_eq!(dns["payee"], SCRIPT_PAYEE);
        assert_eq!(dns["description"], format!("'{FORMULA_DESCRIPTION}"));
        assert_eq!(dns["amount"], "12.35");
        assert_eq!(
            rows.len(),
            cost_rows.len()
                + job_rows.len()
                + donation_rows.len()
                + recon_rows.len()
                + expense_rows.len()
        );

        // This month: outside names are data here (quoted by the CSV writer, never altered),
        // anonymous contributors stay anonymous.
        let text = app
            .get(&format!("/reports/{}.csv", this_month()))
            .await
            .text()
            .await
            .unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let names: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[10].to_string())
            .filter(|n| !n.is_empty())
            .collect();
        assert!(names.iter().any(|n| n == SCRIPT_DONOR), "{names:?}");
        // A name that starts a formula is kept, behind a `'` so a spreadsheet shows it as text.
        assert!(
            names.iter().any(|n| *n == format!("'{FORMULA_DONOR}")),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with('=')), "{names:?}");
        assert!(names.iter().any(|n| n == "Anonymous"));
        assert!(!text.contains(HIDDEN_NAME) && !text.contains("donor.invalid"));
    }
);

db_test!(
    pages_answer_bad_months_with_an_html_page,
    CONFIG,
    |app| async move {
        let next = this_month().next();
        for (path, status, says) in [
            ("/reports/2026-13".to_string(), 400, "is not a month"),
            ("/reports/last-month".to_string(), 400, "is not a month"),
            ("/reports/2024-12".to_string(), 404, "no report for 2024-12"),
            (format!("/reports/{next}"), 404, "no report for"),
            (
                "/reports/2024-12.csv".to_string(),
                404,
                "no report for 2024-12",
            ),
        ] {
            let res = app.get(&path).await;
            assert_eq!(res.status(), status, "{path}");
            assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
            let body = res.text().await.unwrap();
            assert!(body.to_lowercase().contains(says), "{path}: {body}");
            assert!(body.contains("<h1>"), "{path}: a page, not JSON");
        }
    }
);

db_test!(pages_are_cached_with_validators, CONFIG, |app| async move {
    seed(&app).await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let last_modified = res.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    let before = figures(&res.text().await.unwrap())["raised.net"]
        .value
        .clone();

    let again = app.get_with_header("/", "if-none-match", &etag).await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.text().await.unwrap().is_empty());
    let since = app
        .get_with_header("/", "if-modified-since", &last_modified)
        .await;
    assert_eq!(since.status(), 304);
    let other = app
        .get_with_header("/", "if-none-match", "\"something-else\"")
        .await;
    assert_eq!(other.status(), 200);
    let head = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert!(head.text().await.unwrap().is_empty());

    // A donation recorded on this instance shows at once, under a new ETag.
    let admin = app.token("admin").await;
    let at = Utc::now() - Duration::seconds(1);
    let res = app
        .client
        .post(app.url("/api/v1/donations"))
        .bearer_auth(&admin)
        .json(
            &json!({"idempotency_key": "bank-1", "occurred_at": at.to_rfc3339(),
                      "account": "nixos", "contributor_name": "ACME", "anonymous": false,
                      "amount_cents": 20000, "fees_cents": 0, "currency": "EUR"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app.get_with_header("/", "if-none-match", &etag).await;
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
    let html = res.text().await.unwrap();
    let after: i64 = figures(&html)["raised.net"].value.parse().unwrap();
    assert_eq!(after, before.parse::<i64>().unwrap() + 20000);
    assert!(html.contains("ACME"));
});

// ---------------------------------------------------------------------------------------------
// Headless Chromium.

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed, so the browser test cannot run: install Debian's \
                 package (apt-get install -y chromium; scripts/test and .ci/run do) or set \
                 CHROMIUM to its binary"
            )
        })
}

/// `target/test-artifacts`, beside the profile directory this test binary runs from.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn run_chromium(args: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finished within 2 minutes")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

db_test!(
    chromium_renders_the_funding_page,
    CONFIG,
    |app| async move {
        seed(&app).await;
        seed_expenses(&app).await;
        let url = app.url("/");
        let out = run_chromium(&["--dump-dom".into(), url.clone()]).await;
        let dom = String::from_utf8(out.stdout).unwrap();
        assert!(dom.contains("Where the money goes"), "{dom}");
        // The figures the browser shows are the API's, to the cent.
        let n = check_against_api(&app, &dom, this_month(), false).await;
        assert!(n >= 15, "{n} figures checked");
        // Cash and last month's reconciliation as the browser shows them: the API's.
        let n = check_recon_against_api(&app, &dom, this_month(), false).await;
        assert!(n >= 8, "{n} reconciliation figures checked");
        // What the money built, as the browser shows it: the jobs' figures, by package.
        assert!(dom.contains("What the money built"), "{dom}");
        check_packages(&app, &dom, this_month()).await;
        // The plans section as the browser shows it: the API's figures.
        assert!(dom.contains("What more money would build"), "{dom}");
        let n = check_plans_against_api(&app, &dom).await;
        assert!(n >= 16, "{n} plan figures checked");
        // The donor named <script>alert(1)</script> is text in the DOM, not an element.
        assert!(
            dom.contains(SCRIPT_DONOR_ESCAPED),
            "the script donor's name is text"
        );
        assert!(
            !dom.contains("<script"),
            "no script element in the rendered DOM"
        );
        assert!(!dom.contains(HIDDEN_NAME));

        // This month's report as the browser has it: every cost line too.
        let report_url = app.url(&format!("/reports/{}", this_month()));
        let out = run_chromium(&["--dump-dom".into(), report_url.clone()]).await;
        let dom = String::from_utf8(out.stdout).unwrap();
        check_against_api(&app, &dom, this_month(), true).await;
        check_recon_against_api(&app, &dom, this_month(), true).await;
        assert!(dom.contains(SCRIPT_DONOR_ESCAPED) && !dom.contains("<script"));
        assert!(
            dom.contains(SCRIPT_PAYEE_ESCAPED),
            "the script payee's name is text"
        );
        assert!(dom.contains("What the money built"), "{dom}");
        check_packages(&app, &dom, this_month()).await;

        // Last month's report as the browser has it: its invoices against the model.
        let out = run_chromium(&[
            "--dump-dom".into(),
            app.url(&format!("/reports/{}", this_month().prev())),
        ])
        .await;
        let dom = String::from_utf8(out.stdout).unwrap();
        let n = check_recon_against_api(&app, &dom, this_month().prev(), true).await;
        assert!(n >= 14, "{n} reconciliation figures checked");
        assert!(dom.contains(SCRIPT_PAYEE_ESCAPED) && !dom.contains("<script"));

        let dir = artifacts_dir();
        let backend = format!("{:?}", app.backend).to_lowercase();
        for (name, size) in [
            ("desktop", "1280,2000"),
            ("phone", "390,1600"),
            // The whole page, to look at the parts below the first screens.
            ("desktop-long", "1280,2800"),
            ("report-phone", "390,2400"),
        ] {
            let path = dir.join(format!("funding-page-{backend}-{name}.png"));
            let _ = std::fs::remove_file(&path);
            let target = if name.starts_with("report") {
                &report_url
            } else {
                &url
            };
            run_chromium(&[
                format!("--screenshot={}", path.display()),
                format!("--window-size={size}"),
                target.clone(),
            ])
            .await;
            let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is a PNG",
                path.display()
            );
            assert!(
                png.len() > 20_000,
                "{} is not blank ({} bytes)",
                path.display(),
                png.len()
            );
            println!("screenshot: {}", path.display());
        }
    }
);

const EARLY_LEDGER: &str = r#"
ledger_start = "2020-01-01"
[[funds]]
slug = "general"
default = true
"#;

db_test!(
    report_index_starts_with_the_first_data,
    EARLY_LEDGER,
    |app| async move {
        // Nothing yet: only this month, not six years of empty months.
        let html = page(&app, "/reports").await;
        let months: Vec<String> = figures(&html)
            .keys()
            .filter_map(|k| {
                Some(
                    k.strip_prefix("history.")?
                        .strip_suffix(".spent")?
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(months, [this_month().to_string()]);
        // Older months still have their (empty) report.
        assert_eq!(app.get("/reports/2020-01").await.status(), 200);

        // A donation two months ago: the index starts there.
        let admin = app.token("admin").await;
        let two_ago = this_month().prev().prev();
        let res = app
            .post_donation(
                Some(&admin),
                &json!({"idempotency_key": "early", "occurred_at": two_ago.start().to_rfc3339(),
                      "contributor_name": "Early Bird", "anonymous": false,
                      "amount_cents": 1000, "fees_cents": 0, "currency": "EUR"}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let html = page(&app, "/reports").await;
        let figs = figures(&html);
        let months: Vec<&String> = figs.keys().filter(|k| k.ends_with(".spent")).collect();
        assert_eq!(months.len(), 3, "{months:?}");
        assert_eq!(cents(&figs, &format!("history.{two_ago}.raised")), 1000);
    }
);

/// PostgreSQL going away: a page computed before still answers (with the instant of its
/// figures), one never computed is a 503 HTML page, and pages come back with the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_during_a_database_outage() {
    let setup = TestApp::builder(CONFIG).database_behind_proxy();
    run(Backend::Postgres, setup, |app| async move {
        let proxy = app.proxy();
        let before = page(&app, "/").await;

        proxy.cut();
        assert_eq!(
            page(&app, "/").await,
            before,
            "the computed page still answers"
        );
        let res = app.get(&format!("/reports/{}", this_month())).await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert!(res.text().await.unwrap().contains("try again shortly"));

        proxy.restore();
        let mut status = 0;
        for _ in 0..50 {
            status = app
                .get(&format!("/reports/{}", this_month()))
                .await
                .status()
                .as_u16();
            if status == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(status, 200, "the report answers once the database is back");
    })
    .await;
}

db_test!(
    a_renamed_sponsor_is_one_sponsor_under_its_latest_name,
    CONFIG,
    |app| async move {
        let at = Utc::now() - Duration::hours(2);
        for (id, name, cents) in [("r1", "Old Name Ltd", 1000), ("r2", "New Name Ltd", 500)] {
            let url = format!("https://opencollective.com/acme?{id}");
            let mut d = donation(id, at, "nixos", Some(name), Some(&url), false, cents, 0);
            d.contributor_slug = Set(Some("acme".into()));
            d.insert(&app.db).await.unwrap();
        }
        let s = buildfund_jobs::books::sponsors::sponsors(&app.db, at, Utc::now(), None)
            .await
            .unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].name, "New Name Ltd");
        assert_eq!(
            s[0].url.as_deref(),
            Some("https://opencollective.com/acme?r2")
        );
        assert_eq!((s[0].net_cents, s[0].donations), (1500, 2));
        let html = app.get("/").await.text().await.unwrap();
        // In the sponsor lists under the latest name (each donation keeps its own in the
        // recent donations).
        let lists =
            &html[html.find("id=\"sponsors-h\"").unwrap()..html.find("id=\"recent-h\"").unwrap()];
        assert!(
            lists.contains("New Name Ltd") && !lists.contains("Old Name Ltd"),
            "{lists}"
        );
    }
);

/// A pool that is open until an admin pauses it.
const PAUSABLE: &str = r#"
currency = "EUR"
ledger_start = "2025-01-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "2500.00"

[[pools]]
slug = "cuda"
fund = "general"
jobsets = ["nixpkgs:cuda*"]
"#;

db_test!(
    admin_names_stay_out_of_the_pages_and_the_email,
    PAUSABLE,
    |app| async move {
        let open: Value = app
            .get("/api/v1/gate/nixpkgs/cuda")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(open["state"], "open", "{open}");
        let (admin, _) = buildfund_jobs::api_tokens::create(
            &app.db,
            "admin".parse().expect("scope"),
            "alice-admin",
            app.clock.now(),
        )
        .await
        .unwrap();
        let res = app
            .client
            .post(app.url("/api/v1/gate/pools/cuda/pause"))
            .bearer_auth(&admin)
            .json(&json!({"reason": "driver upgrade"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        // The pause and the state change it caused are dated now; pages are as of whole
        // seconds, so wait for the next one.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let cur = this_month();

        let html = page(&app, "/").await;
        assert!(
            !html.contains("alice-admin"),
            "the funding page names the admin"
        );
        assert!(
            html.contains("paused by an admin: driver upgrade"),
            "the pool's reason says an admin paused it"
        );
        let html = page(&app, &format!("/reports/{cur}")).await;
        assert!(
            !html.contains("alice-admin"),
            "the report page names the admin"
        );
        assert!(
            html.contains("<td>paused by an admin</td>"),
            "the pause event"
        );
        assert!(
            html.contains("paused by an admin: driver upgrade"),
            "the state change's reason"
        );

        // The email, as `report preview` renders both parts.
        let dir = tempfile::tempdir().unwrap();
        let out = app.cli(&[
            "report",
            "preview",
            "--month",
            &cur.to_string(),
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for ext in ["txt", "html"] {
            let part =
                std::fs::read_to_string(dir.path().join(format!("report-{cur}.{ext}"))).unwrap();
            assert!(
                !part.contains("alice-admin"),
                "the email ({ext}) names the admin"
            );
            assert!(
                part.contains("paused by an admin: driver upgrade"),
                "the email ({ext}) says an admin paused the pool:\n{part}"
            );
        }

        // An override is worded with the token's name too.
        let until =
            (Utc::now() + Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let res = app
            .client
            .post(app.url("/api/v1/gate/pools/cuda/override"))
            .bearer_auth(&admin)
            .json(&json!({"reason": "release", "until": until}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let html = page(&app, "/").await;
        assert!(
            !html.contains("alice-admin"),
            "the funding page names the admin"
        );
        assert!(
            html.contains(&format!(
                "allowed by an admin&#39;s override until {until}: release"
            )),
            "the pool's reason says an admin allowed it"
        );

        // The audit, for scheduler and admin tokens, keeps who did it.
        let scheduler = app.token("scheduler").await;
        let audit: Value = app
            .get_with_token("/api/v1/gate/events?pool=cuda", &scheduler)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            audit["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["actor"] == "alice-admin")
                .count()
                == 2,
            "{audit}"
        );
    }
);
