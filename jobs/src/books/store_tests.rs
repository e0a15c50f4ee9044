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
