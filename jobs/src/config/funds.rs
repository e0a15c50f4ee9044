//! `[[funds]]` and `[[pools]]`.
use super::walker::{join, type_name, Walker};
use super::OTHER_POOL;
use crate::money::parse_fraction;
use globset::GlobMatcher;
use rust_decimal::Decimal;
use toml::{Table, Value};

#[derive(Clone, Debug)]
pub struct Fund {
    pub slug: String,
    pub name: String,
    pub default: bool,
    pub monthly_goal_cents: Option<i64>,
    pub opening_balance_cents: i64,
    pub reserve_cents: i64,
    pub accounts: Vec<String>,
    pub tiers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Pool {
    pub slug: String,
    pub fund: String,
    pub jobsets: Vec<String>,
    matchers: Vec<GlobMatcher>,
    pub monthly_budget_cents: Option<i64>,
    pub warn_at: Decimal,
}

impl Pool {
    pub fn matches(&self, jobset_key: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(jobset_key))
    }
}

impl Walker {
    pub(super) fn slug(&mut self, t: &Table, path: &str) -> Option<String> {
        let slug = self.required_string(t, path, "slug")?;
        if !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            self.problem(
                join(path, "slug"),
                format!("{slug:?} may only contain a-z, 0-9, '-' and '_'"),
            );
        }
        Some(slug)
    }

    pub(super) fn funds(&mut self, t: &Table) -> Vec<Fund> {
        let tables = self.array_of_tables(t, "funds");
        if tables.is_empty() && !t.contains_key("funds") {
            return vec![Fund {
                slug: "general".into(),
                name: "General fund".into(),
                default: true,
                monthly_goal_cents: None,
                opening_balance_cents: 0,
                reserve_cents: 0,
                accounts: Vec::new(),
                tiers: Vec::new(),
            }];
        }
        let mut funds: Vec<Fund> = Vec::new();
        for (i, f) in tables.into_iter().enumerate() {
            let path = format!("funds[{i}]");
            self.unknown_keys(
                f,
                &path,
                &[
                    "slug",
                    "name",
                    "default",
                    "monthly_goal",
                    "opening_balance",
                    "reserve",
                    "accounts",
                    "tiers",
                ],
            );
            let slug = self.slug(f, &path);
            let name = self.string(f, &path, "name");
            let default = self.boolean(f, &path, "default").unwrap_or(false);
            let monthly_goal_cents = self.cents(f, &path, "monthly_goal", false);
            let opening_balance_cents = self.cents(f, &path, "opening_balance", true).unwrap_or(0);
            let reserve_cents = self.cents(f, &path, "reserve", false).unwrap_or(0);
            let accounts = self.string_list(f, &path, "accounts");
            let tiers = self.string_list(f, &path, "tiers");
            let Some(slug) = slug else { continue };
            if let Some(j) = funds.iter().position(|o| o.slug == slug) {
                self.problem(
                    join(&path, "slug"),
                    format!("{slug:?} is already the slug of funds[{j}]"),
                );
                continue;
            }
            funds.push(Fund {
                name: name.unwrap_or_else(|| slug.clone()),
                slug,
                default,
                monthly_goal_cents,
                opening_balance_cents,
                reserve_cents,
                accounts,
                tiers,
            });
        }
        let defaults = funds.iter().filter(|f| f.default).count();
        if defaults != 1 {
            self.problem(
                "funds",
                format!("exactly one fund must have default = true (found {defaults})"),
            );
        }
        funds
    }

    pub(super) fn fund_ref(
        &mut self,
        t: &Table,
        path: &str,
        key: &str,
        funds: &[Fund],
    ) -> Option<String> {
        let slug = self.string(t, path, key)?;
        if !funds.iter().any(|f| f.slug == slug) {
            let known: Vec<&str> = funds.iter().map(|f| f.slug.as_str()).collect();
            self.problem(
                join(path, key),
                format!("{slug:?} is not a fund (funds: {})", known.join(", ")),
            );
            return None;
        }
        Some(slug)
    }

    pub(super) fn pools(&mut self, t: &Table, funds: &[Fund]) -> Vec<Pool> {
        let mut pools: Vec<Pool> = Vec::new();
        for (i, p) in self.array_of_tables(t, "pools").into_iter().enumerate() {
            let path = format!("pools[{i}]");
            self.unknown_keys(
                p,
                &path,
                &["slug", "fund", "jobsets", "monthly_budget", "warn_at"],
            );
            let slug = self.slug(p, &path);
            if !p.contains_key("fund") {
                self.problem(join(&path, "fund"), "missing");
            }
            let fund = self.fund_ref(p, &path, "fund", funds);
            let jobsets = self.string_list(p, &path, "jobsets");
            if jobsets.is_empty() && !p.contains_key("jobsets") {
                self.problem(
                    join(&path, "jobsets"),
                    "missing (glob patterns over project:jobset)",
                );
            }
            let mut matchers = Vec::new();
            for (j, pattern) in jobsets.iter().enumerate() {
                // `*` and `?` stop at `/`: no name ingested since the name check has one, and
                // one stored before must not slip into a pool through it.
                let glob = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build();
                match glob {
                    Ok(g) => matchers.push(g.compile_matcher()),
                    Err(e) => self.problem(
                        format!("{path}.jobsets[{j}]"),
                        format!("{pattern:?} is not a glob: {e}"),
                    ),
                }
            }
            let monthly_budget_cents = self.cents(p, &path, "monthly_budget", false);
            let warn_at = match p.get("warn_at") {
                None => Some(Decimal::new(8, 1)),
                Some(Value::String(s)) => self.fraction(&path, s),
                Some(Value::Float(f)) => self.fraction(&path, &f.to_string()),
                Some(Value::Integer(i)) => self.fraction(&path, &i.to_string()),
                Some(other) => {
                    self.problem(
                        join(&path, "warn_at"),
                        format!("must be a fraction such as 0.8, not {}", type_name(other)),
                    );
                    None
                }
            };
            let Some(slug) = slug else { continue };
            if slug == OTHER_POOL {
                self.problem(
                    join(&path, "slug"),
                    "\"other\" is the implicit pool of unmatched jobsets; choose another slug",
                );
                continue;
            }
            if let Some(j) = pools.iter().position(|o| o.slug == slug) {
                self.problem(
                    join(&path, "slug"),
                    format!("{slug:?} is already the slug of pools[{j}]"),
                );
                continue;
            }
            let (Some(fund), Some(warn_at)) = (fund, warn_at) else {
                continue;
            };
            pools.push(Pool {
                slug,
                fund,
                jobsets,
                matchers,
                monthly_budget_cents,
                warn_at,
            });
        }
        pools
    }

    pub(super) fn fraction(&mut self, path: &str, text: &str) -> Option<Decimal> {
        match parse_fraction(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(join(path, "warn_at"), e);
                None
            }
        }
    }
}
