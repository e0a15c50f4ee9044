//! Random histories against the stored books: for each seed, a random sequence of build-step
//! batches, late steps into stored months, corrections of steps (moved, or on another machine
//! or jobset), donations, refunds and corrected donations, with the store brought up to date
//! now and then under the server's configuration and under a second one that differs in what
//! the fingerprint holds, and parts of it forgotten, so that at every read some months and
//! days are stored fresh, some stale, some missing, of two fingerprints at once. Twice a seed,
//! Expenses (invoices of machines by tag in any letter case, other expenses, reversals of
//! earlier ones and late invoices into stored months) are written too. Twice a seed,
//! every figure (each month's costs, funds, jobs and reconciliation, and at random instants the standing, the
//! cost to date, the gate and the lines since January, under both configurations, and a few
//! HTTP answers of the server) read with whatever is stored then equals the same figure
//! computed with nothing stored, on both databases. The server's keeper may store months
//! meanwhile; that changes nothing, as every read must give the figure from scratch.
//!
//! The seeds are 1 to `BOOKS_HISTORY_CASES` (default 6), run in order on one database; a
//! failure names its seed and operation, and `BOOKS_HISTORY_CASES=<seed>` replays the same
//! histories.
use buildfund_jobs::books::donations::{self, DonationRecord};
use buildfund_jobs::books::expenses::{self, ExpenseKind, ExpenseRecord};
use buildfund_jobs::books::job_costs::{self, JobsFilter};
use buildfund_jobs::books::reconciliation;
use buildfund_jobs::books::store::{self, MonthState};
use buildfund_jobs::books::{costs, funds};
use buildfund_jobs::bounds::At;
use buildfund_jobs::calendar::{from_unix, parse_rfc3339, rfc3339, Month, Span};
use buildfund_jobs::{gate, Config};
use buildfund_tests::{db_test, TestApp};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use serde_json::{json, Value};

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-09"
idle = "separate"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"
reserve = "50.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
opening_balance = "100.00"
tiers = ["gpu-sponsor"]
accounts = ["nix-cuda"]

[[funds]]
slug = "infra"
name = "Infrastructure"
accounts = ["nix-infra"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "200.00"

[[pools]]
slug = "release"
fund = "infra"
jobsets = ["nixos:release-*"]
monthly_budget = "50.00"

[[machines]]
name = "build03"
aliases = ["build03.example.org"]
slots = 2
monthly = "300.00"
invoice_tags = ["build03", "hetzner"]

[[machines]]
name = "hourly01"
hourly = "0.37"
idle_fund = "infra"
billing = "advance"
billing_tolerance = "1.00"
invoice_tags = ["hourly01", "Hetzner"]
[[machines.changes]]
from = "2026-05-17"
hourly = "0.52"
[[machines.changes]]
from = "2026-08-01"
slots = 2

[[machines]]
name = "gpu01"
metered = "2.40"

[[machines]]
name = "late01"
slots = 3
monthly = "99.99"
active_from = 2026-03-10
active_until = 2026-09-20T12:00:00Z
idle_fund = "cuda"
billing = "none"
invoice_tags = ["late"]
"#;

/// What the second configuration changes (two of these per seed): each enters the fingerprint.
const VARIANTS: &[(&str, &str)] = &[
    ("\"separate\"", "\"proportional\""),              // idle
    ("\"300.00\"", "\"275.50\""),                      // build03's price
    ("nixpkgs:cuda*", "nixpkgs:cuda-*"),               // the cuda pool's pattern
    ("\"100.00\"", "\"40.00\""),                       // cuda's opening balance
    ("2026-05-17", "2026-04-03"),                      // hourly01's change
    ("2026-01-09", "2026-02-20"),                      // ledger_start
    ("metered", "hourly"),                             // gpu01's cost model
    ("[\"nix-infra\"]", "[\"nix-infra\", \"nixos\"]"), // routing
];

/// The configured machines, an alias, and one that is not configured.
const MACHINES: &[&str] = &[
    "build03",
    "build03.example.org",
    "hourly01",
    "gpu01",
    "late01",
    "ghost01",
];
const JOBSETS: &[(&str, &str)] = &[
    ("nixpkgs", "cuda"),
    ("nixpkgs", "cuda-tests"),
    ("nixpkgs", "trunk"),
    ("nixos", "release-26.05"),
    ("hydra", "master"),
];
/// Job names; "" sends no job.
const JOBS: &[&str] = &["torch", "hello", "cudnn", "nixos-test", "~unnamed", ""];
const ACCOUNTS: &[(&str, Option<&str>)] = &[
    ("nixos", None),
    ("nix-cuda", None),
    ("nixos", Some("gpu-sponsor")),
    ("nix-infra", None),
    ("elsewhere", Some("bronze")),
];
const DAY: i64 = 86_400;

fn ts(s: &str) -> i64 {
    parse_rfc3339(s).unwrap().timestamp()
}

fn month(n: u64) -> Month {
    Month::parse(&format!("2026-{n:02}")).unwrap()
}

/// splitmix64: small, deterministic, good enough to pick histories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// In `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// What a seed has written so far, and what it did.
#[derive(Default)]
struct History {
    seed: u64,
    steps: Vec<Value>,
    donations: Vec<String>,
    expenses: Vec<ExpenseRecord>,
    builds: i64,
    log: Vec<String>,
}

fn random_step(rng: &mut Rng, build: i64) -> Value {
    let (lo, hi) = (ts("2026-01-01T00:00:00Z"), ts("2026-11-30T12:00:00Z"));
    // At or hours before a month's end or a midnight, or anywhere.
    let before = |rng: &mut Rng, hours: i64| match rng.below(4) {
        0 => 0,
        _ => rng.range(1, hours * 3600),
    };
    let start = match rng.below(4) {
        0 => month(2 + rng.below(11)).start().timestamp() - before(rng, 8),
        1 => lo + rng.range(1, 334) * DAY - before(rng, 3),
        _ => rng.range(lo, hi),
    };
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.range(1, 4 * 3600),
        7 | 8 => rng.range(3600, 20 * 3600),
        _ => rng.range(DAY, 2 * DAY),
    };
    // Half the steps of no length are at a midnight, the edge of two stored days.
    let start = match len == 0 && rng.below(2) == 0 {
        true => start - start.rem_euclid(DAY),
        false => start,
    };
    let (project, jobset) = *rng.pick(JOBSETS);
    let mut step = json!({"build": build, "step": rng.range(1, 3), "project": project,
        "jobset": jobset, "machine": rng.pick(MACHINES), "start": start, "stop": start + len});
    let job = *rng.pick(JOBS);
    if !job.is_empty() {
        step["job"] = json!(job);
    }
    step
}

fn random_donation(rng: &mut Rng, id: &str) -> DonationRecord {
    let at = rng.range(ts("2025-12-20T00:00:00Z"), ts("2026-11-30T23:00:00Z"));
    let (account, tier) = *rng.pick(ACCOUNTS);
    let gross = match rng.below(4) {
        0 => -rng.range(100, 3_000),
        _ => rng.range(500, 50_000),
    };
    super::books_store::donation(id, from_unix(at), account, tier, gross)
}

/// Expense tags: machines' invoice tags in other letter case, a tag two machines claim, the
/// tag of a machine billed "none", and others.
const TAGS: &[&str] = &[
    "build03", "BUILD03", "HOURLY01", "hetzner", "late", "domain", "ci",
];

/// An expense paid at a random instant (or inside `month` for a late one), incurred up to 40
/// days before.
fn random_expense(rng: &mut Rng, id: &str, month: Option<Month>) -> ExpenseRecord {
    let (lo, hi) = match month {
        Some(m) => (m.span().start, m.span().end),
        None => (ts("2025-12-20T00:00:00Z"), ts("2026-11-30T23:00:00Z")),
    };
    let paid = rng.range(lo, hi);
    let incurred = paid - rng.range(0, 40) * DAY;
    let incurred = incurred - incurred.rem_euclid(DAY);
    let tags: Vec<String> = (0..rng.below(3))
        .map(|_| rng.pick(TAGS).to_string())
        .collect();
    let (account, _) = *rng.pick(ACCOUNTS);
    let amount = rng.range(100, 40_000);
    ExpenseRecord {
        source: "opencollective".into(),
        external_id: id.into(),
        kind: ExpenseKind::Expense,
        paid_at: from_unix(paid),
        account_slug: account.into(),
        payee: Some("payee".into()),
        tags,
        description: None,
        incurred_at: from_unix(incurred),
        amount_cents: amount,
        fees_cents: rng.range(0, 300),
        original_amount: format!("{amount}"),
        original_currency: "EUR".into(),
        expense_ref: Some(format!("e-{id}")),
        reversal_of: None,
    }
}

/// Deletes the stored months matching `months` and the stored days matching `days` (SQL
/// conditions), under the books lock like a keeper storing them.
async fn forget(app: &TestApp, months: &str, days: &str) {
    let txn = buildfund_jobs::db::begin_write(&app.db).await.unwrap();
    buildfund_jobs::db::take_lock(&txn, "books").await.unwrap();
    let of_months = format!("book_month_id IN (SELECT id FROM book_months WHERE {months})");
    for (table, condition) in [
        ("book_month_lines", of_months.as_str()),
        ("book_month_funds", of_months.as_str()),
        ("book_month_jobs", of_months.as_str()),
        ("book_months", months),
        ("book_day_busy", days),
        ("book_days", days),
    ] {
        txn.execute_unprepared(&format!("DELETE FROM {table} WHERE {condition}"))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
}

async fn ensure(app: &TestApp, config: &Config) -> store::Ensured {
    store::ensure(&app.db, config, Utc::now(), |_, _, _| {})
        .await
        .unwrap()
}

/// What one read point asks about: three months at an instant inside them (the first two
/// also over HTTP), and instants (a month's start, one in the last day of a month, two
/// anywhere).
struct Plan {
    mids: Vec<(Month, DateTime<Utc>)>,
    instants: Vec<DateTime<Utc>>,
}

fn plan(rng: &mut Rng) -> Plan {
    let mids = (0..3)
        .map(|_| {
            let m = month(1 + rng.below(11));
            (m, from_unix(rng.range(m.span().start + 1, m.span().end)))
        })
        .collect();
    let last_day = month(1 + rng.below(11)).span().end;
    let (jan, dec) = (ts("2026-01-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
    let instants = vec![
        month(2 + rng.below(11)).start(),
        from_unix(last_day - rng.range(1, DAY)),
        from_unix(rng.range(jan, dec)),
        from_unix(rng.range(jan, dec)),
    ];
    Plan { mids, instants }
}

/// Labelled figures as text, in reading order.
type Figures = Vec<(String, String)>;

fn js(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

/// Every figure of `plan` through the library under `cfg` as (label, JSON text): each month's
/// costs, funds and jobs, and at the plan's instants the standing, the cost to date, the gate
/// and the lines since January.
async fn figures_under(app: &TestApp, name: &str, cfg: &Config, plan: &Plan) -> Figures {
    let db = &app.db;
    let far = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let mut out = Vec::new();
    let whole = (1..=11).map(|n| (month(n), far));
    for (m, at) in whole.chain(plan.mids.iter().copied()) {
        let at_s = rfc3339(at);
        if at == far {
            let c = costs::costs_report(db, cfg, m, At::new(far, far).unwrap())
                .await
                .unwrap();
            out.push((format!("{name} costs {m}"), js(&c)));
        }
        let (f, _) = funds::funds_month(db, cfg, m, at).await.unwrap();
        out.push((format!("{name} funds {m} at {at_s}"), js(&f)));
        let period = buildfund_jobs::calendar::Period::new(m, at, cfg.ledger_start);
        let r = reconciliation::reconciliation(db, cfg, &period)
            .await
            .unwrap();
        out.push((format!("{name} reconciliation {m} at {at_s}"), js(&r)));
        let filter = JobsFilter::default();
        let terms = period
            .window
            .map(|w| buildfund_jobs::books::terms::WindowTerms::prepare(cfg, w));
        let j = job_costs::month_job_list(db, cfg, &period, terms.as_ref(), &filter)
            .await
            .unwrap();
        out.push((format!("{name} jobs {m} at {at_s}"), js(&j)));
    }
    for &at in &plan.instants {
        let at_s = rfc3339(at);
        let st = funds::standing(db, cfg, at).await.unwrap();
        let standing = format!("{:?} {:?}", st.balance, st.cost_30_days);
        out.push((format!("{name} standing {at_s}"), standing));
        let to_date = costs::cost_to_date_by_fund(db, cfg, at).await.unwrap();
        out.push((
            format!("{name} cost to date {at_s}"),
            format!("{to_date:?}"),
        ));
        let cash = reconciliation::cash(
            db,
            cfg,
            &buildfund_jobs::calendar::Period::of(at, cfg.ledger_start),
        )
        .await
        .unwrap();
        out.push((format!("{name} cash {at_s}"), cash.to_string()));
        let g = gate::evaluate(db, cfg, at).await.unwrap();
        out.push((format!("{name} gate {at_s}"), js(&g.pools)));
        let span = Span::new(ts("2026-01-01T00:00:00Z"), at.timestamp());
        let parts = costs::span_lines(db, cfg, span, at).await.unwrap();
        out.push((format!("{name} span lines to {at_s}"), js(&parts)));
    }
    out
}

/// A few answers of the server (its own config), `as_of` left out.
async fn http_figures(app: &TestApp, plan: &Plan) -> Figures {
    let mut paths: Vec<String> = Vec::new();
    for (m, _) in &plan.mids[..2] {
        paths.push(format!("/api/v1/funds?month={m}"));
        paths.push(format!("/api/v1/costs?month={m}"));
        paths.push(format!("/api/v1/reconciliation?month={m}"));
    }
    for at in &plan.instants[..2] {
        paths.push(format!("/api/v1/gate/nixpkgs/cuda?at={}", rfc3339(*at)));
    }
    let mut out = Vec::new();
    for path in paths {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        let mut body: Value = res.json().await.unwrap();
        body.as_object_mut().unwrap().remove("as_of");
        out.push((format!("GET {path}"), body.to_string()));
    }
    out
}

/// Every figure of `plan`: under the server's config (`A`), under `b` (`B`), over HTTP; the
/// three read at once.
async fn figures(app: &TestApp, b: &Config, plan: &Plan) -> Figures {
    let (mut out, under_b, http) = tokio::join!(
        figures_under(app, "A", &app.config, plan),
        figures_under(app, "B", b, plan),
        http_figures(app, plan)
    );
    out.extend(under_b);
    out.extend(http);
    out
}

/// A read point: every figure with whatever is stored now, then with nothing stored; the store
/// is then brought up to date again under one configuration, both or neither.
async fn check(app: &TestApp, b: &Config, rng: &mut Rng, h: &mut History) {
    let plan = plan(rng);
    let with = figures(app, b, &plan).await;
    forget(app, "1 = 1", "1 = 1").await;
    let scratch = figures(app, b, &plan).await;
    let op = h.log.len() - 1;
    assert_eq!(with.len(), scratch.len());
    for ((label, a), (_, s)) in with.iter().zip(&scratch) {
        if a != s {
            // Where the two texts part, with some context.
            let at = a.bytes().zip(s.bytes()).take_while(|(x, y)| x == y).count();
            let near = |t: &str| t.get(at.saturating_sub(60)..).unwrap_or(t).to_string();
            panic!(
                "seed {seed}, after operation {op} ({what}): `{label}` read with the store \
                 differs from the same figure computed from scratch\n  with the store: {a}\n  \
                 from scratch:   {s}\n  they part at byte {at}:\n  with the store: …{}\n  \
                 from scratch:   …{}\nthe seed's operations: {log:#?}\n\
                 (BOOKS_HISTORY_CASES={seed} replays it)",
                near(a),
                near(s),
                seed = h.seed,
                what = h.log[op],
                log = h.log,
            );
        }
    }
    let (store_a, store_b) = (rng.below(2) == 0, rng.below(3) == 0);
    if store_a {
        ensure(app, &app.config).await;
    }
    if store_b {
        ensure(app, b).await;
    }
    h.log.push(format!(
        "read {} figures, then ensure A {store_a}, B {store_b}",
        with.len()
    ));
}

/// One operation of the history, chosen at random; returns what it did.
async fn operate(app: &TestApp, b: &Config, rng: &mut Rng, h: &mut History) -> String {
    let choice = if h.steps.is_empty() { 0 } else { rng.below(12) };
    match choice {
        0 | 1 => {
            let n = rng.range(15, 45);
            let batch: Vec<Value> = (0..n)
                .map(|_| {
                    h.builds += 1;
                    random_step(rng, h.seed as i64 * 100_000 + h.builds)
                })
                .collect();
            app.ingest_steps(&batch).await;
            h.steps.extend(batch);
            format!("a batch of {n} steps")
        }
        2 => {
            let status = store::books_status(&app.db, &app.config, Utc::now())
                .await
                .unwrap();
            let stored: Vec<Month> = status
                .months
                .iter()
                .filter(|(m, s)| *s == MonthState::Stored && *m <= month(11))
                .map(|(m, _)| *m)
                .collect();
            let m = match stored.is_empty() {
                true => month(1 + rng.below(11)),
                false => *rng.pick(&stored),
            };
            let span = m.span();
            h.builds += 1;
            let mut step = random_step(rng, h.seed as i64 * 100_000 + h.builds);
            let start = rng.range(span.start, span.end - 3600);
            step["start"] = json!(start);
            step["stop"] = json!(start + rng.range(0, 3 * 3600));
            app.ingest_steps(std::slice::from_ref(&step)).await;
            h.steps.push(step);
            format!("a late step into {m} (stored: {})", !stored.is_empty())
        }
        3 | 4 => {
            let mut picked: Vec<usize> = (0..rng.range(1, 5))
                .map(|_| rng.below(h.steps.len() as u64) as usize)
                .collect();
            picked.sort_unstable();
            picked.dedup();
            let mut changed = Vec::new();
            for &i in &picked {
                let s = &mut h.steps[i];
                let (start, stop) = (s["start"].as_i64().unwrap(), s["stop"].as_i64().unwrap());
                match rng.below(4) {
                    0 => {
                        let d = rng.range(-3 * DAY, 3 * DAY);
                        let d = d.min(ts("2026-11-30T12:00:00Z") - start);
                        s["start"] = json!(start + d);
                        s["stop"] = json!(stop + d);
                    }
                    1 => s["machine"] = json!(rng.pick(MACHINES)),
                    2 => s["jobset"] = json!(rng.pick(JOBSETS).1),
                    _ => s["stop"] = json!(start + rng.range(0, DAY)),
                }
                changed.push(s.clone());
            }
            app.ingest_steps(&changed).await;
            format!("a correction of {} steps", picked.len())
        }
        5 | 6 => {
            let mut records = Vec::new();
            for _ in 0..rng.range(1, 5) {
                let id = format!("s{}-d{}", h.seed, h.donations.len());
                records.push(random_donation(rng, &id));
                h.donations.push(id);
            }
            let corrected = rng.below(2) == 0;
            if corrected {
                let id = rng.pick(&h.donations).clone();
                records.push(random_donation(rng, &id));
            }
            donations::upsert(&app.db, &records, app.clock.now())
                .await
                .unwrap();
            let refunds = records.iter().filter(|r| r.gross_cents < 0).count();
            format!(
                "{} donations ({refunds} refunds, a correction: {corrected})",
                records.len()
            )
        }
        7 => format!("ensure A: {:?}", ensure(app, &app.config).await),
        8 => format!("ensure B: {:?}", ensure(app, b).await),
        9 | 10 => {
            // New expenses (one of them, at times, late: paid into a stored month), and at
            // times the reversal of an earlier one, paid later, with its tags and incurred_at.
            let mut records = Vec::new();
            for i in 0..rng.range(1, 4) {
                let id = format!("s{}-x{}", h.seed, h.expenses.len() + records.len());
                let late = match i == 0 && rng.below(2) == 0 {
                    true => Some(month(1 + rng.below(10))),
                    false => None,
                };
                records.push(random_expense(rng, &id, late));
            }
            let reversed = match h.expenses.is_empty() || rng.below(2) == 0 {
                true => None,
                false => {
                    let original = rng.pick(&h.expenses).clone();
                    let paid = original.paid_at.timestamp()
                        + rng
                            .range(1, 40 * DAY)
                            .min(ts("2026-11-30T23:00:00Z") - original.paid_at.timestamp())
                            .max(1);
                    records.push(ExpenseRecord {
                        external_id: format!("{}-rev", original.external_id),
                        kind: ExpenseKind::Reversal,
                        paid_at: from_unix(paid),
                        amount_cents: -original.amount_cents,
                        fees_cents: -original.fees_cents,
                        reversal_of: Some(original.external_id.clone()),
                        ..original.clone()
                    });
                    Some(original.external_id)
                }
            };
            expenses::upsert(&app.db, &records, Utc::now())
                .await
                .unwrap();
            let n = records.len();
            h.expenses.extend(records);
            format!("{n} expenses (a reversal of {reversed:?})")
        }
        _ => {
            let m = month(1 + rng.below(11));
            let from = ts("2026-01-01T00:00:00Z") + rng.range(0, 334) * DAY;
            let to = from + rng.range(1, 12) * DAY;
            let months = format!("month = '{m}'");
            forget(app, &months, &format!("day >= {from} AND day < {to}")).await;
            format!(
                "forget {m} and the days {} to {}",
                from_unix(from),
                from_unix(to)
            )
        }
    }
}

/// The second configuration of `seed`: two of [`VARIANTS`] applied to [`CONFIG`].
fn config_b(app: &TestApp, seed: u64) -> Config {
    // Seeds 1 to 4 apply every variant once; the next four pair them otherwise, and so on.
    let (k, n) = (seed as usize - 1, VARIANTS.len());
    let first = (2 * k) % n;
    let second = (first + 1 + 2 * (k / 4)) % n;
    let mut text = CONFIG.to_string();
    for (from, to) in [VARIANTS[first], VARIANTS[second]] {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    let mut b = Config::parse(&text, "config B").unwrap_or_else(|e| panic!("{e}"));
    b.database.url = app.db_url.clone();
    assert_ne!(store::fingerprint(&b), store::fingerprint(&app.config));
    b
}

db_test!(
    every_figure_equals_its_figure_from_scratch,
    CONFIG,
    |app| async move {
        let cases: u64 = std::env::var("BOOKS_HISTORY_CASES")
            .map(|v| v.parse().expect("BOOKS_HISTORY_CASES is a number"))
            .unwrap_or(6);
        for seed in 1..=cases {
            let began = std::time::Instant::now();
            let b = config_b(&app, seed);
            let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut h = History {
                seed,
                ..Default::default()
            };
            // Eight operations, read after a random one of the third to the sixth and after
            // the last.
            let (ops, mid) = (8, rng.range(2, 6));
            for i in 0..ops {
                let what = operate(&app, &b, &mut rng, &mut h).await;
                h.log.push(what);
                if i == mid || i == ops - 1 {
                    check(&app, &b, &mut rng, &mut h).await;
                }
            }
            println!(
                "books_history {:?} seed {seed}: {} steps, {} donations, {} expenses, {:.1} s",
                app.backend,
                h.steps.len(),
                h.donations.len(),
                h.expenses.len(),
                began.elapsed().as_secs_f64()
            );
        }
    }
);
