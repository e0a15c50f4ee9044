//! `[[machines]]`: names, aliases, slots, active interval, idle fund and one price.
use super::funds::Fund;
use super::walker::{join, Walker};
use crate::money::Price;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use toml::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostModel {
    /// Price of one calendar month, accrued per second of that month.
    Monthly(Price),
    /// Price of one hour of being provisioned, busy or not.
    Hourly(Price),
    /// Price of one busy hour; no idle cost.
    Metered(Price),
}

impl CostModel {
    pub fn kind(&self) -> &'static str {
        match self {
            CostModel::Monthly(_) => "monthly",
            CostModel::Hourly(_) => "hourly",
            CostModel::Metered(_) => "metered",
        }
    }

    pub fn price(&self) -> Price {
        match self {
            CostModel::Monthly(p) | CostModel::Hourly(p) | CostModel::Metered(p) => *p,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub aliases: Vec<String>,
    pub slots: u32,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
    /// The fund that pays this machine's idle cost (already defaulted to the default fund).
    pub idle_fund: String,
    pub cost: CostModel,
}

impl Walker {
    pub(super) fn machines(
        &mut self,
        t: &Table,
        funds: &[Fund],
        default_fund: &str,
    ) -> Vec<Machine> {
        let mut machines: Vec<Machine> = Vec::new();
        // Every name and alias seen so far, with the key path that claimed it.
        let mut names: HashMap<String, String> = HashMap::new();
        for (i, m) in self.array_of_tables(t, "machines").into_iter().enumerate() {
            let path = format!("machines[{i}]");
            self.unknown_keys(
                m,
                &path,
                &[
                    "name",
                    "aliases",
                    "slots",
                    "active_from",
                    "active_until",
                    "idle_fund",
                    "monthly",
                    "hourly",
                    "metered",
                ],
            );
            let name = self.required_string(m, &path, "name");
            let aliases = self.string_list(m, &path, "aliases");
            let slots = self.integer(m, &path, "slots", 1, 100_000).unwrap_or(1) as u32;
            let active_from = self.instant(m, &path, "active_from");
            let active_until = self.instant(m, &path, "active_until");
            if let (Some(from), Some(until)) = (active_from, active_until) {
                if until <= from {
                    self.problem(join(&path, "active_until"), "must be after active_from");
                }
            }
            let idle_fund = if m.contains_key("idle_fund") {
                self.fund_ref(m, &path, "idle_fund", funds)
            } else {
                Some(default_fund.to_string())
            };
            let models: Vec<&str> = ["monthly", "hourly", "metered"]
                .into_iter()
                .filter(|k| m.contains_key(*k))
                .collect();
            let cost = match models.as_slice() {
                [kind] => {
                    let kind = *kind;
                    self.amount_text(m, &path, kind)
                        .and_then(|text| match Price::parse(&text) {
                            Ok(p) => Some(match kind {
                                "monthly" => CostModel::Monthly(p),
                                "hourly" => CostModel::Hourly(p),
                                _ => CostModel::Metered(p),
                            }),
                            Err(e) => {
                                self.problem(join(&path, kind), e);
                                None
                            }
                        })
                }
                [] => {
                    self.problem(&path, "needs a price: one of monthly, hourly or metered");
                    None
                }
                _ => {
                    self.problem(
                        &path,
                        format!(
                            "has {} prices; give exactly one of monthly, hourly or metered",
                            models.join(" and ")
                        ),
                    );
                    None
                }
            };
            let Some(name) = name else { continue };
            let mut claims = vec![(name.clone(), join(&path, "name"))];
            claims.extend(
                aliases
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (a.clone(), format!("{path}.aliases[{j}]"))),
            );
            for (claimed, at) in claims {
                if let Some(previous) = names.get(&claimed) {
                    self.problem(&at, format!("{claimed:?} is already used by {previous}"));
                } else {
                    names.insert(claimed, at);
                }
            }
            let (Some(cost), Some(idle_fund)) = (cost, idle_fund) else {
                continue;
            };
            machines.push(Machine {
                name,
                aliases,
                slots,
                active_from,
                active_until,
                idle_fund,
                cost,
            });
        }
        machines
    }
}
