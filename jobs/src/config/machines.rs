//! `[[machines]]`: names, aliases, slots, active interval, idle fund, one price, and the
//! dated `[[machines.changes]]` of price and slots.
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

/// The cost model and slots of a machine in force over some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub cost: CostModel,
    pub slots: u32,
}

/// Which month a machine's invoice pays for (`billing` on `[[machines]]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// The month before the month of the invoice's `incurred_at` (the default).
    #[default]
    Arrears,
    /// The month of the invoice's `incurred_at`.
    Advance,
    /// Never invoiced to this ledger (donated, or paid elsewhere).
    None,
}

impl Billing {
    pub fn as_str(self) -> &'static str {
        match self {
            Billing::Arrears => "arrears",
            Billing::Advance => "advance",
            Billing::None => "none",
        }
    }
}

/// One `[[machines.changes]]`: from `from` (00:00:00 UTC of its date) on, the new cost model
/// and/or slots; what it does not name keeps its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineChange {
    pub from: DateTime<Utc>,
    pub cost: Option<CostModel>,
    pub slots: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub aliases: Vec<String>,
    /// Slots before the first change (and always, without changes).
    pub slots: u32,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
    /// The fund that pays this machine's idle cost (already defaulted to the default fund).
    pub idle_fund: String,
    /// The cost model before the first change (and always, without changes).
    pub cost: CostModel,
    /// Dated changes, `from` strictly increasing.
    pub changes: Vec<MachineChange>,
    /// Tags that make an expense this machine's invoice (compared case-insensitively).
    pub invoice_tags: Vec<String>,
    pub billing: Billing,
    /// How far billed may be from modeled and still match, in cents; `None`: 1 % of modeled.
    pub billing_tolerance_cents: Option<i64>,
}

impl Machine {
    /// The terms in force at instant `t` (unix seconds): the machine's own, then every change
    /// whose `from` is at or before `t`, in order.
    pub fn terms_at(&self, t: i64) -> Terms {
        let mut terms = Terms {
            cost: self.cost,
            slots: self.slots,
        };
        for c in self.changes.iter().take_while(|c| c.from.timestamp() <= t) {
            terms.cost = c.cost.unwrap_or(terms.cost);
            terms.slots = c.slots.unwrap_or(terms.slots);
        }
        terms
    }
}

const MODELS: [&str; 3] = ["monthly", "hourly", "metered"];

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
                    "changes",
                    "invoice_tags",
                    "billing",
                    "billing_tolerance",
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
            let cost = match self.cost_models(m, &path).as_slice() {
                [(_, one)] => *one,
                [] => {
                    self.problem(&path, "needs a price: one of monthly, hourly or metered");
                    None
                }
                many => {
                    self.problem(
                        &path,
                        format!(
                            "has {} prices; give exactly one of monthly, hourly or metered",
                            kinds(many)
                        ),
                    );
                    None
                }
            };
            let changes = self.changes(m, &path);
            let invoice_tags = self.string_list(m, &path, "invoice_tags");
            let billing = match self.string(m, &path, "billing").as_deref() {
                None | Some("arrears") => Some(Billing::Arrears),
                Some("advance") => Some(Billing::Advance),
                Some("none") => Some(Billing::None),
                Some(other) => {
                    self.problem(
                        join(&path, "billing"),
                        format!("{other:?} is not one of \"arrears\", \"advance\", \"none\""),
                    );
                    None
                }
            };
            let billing_tolerance_cents = self.cents(m, &path, "billing_tolerance", false);
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
            let (Some(cost), Some(idle_fund), Some(billing)) = (cost, idle_fund, billing) else {
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
                changes,
                invoice_tags,
                billing,
                billing_tolerance_cents,
            });
        }
        machines
    }

    /// The cost models `t` names, in the order monthly, hourly, metered: `(key, parsed)` with
    /// `None` for a price that did not parse (already reported).
    fn cost_models(&mut self, t: &Table, path: &str) -> Vec<(&'static str, Option<CostModel>)> {
        let mut out = Vec::new();
        for kind in MODELS.into_iter().filter(|k| t.contains_key(*k)) {
            let model =
                self.amount_text(t, path, kind)
                    .and_then(|text| match Price::parse(&text) {
                        Ok(p) => Some(match kind {
                            "monthly" => CostModel::Monthly(p),
                            "hourly" => CostModel::Hourly(p),
                            _ => CostModel::Metered(p),
                        }),
                        Err(e) => {
                            self.problem(join(path, kind), e);
                            None
                        }
                    });
            out.push((kind, model));
        }
        out
    }

    /// `[[machines.changes]]` of the machine at `path`: `from` a date, strictly increasing;
    /// at least one of monthly/hourly/metered/slots and at most one cost model each.
    fn changes(&mut self, m: &Table, path: &str) -> Vec<MachineChange> {
        let mut out: Vec<MachineChange> = Vec::new();
        // The previous change's `from`, valid or not, to check the order against.
        let mut previous: Option<DateTime<Utc>> = None;
        for (j, c) in self
            .nested_tables(m, path, "changes")
            .into_iter()
            .enumerate()
        {
            let at = format!("{path}.changes[{j}]");
            self.unknown_keys(c, &at, &["from", "monthly", "hourly", "metered", "slots"]);
            let from = if c.contains_key("from") {
                self.date(c, &at, "from")
            } else {
                self.problem(join(&at, "from"), "missing");
                None
            };
            if let (Some(from), Some(before)) = (from, previous) {
                if from <= before {
                    self.problem(
                        join(&at, "from"),
                        format!(
                            "{} is not after the previous change's from ({})",
                            from.date_naive(),
                            before.date_naive()
                        ),
                    );
                }
            }
            previous = from.or(previous);
            let slots = self.integer(c, &at, "slots", 1, 100_000).map(|s| s as u32);
            let models = self.cost_models(c, &at);
            let cost = match models.as_slice() {
                [] if !c.contains_key("slots") => {
                    self.problem(
                        &at,
                        "changes nothing: give one of monthly, hourly or metered, or slots",
                    );
                    None
                }
                [] => None,
                [(_, model)] => *model,
                many => {
                    self.problem(
                        &at,
                        format!(
                            "has {} prices; give at most one of monthly, hourly or metered",
                            kinds(many)
                        ),
                    );
                    None
                }
            };
            if let Some(from) = from {
                out.push(MachineChange { from, cost, slots });
            }
        }
        out
    }
}

fn kinds(models: &[(&str, Option<CostModel>)]) -> String {
    models
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Warnings about `machines` that do not stop the config from loading: an invoice tag two
/// machines claim (compared case-insensitively); the first in config order takes its invoices.
pub fn tag_warnings(machines: &[Machine]) -> Vec<String> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::new();
    for (i, m) in machines.iter().enumerate() {
        for (j, tag) in m.invoice_tags.iter().enumerate() {
            let key = tag.to_lowercase();
            match seen.get(&key) {
                Some(first) if *first != m.name => out.push(format!(
                    "machines[{i}].invoice_tags[{j}]: {tag:?} is also an invoice tag of machine \
                     {first:?}; expenses tagged with it are invoices of {first:?} (the first in \
                     config order), never of {:?}",
                    m.name
                )),
                Some(_) => {}
                None => {
                    seen.insert(key, m.name.as_str());
                }
            }
        }
    }
    out
}
