//! The walker as a whole: good files load, every problem comes with its key path.
use super::*;
use crate::money::Price;

const GOOD: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"
idle = "separate"

[[funds]]
slug = "general"
name = "General"
default = true
opening_balance = "100.00"

[[funds]]
slug = "cuda"
name = "CUDA builds"
monthly_goal = "1500"
tiers = ["cuda-sponsor"]

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
monthly_budget = "800.00"

[[machines]]
name = "build03"
aliases = ["b3"]
slots = 4
monthly = "120.00"

[[machines]]
name = "jetson01"
hourly = "0.35"
idle_fund = "cuda"
active_from = 2026-10-15
"#;

#[test]
fn a_good_file_loads_into_typed_values() {
    let c = Config::parse(GOOD, "test").unwrap();
    assert_eq!(c.default_fund().slug, "general");
    assert_eq!(c.funds[0].opening_balance_cents, 10000);
    assert_eq!(c.funds[1].monthly_goal_cents, Some(150000));
    assert_eq!(c.pools[0].monthly_budget_cents, Some(80000));
    assert_eq!(c.pools[0].warn_at, Decimal::new(8, 1));
    assert_eq!(
        c.pool_of("nixpkgs:cuda-12").map(|p| p.slug.as_str()),
        Some("cuda")
    );
    assert!(c.pool_of("nixpkgs:trunk").is_none());
    assert!(
        c.pool_of("nixpkgs:cuda/../trunk").is_none(),
        "`*` stops at `/`"
    );
    assert_eq!(
        c.machines[0].cost,
        CostModel::Monthly(Price::parse("120").unwrap())
    );
    assert_eq!(c.machines[0].idle_fund, "general");
    assert_eq!(c.machines[1].idle_fund, "cuda");
    assert_eq!(
        c.machines[1].active_from,
        Some("2026-10-15T00:00:00Z".parse().unwrap())
    );
    assert_eq!(c.machine_by_name()["b3"].name, "build03");
    assert!(c.schedule.contains_key("opencollective_sync"));
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let bad = GOOD
        .replace("monthly = \"120.00\"", "monthly = \"12,50\"")
        .replace("fund = \"cuda\"\njobsets", "fund = \"gpu\"\njobsets")
        .replace("aliases = [\"b3\"]", "aliases = [\"jetson01\"]");
    let err = Config::parse(&bad, "test").unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "pools[0].fund: \"gpu\" is not a fund (funds: general, cuda)".to_string(),
            "machines[0].monthly: \"12,50\" is not a decimal amount".to_string(),
            "machines[1].name: \"jetson01\" is already used by machines[0].aliases[0]".to_string(),
        ]
    );
}

#[test]
fn type_errors_do_not_hide_later_problems() {
    let err = Config::parse(
        "ledger_start = 5\nidle = \"sometimes\"\n[server]\nlisten = \"nowhere\"\nport = 1\n[schedule]\nhydra_pull = \"every five minutes\"",
        "t",
    )
    .unwrap_err();
    let joined = err.problems.join("\n");
    assert!(joined.contains("ledger_start: must be a date"), "{joined}");
    assert!(joined.contains("idle: \"sometimes\""), "{joined}");
    assert!(joined.contains("server.listen: \"nowhere\""), "{joined}");
    assert!(joined.contains("server.port: unknown key"), "{joined}");
    assert!(
        joined.contains("schedule.hydra_pull: \"every five minutes\" is not a cron expression"),
        "{joined}"
    );
    assert_eq!(err.problems.len(), 5, "{joined}");
}

#[test]
fn default_fund_rules() {
    let none = "ledger_start = \"2026-01-01\"\n[[funds]]\nslug = \"a\"\n";
    assert_eq!(
        Config::parse(none, "t").unwrap_err().problems,
        vec!["funds: exactly one fund must have default = true (found 0)"]
    );
    let two = "ledger_start = \"2026-01-01\"\n[[funds]]\nslug = \"a\"\ndefault = true\n[[funds]]\nslug = \"b\"\ndefault = true\n";
    assert!(Config::parse(two, "t").unwrap_err().problems[0].contains("found 2"));
}

#[test]
fn machine_needs_exactly_one_price_and_a_sane_interval() {
    let text = "ledger_start = \"2026-01-01\"\n[[machines]]\nname = \"a\"\n[[machines]]\nname = \"b\"\nhourly = \"1\"\nmetered = \"2\"\n[[machines]]\nname = \"c\"\nmonthly = \"1\"\nslots = 0\nactive_from = \"2026-02-01\"\nactive_until = \"2026-01-01\"\n";
    let problems = Config::parse(text, "t").unwrap_err().problems;
    assert_eq!(
        problems,
        vec![
            "machines[0]: needs a price: one of monthly, hourly or metered",
            "machines[1]: has hourly and metered prices; give exactly one of monthly, hourly or metered",
            "machines[2].slots: 0 is not between 1 and 100000",
            "machines[2].active_until: must be after active_from",
        ]
    );
}

#[test]
fn defaults_need_no_file() {
    let c = Config::defaults();
    assert_eq!(c.database.url, DEFAULT_DATABASE_URL);
    assert_eq!(c.default_fund().slug, "general");
    assert!(c.machines.is_empty());
    assert_eq!(c.server.listen, DEFAULT_LISTEN);
}

#[test]
fn secrets_are_env_names_only() {
    let text = "ledger_start = \"2026-01-01\"\n[opencollective]\ncollective = \"nixos\"\ntoken_env = \"hunter2 is my token\"\n";
    let problems = Config::parse(text, "t").unwrap_err().problems;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("opencollective.token_env: "));
}

#[test]
fn gate_webhooks_are_checked_with_their_key_paths() {
    let base = "ledger_start = \"2026-01-01\"\n";
    let c = Config::parse(
        &format!("{base}[gate]\n[[gate.webhooks]]\nurl = \"https://hooks.example.org/bf\"\nsecret_env = \"BF_HOOK_SECRET\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.gate.webhooks.len(), 1);
    assert_eq!(
        c.gate.webhooks[0].secret_env.as_deref(),
        Some("BF_HOOK_SECRET")
    );
    let bad = format!(
        "{base}[gate]\nfoo = 1\n[[gate.webhooks]]\nurl = \"ftp://x\"\nsecret_env = \"s3cr:t@\"\n[[gate.webhooks]]\nsecret_env = \"A\"\n"
    );
    let problems = Config::parse(&bad, "t").unwrap_err().problems;
    assert_eq!(
        problems,
        vec![
            "gate.foo: unknown key (expected one of: webhooks)".to_string(),
            "gate.webhooks[0].url: \"ftp://x\" is not an http(s) URL".to_string(),
            "gate.webhooks[0].secret_env: the value (not shown, it may be a secret) is not the name of an environment variable (the secret itself never goes in the file)".to_string(),
            "gate.webhooks[1].url: missing".to_string(),
        ]
    );
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    let c = Config::parse(
        "ledger_start = \"2026-01-01\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\"]\n",
        "t",
    )
    .unwrap();
    let nets = &c.server.trusted_proxies;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(nets[0].contains(ip("10.200.3.4")));
    assert!(!nets[0].contains(ip("11.0.0.1")));
    assert!(nets[0].contains(ip("::ffff:10.0.0.1")), "IPv4-mapped");
    assert!(nets[1].contains(ip("192.0.2.7")) && !nets[1].contains(ip("192.0.2.8")));
    assert!(nets[2].contains(ip("fd12::1")) && !nets[2].contains(ip("fe80::1")));
    assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    let problems = Config::parse(
        "ledger_start = \"2026-01-01\"\n[server]\ntrusted_proxies = [\"10.0.0.0/33\", \"proxy.local\"]\n",
        "t",
    )
    .unwrap_err()
    .problems;
    assert_eq!(
        problems,
        vec![
            "server.trusted_proxies[0]: \"10.0.0.0/33\" is not an IP address or network such as \"10.0.0.0/8\"",
            "server.trusted_proxies[1]: \"proxy.local\" is not an IP address or network such as \"10.0.0.0/8\"",
        ]
    );
}

#[test]
fn hydra_table_defaults_and_bad_values() {
    let base = "ledger_start = \"2026-01-01\"\n";
    assert!(Config::parse(base, "t").unwrap().hydra.is_none());

    let c = Config::parse(
        &format!("{base}[hydra]\ndatabase_url_env = \"HYDRA_DATABASE_URL\"\n"),
        "t",
    )
    .unwrap();
    let h = c.hydra.unwrap();
    assert_eq!(h.database_url_env.as_deref(), Some("HYDRA_DATABASE_URL"));
    assert_eq!(h.source, "hydra");
    assert_eq!(h.overlap_seconds, 3600);
    assert_eq!(h.url, None);

    let c = Config::parse(
        &format!("{base}[hydra]\ndatabase_url_env = \"H\"\nsource = \"nix-community\"\noverlap_seconds = 0\nurl = \"https://hydra.nix-community.org/\"\n"),
        "t",
    )
    .unwrap();
    let h = c.hydra.unwrap();
    assert_eq!(
        (h.source.as_str(), h.overlap_seconds, h.url.as_deref()),
        ("nix-community", 0, Some("https://hydra.nix-community.org"))
    );

    // Only the web API (the gate's actions), no step pull; but one of the two is needed.
    let c = Config::parse(
        &format!("{base}[hydra]\nurl = \"https://hydra.example.org\"\n"),
        "t",
    )
    .unwrap();
    let h = c.hydra.unwrap();
    assert_eq!((h.database_url_env, h.act_on_gate), (None, true));
    let problems = Config::parse(&format!("{base}[hydra]\nsource = \"x\"\n"), "t")
        .unwrap_err()
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("hydra: needs database_url_env"),
        "{problems:?}"
    );

    let bad = format!(
        "{base}[hydra]\ndatabase_url_env = \"postgres://hydra:secret@db/hydra\"\nsource = \"\"\noverlap_seconds = 604801\nurl = \"hydra.example.org\"\nlogin = \"x\"\n"
    );
    let problems = Config::parse(&bad, "t").unwrap_err().problems;
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert_eq!(
        problems[0],
        "hydra.login: unknown key (expected one of: database_url_env, source, overlap_seconds, url, user, password_env, act_on_gate)"
    );
    assert_eq!(
        problems[1],
        "hydra.database_url_env: the value (not shown, it may be a secret) is not the name of an environment variable (the secret itself never goes in the file)"
    );
    assert!(!problems.join("\n").contains("secret@"));
    assert_eq!(problems[2], "hydra.source: must not be empty");
    assert_eq!(
        problems[3],
        "hydra.overlap_seconds: 604801 is not between 0 and 604800"
    );
    assert_eq!(
        problems[4],
        "hydra.url: \"hydra.example.org\" is not an http(s) URL"
    );
}

#[test]
fn machine_changes_are_checked_with_their_key_paths() {
    let text = r#"ledger_start = "2026-01-01"
[[machines]]
name = "a"
monthly = "100"
[[machines.changes]]
from = "2026-10-15"
hourly = "1.90"
slots = 4
[[machines.changes]]
from = "2026-10-01"
monthly = "1"
[[machines.changes]]
from = "2026-11-01T12:00:00Z"
[[machines.changes]]
from = "2026-12-01"
monthly = "1"
metered = "2"
[[machines]]
name = "b"
hourly = "1"
[[machines.changes]]
monthly = "12,50"
slots = 0
price = "3"
[[machines.changes]]
from = 2027-01-01
"#;
    let problems = Config::parse(text, "t").unwrap_err().problems;
    assert_eq!(
        problems,
        vec![
            "machines[0].changes[1].from: 2026-10-01 is not after the previous change's from (2026-10-15)",
            "machines[0].changes[2].from: \"2026-11-01T12:00:00Z\" is not a date (YYYY-MM-DD)",
            "machines[0].changes[2]: changes nothing: give one of monthly, hourly or metered, or slots",
            "machines[0].changes[3]: has monthly and metered prices; give at most one of monthly, hourly or metered",
            "machines[1].changes[0].price: unknown key (expected one of: from, monthly, hourly, metered, slots)",
            "machines[1].changes[0].from: missing",
            "machines[1].changes[0].slots: 0 is not between 1 and 100000",
            "machines[1].changes[0].monthly: \"12,50\" is not a decimal amount",
            "machines[1].changes[1]: changes nothing: give one of monthly, hourly or metered, or slots",
        ]
    );
    // A good list: dates as strings or TOML dates, before the ledger starts too.
    let good = r#"ledger_start = "2026-01-01"
[[machines]]
name = "a"
monthly = "100"
[[machines.changes]]
from = 2025-06-01
slots = 2
[[machines.changes]]
from = "2026-10-15"
metered = "2.40"
"#;
    let c = Config::parse(good, "t").unwrap();
    let m = &c.machines[0];
    assert_eq!(m.changes.len(), 2);
    assert_eq!(m.changes[1].from.to_rfc3339(), "2026-10-15T00:00:00+00:00");
    assert_eq!(m.changes[1].slots, None);
    assert_eq!(
        m.terms_at(m.changes[1].from.timestamp()),
        Terms {
            cost: CostModel::Metered(Price::parse("2.40").unwrap()),
            slots: 2
        }
    );
    // Not an array of tables.
    let flat =
        "ledger_start = \"2026-01-01\"\n[[machines]]\nname = \"a\"\nmonthly = \"1\"\nchanges = 3\n";
    assert_eq!(
        Config::parse(flat, "t").unwrap_err().problems,
        vec!["machines[0].changes: must be an array of tables ([[machines.changes]]), not an integer"]
    );
}

#[test]
fn invoice_keys_are_validated_with_their_key_paths() {
    let good = GOOD.replace(
        "slots = 4\n",
        "slots = 4\ninvoice_tags = [\"build03\", \"Hetzner\"]\nbilling = \"advance\"\nbilling_tolerance = \"2.50\"\n",
    );
    let c = Config::parse(&good, "t").unwrap();
    let m = &c.machines[0];
    assert_eq!(m.invoice_tags, vec!["build03", "Hetzner"]);
    assert_eq!(m.billing, Billing::Advance);
    assert_eq!(m.billing_tolerance_cents, Some(250));
    // Defaults: arrears, 1 % of modeled, no tags.
    let j = &c.machines[1];
    assert_eq!(
        (j.billing, j.billing_tolerance_cents, j.invoice_tags.len()),
        (Billing::Arrears, None, 0)
    );
    assert!(c.warnings().is_empty());

    let bad = GOOD
        .replace(
            "slots = 4\n",
            "slots = 4\ninvoice_tags = [\"\", 3]\nbilling = \"monthly\"\nbilling_tolerance = \"-1\"\n",
        )
        .replace(
            "hourly = \"0.35\"\n",
            "hourly = \"0.35\"\nbilling_tolerance = \"0.001\"\n",
        );
    let err = Config::parse(&bad, "t").unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "machines[0].invoice_tags[0]: must not be empty".to_string(),
            "machines[0].invoice_tags[1]: must be a string, not an integer".to_string(),
            "machines[0].billing: \"monthly\" is not one of \"arrears\", \"advance\", \"none\""
                .to_string(),
            "machines[0].billing_tolerance: \"-1\" must not be negative".to_string(),
            "machines[1].billing_tolerance: \"0.001\" has fractions of a cent".to_string(),
        ]
    );
}

#[test]
fn a_tag_claimed_by_two_machines_is_a_warning_naming_both() {
    let text = GOOD
        .replace("slots = 4\n", "slots = 4\ninvoice_tags = [\"hetzner\"]\n")
        .replace(
            "hourly = \"0.35\"\n",
            "hourly = \"0.35\"\ninvoice_tags = [\"jetson\", \"HETZNER\"]\n",
        );
    let c = Config::parse(&text, "t").unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("machines[1].invoice_tags[1]: \"HETZNER\""),
        "{w:?}"
    );
    assert!(
        w[0].contains("\"build03\"") && w[0].contains("\"jetson01\""),
        "{w:?}"
    );
}
