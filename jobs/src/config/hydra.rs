//! `[hydra]`: the step pull (its database) and the web API the gate acts on.
use super::walker::Walker;
use toml::Table;

/// Where the Hydra pull reads finished build steps (`[hydra]`; see `crate::sources::hydra_pull`).
#[derive(Clone, Debug)]
pub struct HydraConfig {
    /// The NAME of the environment variable holding the (read-only) Hydra PostgreSQL URL;
    /// `None` when buildfund only acts on Hydra's web API (no step pull).
    pub database_url_env: Option<String>,
    /// The build-step source the pulled rows are stored under (default [`DEFAULT_HYDRA_SOURCE`]).
    pub source: String,
    /// How far back before the stored cursor each pull reads again, in seconds, to catch steps
    /// committed late (default [`DEFAULT_HYDRA_OVERLAP_SECONDS`]).
    pub overlap_seconds: i64,
    /// Hydra's web base URL (http or https, no trailing slash), for links and, when
    /// `act_on_gate`, for disabling and re-enabling jobsets of closed pools.
    pub url: Option<String>,
    /// The Hydra user buildfund logs in as to change jobsets and cancel builds.
    pub user: Option<String>,
    /// The NAME of the environment variable holding that user's password.
    pub password_env: Option<String>,
    /// Whether a closing pool disables its Hydra jobsets and cancels their queued builds
    /// (default true when `url` is set).
    pub act_on_gate: bool,
}

pub const DEFAULT_HYDRA_SOURCE: &str = "hydra";
pub const DEFAULT_HYDRA_OVERLAP_SECONDS: i64 = 3600;
/// The largest accepted `hydra.overlap_seconds`: one week.
pub const MAX_HYDRA_OVERLAP_SECONDS: i64 = 7 * 86_400;

impl Walker {
    pub(super) fn hydra(&mut self, t: &Table) -> Option<HydraConfig> {
        let h = self.table(t, "hydra")?;
        let path = "hydra";
        self.unknown_keys(
            h,
            path,
            &[
                "database_url_env",
                "source",
                "overlap_seconds",
                "url",
                "user",
                "password_env",
                "act_on_gate",
            ],
        );
        let database_url_env = self.env_name(h, path, "database_url_env");
        let has_database = h.contains_key("database_url_env");
        if !has_database && !h.contains_key("url") {
            self.problem(
                "hydra",
                "needs database_url_env (the NAME of the environment variable holding the Hydra database URL, to pull build steps) or url (Hydra's web address, to act on the gate), or both",
            );
        }
        let source = match self.string(h, path, "source") {
            None => Some(DEFAULT_HYDRA_SOURCE.to_string()),
            Some(s) if s.trim().is_empty() => {
                self.problem("hydra.source", "must not be empty");
                None
            }
            // The same limits as the `source` field of an ingested record.
            Some(s) if s.len() > 64 || s.chars().any(char::is_control) => {
                self.problem(
                    "hydra.source",
                    format!("{s:?} must be at most 64 bytes without control characters"),
                );
                None
            }
            Some(s) => Some(s),
        };
        let overlap_seconds = self
            .integer(h, path, "overlap_seconds", 0, MAX_HYDRA_OVERLAP_SECONDS)
            .unwrap_or(DEFAULT_HYDRA_OVERLAP_SECONDS);
        let url = self.string(h, path, "url");
        if let Some(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                self.problem("hydra.url", format!("{u:?} is not an http(s) URL"));
            }
        }
        let user = self.string(h, path, "user");
        let password_env = self.env_name(h, path, "password_env");
        let act_on_gate = self
            .boolean(h, path, "act_on_gate")
            .unwrap_or(url.is_some());
        if act_on_gate && url.is_none() {
            self.problem("hydra.act_on_gate", "needs hydra.url (the Hydra to act on)");
        }
        if password_env.is_some() && user.is_none() {
            self.problem("hydra.user", "missing (hydra.password_env is set)");
        }
        if has_database && database_url_env.is_none() {
            return None;
        }
        Some(HydraConfig {
            database_url_env,
            source: source?,
            overlap_seconds,
            url: url.map(|u| u.trim_end_matches('/').to_string()),
            user,
            password_env,
            act_on_gate,
        })
    }
}
