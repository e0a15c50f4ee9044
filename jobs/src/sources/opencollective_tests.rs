//! Tests of `opencollective`.
use super::*;
use crate::sources::opencollective_client::retry_after;
use std::time::Duration;

#[test]
fn contributors_are_shown_as_opencollective_shows_them() {
    let w = "https://opencollective.com";
    assert_eq!(
        contributor(w, "alice", Some("Alice"), false).url.as_deref(),
        Some("https://opencollective.com/alice")
    );
    assert_eq!(
        contributor(w, "incognito-1a2b", Some("x"), false),
        Contributor::anonymous()
    );
    assert_eq!(
        contributor(w, "bob", Some("Bob"), true),
        Contributor::anonymous()
    );
    let guest = contributor(w, "guest-77", Some("Carol"), false);
    assert_eq!((guest.name.as_deref(), guest.slug), (Some("Carol"), None));
}

#[test]
fn cents_must_be_whole() {
    assert_eq!(cents(Some(1234.0), "x"), Ok(1234));
    assert_eq!(cents(Some(-50.0), "x"), Ok(-50));
    assert!(cents(Some(12.5), "x").is_err());
    assert!(cents(None, "x").is_err());
    assert_eq!(cents(Some(1e12), "x"), Ok(1_000_000_000_000));
    assert!(cents(Some(-1e12 - 1.0), "x")
        .unwrap_err()
        .contains("beyond the bound"));
}

#[test]
fn retry_after_reads_seconds() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
    let now = crate::calendar::parse_rfc3339("2026-10-03T09:00:00Z").unwrap();
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
}

#[test]
fn retry_after_reads_a_date_against_the_given_now() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::RETRY_AFTER,
        "Sat, 03 Oct 2026 09:00:30 GMT".parse().unwrap(),
    );
    let now = crate::calendar::parse_rfc3339("2026-10-03T09:00:00Z").unwrap();
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
    let later = crate::calendar::parse_rfc3339("2026-10-03T09:01:00Z").unwrap();
    assert_eq!(retry_after(&h, later), Some(Duration::ZERO));
}

#[test]
fn an_expense_beyond_the_text_bounds_is_refused_by_what_is_too_long() {
    let at = "2026-10-03T09:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    let r = ExpenseRecord {
        source: SOURCE.into(),
        external_id: "e1".into(),
        kind: ExpenseKind::Expense,
        paid_at: at,
        account_slug: "nixfund".into(),
        payee: Some("Hetzner".into()),
        tags: vec!["t".repeat(MAX_EXPENSE_TEXT); MAX_EXPENSE_TAGS],
        description: Some("d".repeat(MAX_EXPENSE_DESCRIPTION)),
        incurred_at: at,
        amount_cents: 1,
        fees_cents: 0,
        original_amount: "0.01".into(),
        original_currency: "EUR".into(),
        expense_ref: None,
        reversal_of: None,
    };
    assert_eq!(text_out_of_bounds(&r), None);
    let mut many = r.clone();
    many.tags.push("x".into());
    assert!(text_out_of_bounds(&many).unwrap().contains("101 tags"));
    let mut long = r.clone();
    long.tags[3].push('x');
    assert!(text_out_of_bounds(&long).unwrap().contains("a tag of 256"));
    let mut payee = r.clone();
    payee.payee = Some("p".repeat(MAX_EXPENSE_TEXT + 1));
    assert!(text_out_of_bounds(&payee).unwrap().contains("payee"));
    let mut description = r;
    description.description.as_mut().unwrap().push('!');
    assert!(text_out_of_bounds(&description)
        .unwrap()
        .contains("description"));
}
