//! `[gate]`: the webhooks told of every pool state change.
use super::walker::{join, type_name, Walker};
use toml::{Table, Value};

/// The gate (`[gate]`): outgoing webhooks on every pool state change.
#[derive(Clone, Debug, Default)]
pub struct GateConfig {
    pub webhooks: Vec<Webhook>,
}

/// One webhook receiver (`[[gate.webhooks]]`).
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// The NAME of the environment variable holding the HMAC-SHA256 secret.
    pub secret_env: Option<String>,
}

impl Walker {
    pub(super) fn gate(&mut self, t: &Table) -> GateConfig {
        let mut gate = GateConfig::default();
        let Some(g) = self.table(t, "gate") else {
            return gate;
        };
        self.unknown_keys(g, "gate", &["webhooks"]);
        let hooks = match g.get("webhooks") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => {
                self.problem(
                    "gate.webhooks",
                    format!(
                        "must be an array of tables ([[gate.webhooks]]), not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        };
        for (i, item) in hooks.into_iter().enumerate() {
            let path = format!("gate.webhooks[{i}]");
            let Value::Table(w) = item else {
                self.problem(&path, format!("must be a table, not {}", type_name(item)));
                continue;
            };
            self.unknown_keys(w, &path, &["url", "secret_env"]);
            let url = self.required_string(w, &path, "url");
            if let Some(u) = &url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    self.problem(join(&path, "url"), format!("{u:?} is not an http(s) URL"));
                }
            }
            let secret_env = self.env_name(w, &path, "secret_env");
            if let Some(url) = url {
                gate.webhooks.push(Webhook { url, secret_env });
            }
        }
        gate
    }
}
