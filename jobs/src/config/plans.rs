//! `[[plans]]`: what more money would build (cost-model.md, "Plans"). A plan names the fund it
//! would add a recurring cost to and that cost per 30 days; a fund's plans rank in file order.
//!
//! This section's walker is a method of the one [`super::walker::Walker`], so its problems carry key
//! paths like every other section's (`plans[1].fund: "gpu" is not a fund (funds: general,
//! cuda)`).
use super::walker::{join, Walker};
use super::Fund;
use toml::Table;

/// A next step that would add `monthly_cents` to `fund`'s cost every 30 days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub slug: String,
    pub name: String,
    /// The slug of a configured fund.
    pub fund: String,
    /// What the plan would add to the fund's cost per 30 days, in cents (> 0).
    pub monthly_cents: i64,
    /// Where the plan is discussed: an `http://` or `https://` address.
    pub url: Option<String>,
}

pub(super) const PLAN_KEYS: &[&str] = &["slug", "name", "fund", "monthly", "url"];

impl Walker {
    /// Every `[[plans]]` table: slug unique among plans, a configured fund, `monthly` a
    /// positive amount in whole cents, `url` a web address when given.
    pub(super) fn plans(&mut self, t: &Table, funds: &[Fund]) -> Vec<super::Plan> {
        let mut plans: Vec<Plan> = Vec::new();
        // Every slug seen, with the index of its table in the file.
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, p) in self.array_of_tables(t, "plans").into_iter().enumerate() {
            let path = format!("plans[{i}]");
            self.unknown_keys(p, &path, PLAN_KEYS);
            let slug = self.slug(p, &path);
            let name = self.required_string(p, &path, "name");
            if !p.contains_key("fund") {
                self.problem(join(&path, "fund"), "missing");
            }
            let fund = self.fund_ref(p, &path, "fund", funds);
            let monthly = if p.contains_key("monthly") {
                self.cents(p, &path, "monthly", false)
            } else {
                self.problem(
                    join(&path, "monthly"),
                    "missing (what the plan would add to the fund's cost per 30 days, such as \"180.00\")",
                );
                None
            };
            let monthly = match monthly {
                Some(0) => {
                    self.problem(join(&path, "monthly"), "must be more than 0");
                    None
                }
                m => m,
            };
            let url = self.string(p, &path, "url");
            let url = match url {
                Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                    self.problem(
                        join(&path, "url"),
                        format!("{u:?} is not an http:// or https:// URL"),
                    );
                    None
                }
                u => u,
            };
            let Some(slug) = slug else { continue };
            if let Some((_, j)) = seen.iter().find(|(s, _)| *s == slug) {
                self.problem(
                    join(&path, "slug"),
                    format!("{slug:?} is already the slug of plans[{j}]"),
                );
                continue;
            }
            seen.push((slug.clone(), i));
            let (Some(name), Some(fund), Some(monthly_cents)) = (name, fund, monthly) else {
                continue;
            };
            plans.push(Plan {
                slug,
                name,
                fund,
                monthly_cents,
                url,
            });
        }
        plans
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const FUNDS: &str = r#"ledger_start = "2026-01-01"
[[funds]]
slug = "general"
default = true
[[funds]]
slug = "cuda"
"#;

    #[test]
    fn plans_load_in_file_order() {
        let c = Config::parse(
            &format!(
                "{FUNDS}
[[plans]]
slug = \"gpu-test-runner\"
name = \"A GPU machine to test CUDA at run time\"
fund = \"cuda\"
monthly = \"180.00\"
url = \"https://github.com/NixOS/nixpkgs/issues/1\"
[[plans]]
slug = \"jetson-cache\"
name = \"A binary cache for Jetson boards\"
fund = \"cuda\"
monthly = 40
"
            ),
            "t",
        )
        .unwrap();
        assert_eq!(c.plans.len(), 2);
        assert_eq!(c.plans[0].slug, "gpu-test-runner");
        assert_eq!(c.plans[0].monthly_cents, 18000);
        assert_eq!(
            c.plans[0].url.as_deref(),
            Some("https://github.com/NixOS/nixpkgs/issues/1")
        );
        assert_eq!(
            (c.plans[1].monthly_cents, c.plans[1].url.as_deref()),
            (4000, None)
        );
        assert!(Config::parse(FUNDS, "t").unwrap().plans.is_empty());
    }

    #[test]
    fn plan_problems_carry_their_key_paths() {
        let err = Config::parse(
            &format!(
                "{FUNDS}
[[plans]]
slug = \"a\"
name = \"A\"
fund = \"gpu\"
monthly = \"0\"
url = \"javascript:alert(1)\"
colour = \"red\"
[[plans]]
slug = \"b\"
fund = \"cuda\"
monthly = \"-5.00\"
[[plans]]
slug = \"c\"
name = \"C\"
fund = \"cuda\"
monthly = \"1.005\"
[[plans]]
slug = \"d\"
name = \"D\"
[[plans]]
slug = \"e\"
name = \"E\"
fund = \"cuda\"
monthly = \"10\"
[[plans]]
slug = \"e\"
name = \"E again\"
fund = \"general\"
monthly = \"20\"
"
            ),
            "t",
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "plans[0].colour: unknown key (expected one of: slug, name, fund, monthly, url)",
                "plans[0].fund: \"gpu\" is not a fund (funds: general, cuda)",
                "plans[0].monthly: must be more than 0",
                "plans[0].url: \"javascript:alert(1)\" is not an http:// or https:// URL",
                "plans[1].name: missing",
                "plans[1].monthly: \"-5.00\" must not be negative",
                "plans[2].monthly: \"1.005\" has fractions of a cent",
                "plans[3].fund: missing",
                "plans[3].monthly: missing (what the plan would add to the fund's cost per 30 days, such as \"180.00\")",
                "plans[5].slug: \"e\" is already the slug of plans[4]",
            ]
        );
    }
}
