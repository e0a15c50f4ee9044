//! `[opencollective]`: the collective synced and how.
use super::walker::Walker;
use toml::Table;

#[derive(Clone, Debug)]
pub struct OpenCollectiveConfig {
    pub endpoint: String,
    pub collective: String,
    /// The NAME of the environment variable holding a personal token (sent as `Personal-Token`);
    /// without it the public API is read anonymously (at a lower rate limit).
    pub token_env: Option<String>,
    /// How far back before the stored cursor each sync reads again, in seconds, to catch
    /// transactions recorded late (default [`DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS`]).
    pub overlap_seconds: i64,
    /// The web base of profile pages (`<website>/<slug>`), without a trailing slash.
    pub website: String,
    /// The timeout of one API request, in seconds.
    pub timeout_seconds: i64,
    /// The NAME of the environment variable holding the secret path segment of
    /// `POST /webhooks/opencollective/{token}`; without it there is no webhook.
    pub webhook_token_env: Option<String>,
}

pub const DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS: i64 = 86_400;
/// The largest accepted `opencollective.overlap_seconds`: 30 days.
pub const MAX_OPENCOLLECTIVE_OVERLAP_SECONDS: i64 = 30 * 86_400;
pub const DEFAULT_OPENCOLLECTIVE_TIMEOUT_SECONDS: i64 = 60;

impl Walker {
    pub(super) fn opencollective(&mut self, t: &Table) -> Option<OpenCollectiveConfig> {
        let o = self.table(t, "opencollective")?;
        let path = "opencollective";
        self.unknown_keys(
            o,
            path,
            &[
                "endpoint",
                "collective",
                "token_env",
                "overlap_seconds",
                "website",
                "timeout_seconds",
                "webhook_token_env",
            ],
        );
        let endpoint = self
            .string(o, path, "endpoint")
            .unwrap_or_else(|| "https://api.opencollective.com/graphql/v2".into());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            self.problem(
                "opencollective.endpoint",
                format!("{endpoint:?} is not an http(s) URL"),
            );
        }
        let overlap_seconds = self
            .integer(
                o,
                path,
                "overlap_seconds",
                0,
                MAX_OPENCOLLECTIVE_OVERLAP_SECONDS,
            )
            .unwrap_or(DEFAULT_OPENCOLLECTIVE_OVERLAP_SECONDS);
        let timeout_seconds = self
            .integer(o, path, "timeout_seconds", 1, 600)
            .unwrap_or(DEFAULT_OPENCOLLECTIVE_TIMEOUT_SECONDS);
        let website = self
            .string(o, path, "website")
            .unwrap_or_else(|| "https://opencollective.com".into());
        if !(website.starts_with("http://") || website.starts_with("https://")) {
            self.problem(
                "opencollective.website",
                format!("{website:?} is not an http(s) URL"),
            );
        }
        let collective = self.required_string(o, path, "collective")?;
        let token_env = self.env_name(o, path, "token_env");
        let webhook_token_env = self.env_name(o, path, "webhook_token_env");
        Some(OpenCollectiveConfig {
            endpoint,
            collective,
            token_env,
            overlap_seconds,
            website: website.trim_end_matches('/').to_string(),
            timeout_seconds,
            webhook_token_env,
        })
    }
}
