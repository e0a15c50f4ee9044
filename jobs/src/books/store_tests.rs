//! Tests of `store`.
use super::*;
use crate::books::stale::touched_months;
use std::collections::BTreeSet;

fn at(s: &str) -> DateTime<Utc> {
    crate::calendar::parse_rfc3339(s).unwrap()
}

fn months(v: &[&str]) -> BTreeSet<Month> {
    v.iter().map(|m| Month::parse(m).unwrap()).collect()
}

#[test]
fn a_change_reopens_its_months_and_a_short_month_after() {
    let now = at("2026-12-01T10:00:00Z");
    let s = |a: &str, b: &str| Span::new(at(a).timestamp(), at(b).timestamp());
    assert_eq!(
        touched_months(s("2026-03-31T23:00:00Z", "2026-04-01T01:00:00Z"), now),
        months(&["2026-03", "2026-04"])
    );
    // January's change reaches February's last 30 days.
    assert_eq!(
        touched_months(s("2026-01-10T00:00:00Z", "2026-01-10T01:00:00Z"), now),
        months(&["2026-01", "2026-02"])
    );
    // An instant.
    assert_eq!(
        touched_months(s("2026-05-10T00:00:00Z", "2026-05-10T00:00:00Z"), now),
        months(&["2026-05"])
    );
    // The open month leaves no mark until its last day.
    assert!(touched_months(s("2026-12-01T00:00:00Z", "2026-12-01T09:00:00Z"), now).is_empty());
    let late = at("2026-12-31T12:00:00Z");
    assert_eq!(
        touched_months(s("2026-12-01T00:00:00Z", "2026-12-01T09:00:00Z"), late),
        months(&["2026-12"])
    );
}

#[test]
fn the_fingerprint_follows_the_figures_only() {
    let base = r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
name = "General"
default = true
[[machines]]
name = "b1"
slots = 2
monthly = "100"
"#;
    let c = Config::parse(base, "t").unwrap();
    let renamed =
        Config::parse(&base.replace("name = \"General\"", "name = \"Other\""), "t").unwrap();
    let repriced = Config::parse(&base.replace("\"100\"", "\"101\""), "t").unwrap();
    assert_eq!(fingerprint(&c), fingerprint(&renamed));
    assert_ne!(fingerprint(&c), fingerprint(&repriced));
}

#[test]
fn a_month_is_computed_from_its_facts_without_the_database() {
    let c = Config::parse(
        r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
name = "General"
default = true
opening_balance = "10"
[[machines]]
name = "b1"
slots = 2
monthly = "100"
"#,
        "t",
    )
    .unwrap();
    let month = Month::parse("2026-03").unwrap();
    let line = |cents| Line {
        machine: "b1".into(),
        jobset: None,
        pool: None,
        fund: "general".into(),
        idle: true,
        busy_seconds: 0,
        cost_cents: cents,
    };
    let facts = MonthFacts {
        month,
        window: month.span(),
        costs: WindowCosts {
            lines: vec![line(700)],
            unpriced: Vec::new(),
        },
        jobs: BTreeMap::new(),
        raised: BTreeMap::from([(
            "general".to_string(),
            Raised {
                gross_cents: 1000,
                fees_cents: 50,
                net_cents: 950,
            },
        )]),
        // March 1st is in the last 30 days of March; the month's own part is its lines.
        cost_30_parts: vec![Some(BTreeMap::from([("general".to_string(), 20)])), None],
    };
    let books = compute_month(&c, facts).unwrap();
    let sums = books.funds[0].1;
    assert_eq!((sums.spent_cents, sums.cost_30_days_cents), (700, 720));
    let before = BTreeMap::from([("general".to_string(), (100, 300))]);
    let f = fund_books(&books, &before)[0].1;
    assert_eq!((f.net_to_date_cents, f.spent_to_date_cents), (1050, 1000));
    assert_eq!(f.balance_cents, 1000 + 1050 - 1000);
    let old = BTreeMap::from([("general".to_string(), (950, 600))]);
    assert_eq!(
        fund_deltas(&books, &old),
        vec![("general".to_string(), 0, 100)]
    );
}
