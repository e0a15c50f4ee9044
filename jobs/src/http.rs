//! Outbound HTTP (OpenCollective, Hydra's web API, webhooks): clients that follow a redirect
//! only within the origin the request started from (same scheme, host and port), at most
//! [`MAX_REDIRECTS`] times. Any other redirect stops the request with an error naming where it
//! pointed, so a credential (a token header, a session cookie, a login body) never reaches
//! another origin.
use reqwest::redirect::{Attempt, Policy};

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 5;

/// Follow, stop with an error, or refuse: the decision for one redirect.
fn decide(attempt: Attempt) -> reqwest::redirect::Action {
    // `previous` starts with the URL first requested.
    let Some(first) = attempt.previous().first().cloned() else {
        return attempt.error("a redirect without a first request");
    };
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!(
            "more than {MAX_REDIRECTS} redirects from {first}; not followed"
        ));
    }
    if attempt.url().origin() != first.origin() {
        let to = attempt.url().clone();
        return attempt.error(format!(
            "{first} redirected to another origin ({to}); not followed, so nothing was sent there"
        ));
    }
    attempt.follow()
}

/// The redirect policy of every outbound client.
pub fn same_origin_redirects() -> Policy {
    Policy::custom(decide)
}

/// A client builder with [`same_origin_redirects`]; callers add their timeouts.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(same_origin_redirects())
}
