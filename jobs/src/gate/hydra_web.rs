//! Hydra's web API, the calls docs/src/gate.md ("Gate") describes: log in
//! (`POST /login`), GET a jobset and PUT it back whole with `enabled` changed (`Referer` set),
//! cancel queued builds one by one (`GET /api/queue`, `POST /build/{id}/cancel`), and restore
//! held jobsets.
//!
//! **Names in URLs.** Project and jobset names come from build steps, so they are not trusted:
//! every URL is built from percent-encoded path segments ([`outbound_url`]) and checked after
//! normalisation to have exactly the intended segments on Hydra's origin. A name that is empty,
//! `.` or `..`, or that would not come back unchanged, is refused: recorded as `hydra_refused`,
//! with nothing sent.
use crate::clock::Clock;
use crate::config::{Config, Secrets};
use crate::gate::record_note;
use buildfund_entity::gate_events::EventKind;
use percent_encoding::percent_decode_str;
use reqwest::Url;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::Arc;

/// Why an outbound URL was not built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// `base` (its path kept, its query and fragment dropped) followed by `segments`, each one
/// percent-encoded path segment, and `query`. Refused unless the URL, parsed again, has
/// `base`'s origin and exactly `base`'s path segments then `segments`, each decoding back to
/// itself; a segment that is empty, `.` or `..` is refused outright.
pub fn outbound_url(base: &str, segments: &[&str], query: Option<&str>) -> Result<Url, Refused> {
    let base = Url::parse(base).map_err(|e| Refused(format!("hydra.url {base:?}: {e}")))?;
    for s in segments {
        if matches!(*s, "" | "." | "..") {
            return Err(Refused(format!("{s:?} is not a path segment")));
        }
    }
    let prefix: Vec<String> = base
        .path_segments()
        .map(|p| p.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|_| Refused(format!("hydra.url {base} cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    url.set_query(query);
    let again = Url::parse(url.as_str()).map_err(|e| Refused(format!("{url}: {e}")))?;
    let got: Vec<&str> = again
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let round_trips = again.origin() == base.origin()
        && got.len() == prefix.len() + segments.len()
        && got[..prefix.len()] == prefix[..]
        && got[prefix.len()..].iter().zip(segments).all(|(enc, raw)| {
            percent_decode_str(enc)
                .decode_utf8()
                .is_ok_and(|d| d == *raw)
        });
    if !round_trips {
        return Err(Refused(format!(
            "{segments:?} would not stay {} path segment(s) under {base}",
            segments.len()
        )));
    }
    Ok(again)
}

/// Why acting on Hydra failed.
#[derive(Debug, thiserror::Error)]
pub enum HydraError {
    /// A URL naming an untrusted project or jobset was not built.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Secret(#[from] crate::config::secrets::MissingSecret),
    #[error("Hydra login as {user:?} answered {status}")]
    Login {
        user: String,
        status: reqwest::StatusCode,
    },
    /// `request` (`GET /api/queue`, …) answered an unexpected status.
    #[error("{request} answered {status}")]
    Status {
        request: String,
        status: reqwest::StatusCode,
    },
    /// `request` answered something else than the JSON `expected` (`object`, `array`).
    #[error("{request} did not answer a JSON {expected}")]
    Shape {
        request: String,
        expected: &'static str,
    },
    #[error("Hydra refused (403) to restore {project}:{jobset} to enabled={enabled}")]
    RestoreRefused {
        project: String,
        jobset: String,
        enabled: i32,
    },
    /// The fencing token no longer holds: another instance acts on Hydra now.
    #[error("the Hydra lease (token {token}) was lost to another instance; stopped before acting")]
    LeaseLost { token: i64 },
    #[error("listing {project}'s jobsets")]
    Listing {
        project: String,
        #[source]
        source: Box<HydraError>,
    },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// The most jobsets read from one project's listing.
pub const MAX_LISTED_JOBSETS: usize = 10_000;

/// Hydra's web API, as buildfund uses it for one pool at a time.
pub struct HydraWeb {
    pub(crate) config: Arc<Config>,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) db: DatabaseConnection,
    pub(crate) client: reqwest::Client,
    pub(crate) clock: Clock,
}

impl HydraWeb {
    fn base(&self) -> &str {
        self.config
            .hydra
            .as_ref()
            .and_then(|h| h.url.as_deref())
            .unwrap_or("")
    }

    /// `base` + `segments`, each one encoded path segment (see [`outbound_url`]).
    pub(crate) fn url(&self, segments: &[&str], query: Option<&str>) -> Result<Url, Refused> {
        outbound_url(self.base(), segments, query)
    }

    /// Logs in when `[hydra] user` is set; returns the Cookie header to send.
    pub(crate) async fn session(&self) -> Result<Option<String>, HydraError> {
        let Some(h) = &self.config.hydra else {
            return Ok(None);
        };
        let Some(user) = &h.user else {
            return Ok(None);
        };
        let password = match &self.secrets.hydra_password {
            Some(secret) => secret.value()?.clone(),
            None => SecretString::from(""),
        };
        let res = self
            .client
            .post(self.url(&["login"], None)?)
            .header("Referer", self.base())
            .header("Accept", "application/json")
            .json(&serde_json::json!({"username": user, "password": password.expose_secret()}))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(HydraError::Login {
                user: user.clone(),
                status: res.status(),
            });
        }
        let cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_string)
            .collect();
        Ok(Some(cookies.join("; ")))
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: Url,
        cookie: &Option<String>,
    ) -> reqwest::RequestBuilder {
        let referer = url.to_string();
        let mut r = self
            .client
            .request(method, url)
            .header("Accept", "application/json")
            .header("Referer", referer);
        if let Some(c) = cookie {
            r = r.header("Cookie", c.clone());
        }
        r
    }

    pub(crate) async fn get_jobset(
        &self,
        url: &Url,
        cookie: &Option<String>,
    ) -> Result<serde_json::Map<String, Value>, HydraError> {
        let res = self
            .request(reqwest::Method::GET, url.clone(), cookie)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(HydraError::Status {
                request: format!("GET {}", url.path()),
                status: res.status(),
            });
        }
        match res.json::<Value>().await? {
            Value::Object(m) => Ok(m),
            _ => Err(HydraError::Shape {
                request: format!("GET {}", url.path()),
                expected: "object",
            }),
        }
    }

    /// PUTs the jobset back whole with `enabled` set. `Ok(false)` when Hydra refuses with 403
    /// (a declarative project).
    pub(crate) async fn put_enabled(
        &self,
        url: &Url,
        mut body: serde_json::Map<String, Value>,
        enabled: i64,
        cookie: &Option<String>,
    ) -> Result<bool, HydraError> {
        body.insert("enabled".into(), Value::from(enabled));
        // Hydra reads these flags as true whenever the key is present: leave false ones out.
        for flag in ["visible", "enableemail", "enable_dynamic_run_command"] {
            let falsy = match body.get(flag) {
                Some(Value::Bool(b)) => !b,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::Null) => true,
                _ => false,
            };
            if falsy {
                body.remove(flag);
            }
        }
        let res = self
            .request(reqwest::Method::PUT, url.clone(), cookie)
            .json(&body)
            .send()
            .await?;
        if res.status() == reqwest::StatusCode::FORBIDDEN {
            return Ok(false);
        }
        if !res.status().is_success() {
            return Err(HydraError::Status {
                request: format!("PUT {}", url.path()),
                status: res.status(),
            });
        }
        Ok(true)
    }

    /// The names of `project`'s jobsets on Hydra (`GET /api/jobsets?project=`, its
    /// `JobsetOverview`: an array of objects with `name` and `project`); none when Hydra
    /// answers 404 (no such project). At most [`MAX_LISTED_JOBSETS`] are read.
    pub(crate) async fn list_jobsets(
        &self,
        project: &str,
        cookie: &Option<String>,
    ) -> Result<Vec<String>, HydraError> {
        let query = format!(
            "project={}",
            percent_encoding::utf8_percent_encode(project, percent_encoding::NON_ALPHANUMERIC)
        );
        let url = self.url(&["api", "jobsets"], Some(&query))?;
        let res = self
            .request(reqwest::Method::GET, url, cookie)
            .send()
            .await?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !res.status().is_success() {
            return Err(HydraError::Status {
                request: format!("GET /api/jobsets?project={project}"),
                status: res.status(),
            });
        }
        let Value::Array(list) = res.json::<Value>().await? else {
            return Err(HydraError::Shape {
                request: format!("GET /api/jobsets?project={project}"),
                expected: "array",
            });
        };
        Ok(list
            .iter()
            .filter(|j| {
                j.get("project")
                    .and_then(Value::as_str)
                    .is_none_or(|p| p == project)
            })
            .filter_map(|j| j.get("name").and_then(Value::as_str))
            .filter(|n| !n.is_empty() && n.len() <= 255)
            .take(MAX_LISTED_JOBSETS)
            .map(str::to_string)
            .collect())
    }

    /// Cancels the unfinished builds of the pool's jobsets (`GET /api/queue`, then
    /// `POST /build/{id}/cancel`).
    pub(crate) async fn cancel_queued(
        &self,
        pool: &str,
        jobsets: &[(String, String)],
        cookie: &Option<String>,
    ) -> Result<(), HydraError> {
        let res = self
            .request(
                reqwest::Method::GET,
                self.url(&["api", "queue"], Some("nr=100000"))?,
                cookie,
            )
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(HydraError::Status {
                request: "GET /api/queue".into(),
                status: res.status(),
            });
        }
        let queue: Vec<Value> = res.json().await?;
        let mut cancelled = Vec::new();
        for b in queue {
            let (Some(id), Some(p), Some(j)) = (
                b.get("id").and_then(Value::as_i64),
                b.get("project").and_then(Value::as_str),
                b.get("jobset").and_then(Value::as_str),
            ) else {
                continue;
            };
            if b.get("finished").and_then(Value::as_i64).unwrap_or(0) != 0
                || !jobsets.iter().any(|(pp, jj)| pp == p && jj == j)
            {
                continue;
            }
            let r = self
                .request(
                    reqwest::Method::POST,
                    self.url(&["build", &id.to_string(), "cancel"], None)?,
                    cookie,
                )
                .send()
                .await?;
            if !r.status().is_success() && !r.status().is_redirection() {
                return Err(HydraError::Status {
                    request: format!("POST /build/{id}/cancel"),
                    status: r.status(),
                });
            }
            cancelled.push(id.to_string());
        }
        if !cancelled.is_empty() {
            record_note(
                &self.db,
                self.clock.now(),
                pool,
                EventKind::HydraCancelled,
                &format!("cancelled {} queued build(s) on Hydra", cancelled.len()),
                Some(cancelled.join(",")),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://hydra.example.org:3000";

    #[test]
    fn names_are_encoded_as_one_segment_each() {
        let url = |j| outbound_url(BASE, &["jobset", "nixpkgs", j], None).map(|u| u.to_string());
        assert_eq!(
            url("cuda").unwrap(),
            "http://hydra.example.org:3000/jobset/nixpkgs/cuda"
        );
        assert_eq!(
            url("cuda/../../project/nixpkgs").unwrap(),
            "http://hydra.example.org:3000/jobset/nixpkgs/cuda%2F..%2F..%2Fproject%2Fnixpkgs"
        );
        assert_eq!(
            url("cuda?x=1#frag").unwrap(),
            "http://hydra.example.org:3000/jobset/nixpkgs/cuda%3Fx=1%23frag"
        );
        assert_eq!(
            url("cuda%2F..").unwrap(),
            "http://hydra.example.org:3000/jobset/nixpkgs/cuda%252F.."
        );
        assert_eq!(
            url("cuda\\..").unwrap(),
            "http://hydra.example.org:3000/jobset/nixpkgs/cuda%5C.."
        );
        for bad in ["", ".", ".."] {
            assert!(url(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn the_base_path_is_kept_and_its_query_dropped() {
        let u = outbound_url(
            "https://ci.example.org/hydra/?x=1#f",
            &["api", "queue"],
            Some("nr=1"),
        )
        .unwrap();
        assert_eq!(u.as_str(), "https://ci.example.org/hydra/api/queue?nr=1");
        let u = outbound_url("https://ci.example.org", &["login"], None).unwrap();
        assert_eq!(u.as_str(), "https://ci.example.org/login");
    }
}
