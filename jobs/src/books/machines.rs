//! The month's machines as the reports show them: each one's cost in the month, its use of the
//! capacity it had under the slots in force part by part, the terms in force at the period's
//! instant and its changes dated in the month.
use crate::books::attribution::Line;
use crate::books::terms::WindowTerms;
use crate::calendar::Period;
use crate::config::{Machine, Terms};
use serde::Serialize;

/// A machine's cost model, price and slots as shown (`price` with at least two decimals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermsShown {
    /// `monthly`, `hourly` or `metered`.
    pub model: &'static str,
    pub price: String,
    pub slots: u32,
}

impl From<Terms> for TermsShown {
    fn from(t: Terms) -> Self {
        TermsShown {
            model: t.cost.kind(),
            price: t.cost.price().shown(),
            slots: t.slots,
        }
    }
}

/// A change of a machine's terms dated in the month (before the report's instant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeShown {
    /// `YYYY-MM-DD`: the change is in force from 00:00:00 UTC of that day.
    pub from: String,
    pub before: TermsShown,
    pub after: TermsShown,
}

/// One machine's cost in the month, with its use of the capacity it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MachineCost {
    pub machine: String,
    pub busy_seconds: i64,
    /// The sum over the window's parts of `slots * |active part|` (the slots in force in each
    /// part), the window being the month clipped to `[ledger_start, as_of)`.
    pub capacity_seconds: i64,
    /// Every line of the machine, idle included.
    pub cost_cents: i64,
    pub idle_cents: i64,
    /// `busy / capacity` in tenths of a percent, exact and rounded down (may exceed 1000 when
    /// the machine ran more steps than slots); `None` with no capacity. Shown by
    /// [`crate::report::view::utilization_text`].
    pub utilization_permille: Option<i64>,
    /// The terms in force at the end of the window (the last second before the month's end
    /// or `at`).
    pub terms: TermsShown,
    /// Its changes dated in the month before `at`, oldest first.
    pub changes: Vec<ChangeShown>,
}

/// The changes of `m` dated in `[start, as_of)`.
fn changes_in(m: &Machine, start: i64, as_of: i64) -> Vec<ChangeShown> {
    m.changes
        .iter()
        .map(|c| c.from.timestamp())
        .filter(|&t| t >= start && t < as_of)
        .map(|t| ChangeShown {
            from: crate::calendar::from_unix(t).format("%Y-%m-%d").to_string(),
            before: m.terms_at(t - 1).into(),
            after: m.terms_at(t).into(),
        })
        .collect()
}

/// Every configured machine with an active part in `period`'s month (to its instant), by name,
/// given the machines' terms over the period's window (`None` when the window is empty) and
/// the window's lines.
pub fn machine_costs(
    period: &Period,
    terms: Option<&WindowTerms>,
    lines: &[Line],
) -> Vec<MachineCost> {
    let as_of = period.at.timestamp().min(period.span.end);
    let mut out = Vec::new();
    for t in terms.map_or(&[][..], |t| t.machines.as_slice()) {
        let m = t.machine;
        let changes = changes_in(m, period.span.start, as_of);
        let (mut active, mut capacity) = (0i64, 0i64);
        for part in &t.parts {
            let len = part.active.map_or(0, |a| a.len());
            active += len;
            capacity += len * i64::from(part.terms.slots);
        }
        let mine = lines.iter().filter(|l| l.machine == m.name);
        let (mut busy, mut cost, mut idle) = (0i64, 0i64, 0i64);
        for l in mine {
            busy += l.busy_seconds;
            cost += l.cost_cents;
            if l.idle {
                idle += l.cost_cents;
            }
        }
        if active == 0 && busy == 0 && cost == 0 {
            continue;
        }
        out.push(MachineCost {
            machine: m.name.clone(),
            busy_seconds: busy,
            capacity_seconds: capacity,
            cost_cents: cost,
            idle_cents: idle,
            utilization_permille: (capacity > 0)
                .then(|| (i128::from(busy) * 1000 / i128::from(capacity)) as i64),
            terms: m.terms_at(as_of - 1).into(),
            changes,
        });
    }
    out.sort_by(|a, b| a.machine.cmp(&b.machine));
    out
}
