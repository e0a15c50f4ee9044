//! The one redaction of URLs that are printed or logged (database, Hydra, OpenCollective,
//! webhook, SMTP): user info and credential-looking query parameters are replaced by `***`.
use std::path::PathBuf;

/// What replaces a user info or a credential's value.
const REDACTED: &str = "***";

/// Query parameter names (or parts of names, compared without case) whose values are
/// credentials: `password`, `sslpassword`, `token`, `secret`, `key`, …
const CREDENTIAL_PARAMETERS: &[&str] = &[
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "credential",
    "signature",
    "sig",
];

/// `url` with its user info and credential-looking query values replaced: safe to print.
///
/// The user info ends at the LAST `@` before the host, so a raw `@` (or `/`, `?`) inside a
/// password leaks no part of it: `postgres://u:p@ss@db/x` becomes `postgres://***@db/x`. When
/// the text cannot be told apart (an `@` whose following text is no host), more is hidden
/// rather than less.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let (rest, fragment) = match rest.find('#') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let rest = if scheme.is_empty() {
        rest.to_string()
    } else {
        match userinfo_end(rest) {
            Some(at) => format!("{REDACTED}{}", &rest[at..]),
            None => rest.to_string(),
        }
    };
    let redacted = match rest.split_once('?') {
        Some((base, query)) => format!("{base}?{}", redact_query(query)),
        None => rest,
    };
    let fragment = if fragment.is_empty() { "" } else { "#***" };
    format!("{scheme}{redacted}{fragment}")
}

/// Where the user info of `rest` (the URL after `scheme://`) ends: the index of the `@` that
/// separates it from the host, if there is one.
fn userinfo_end(rest: &str) -> Option<usize> {
    // The usual case: an `@` before the first `/`, `?` (its last one: a raw `@` in a password).
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if let Some(at) = rest[..authority_end].rfind('@') {
        return Some(at);
    }
    // A raw `/` in the password: the last `@` before the query.
    let before_query = rest.find('?').unwrap_or(rest.len());
    if let Some(at) = rest[..before_query].rfind('@') {
        return Some(at);
    }
    // A raw `?` in the password: the last `@` followed by something shaped like a host.
    let at = rest.rfind('@')?;
    let host = &rest[at + 1..];
    let host = &host[..host.find(['/', '?']).unwrap_or(host.len())];
    let host_like = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '%'));
    host_like.then_some(at)
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential(name) => format!("{name}={REDACTED}"),
            Some(_) => pair.to_string(),
            None if is_credential(pair) => REDACTED.to_string(),
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_PARAMETERS.iter().any(|c| name.contains(c))
}

/// The file path of a SQLite URL (`sqlite://PATH?…` or `sqlite:PATH`, without its query);
/// `None` for any other URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// The database a URL names, for messages: the absolute path of a SQLite file, or the
/// PostgreSQL URL through [`redact_url`].
pub fn describe_database(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        let abs = std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| PathBuf::from(path));
        format!("SQLite file {}", abs.display())
    } else {
        format!("PostgreSQL {}", redact_url(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_replaced_whole() {
        assert_eq!(
            redact_url("postgres://user:secret@db.example:5432/bf"),
            "postgres://***@db.example:5432/bf"
        );
        assert_eq!(
            redact_url("postgres://user@db.example/bf"),
            "postgres://***@db.example/bf"
        );
        assert_eq!(
            redact_url("https://hydra.example.org/jobset/x"),
            "https://hydra.example.org/jobset/x"
        );
    }

    #[test]
    fn a_raw_at_slash_or_question_mark_in_a_password_leaks_nothing() {
        for (url, secret) in [
            ("postgres://u:p@ss@127.0.0.1:5432/x", "ss"),
            ("postgres://u:p%40ss@127.0.0.1:5432/x", "p%40ss"),
            ("postgres://u:hun@ter@2@db/x?sslmode=require", "ter"),
            ("postgres://u:pa/ss@db/x", "pa/ss"),
            ("postgres://u:pa?ss@db/x", "pa?ss"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
            assert!(!shown.contains("u:"), "{url} -> {shown}");
            assert!(shown.starts_with("postgres://***@"), "{url} -> {shown}");
        }
        assert_eq!(
            redact_url("postgres://u:p@ss@127.0.0.1:5432/x"),
            "postgres://***@127.0.0.1:5432/x"
        );
    }

    #[test]
    fn credential_parameters_are_replaced_and_others_kept() {
        assert_eq!(
            redact_url("postgres://127.0.0.1:5432/x?password=hunter2&sslmode=require&sslpassword=a&sslkey=/k&application_name=bf"),
            "postgres://127.0.0.1:5432/x?password=***&sslmode=require&sslpassword=***&sslkey=***&application_name=bf"
        );
        assert_eq!(
            redact_url("https://hooks.example.org/x?Token=abc&api_key=def&secret=g#frag"),
            "https://hooks.example.org/x?Token=***&api_key=***&secret=***#***"
        );
        assert_eq!(
            redact_url("sqlite://bf.sqlite?mode=rwc&password=x"),
            "sqlite://bf.sqlite?mode=rwc&password=***"
        );
    }

    #[test]
    fn database_description_hides_credentials() {
        let d = describe_database("postgres://user:secret@db.example:5432/bf");
        assert!(!d.contains("secret"));
        assert!(d.contains("db.example:5432/bf"));
        let d = describe_database("postgres://u:p%40ss@127.0.0.1:5432/x?password=hunter2");
        assert_eq!(d, "PostgreSQL postgres://***@127.0.0.1:5432/x?password=***");
    }
}
