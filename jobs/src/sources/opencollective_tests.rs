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
    assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
}
