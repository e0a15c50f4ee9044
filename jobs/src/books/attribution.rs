//! Attribution of machine cost to jobsets, pools and funds (cost-model.md, "Machine cost of a
//! window" and "Busy time and attribution").
//!
//! Plain functions over plain data: the caller gathers the busy seconds of each jobset on a
//! machine in a window (a window inside one calendar month, clipped to `[ledger_start, now)`
//! and, for the busy seconds, to the machine's active part), and [`machine_lines`] turns them
//! into cost lines that sum exactly to the machine's rounded cost.
//!
//! All arithmetic is on exact rationals of cents held in `i128` (no floats, no decimal
//! rounding before the single rounding the contract asks for). The machine's dates and prices
//! come prepared ([`PricedPart`], [`super::terms`]): each part of a window with its terms, its
//! active span and its price as an exact fraction of cents.
//!
//! Decisions where cost-model.md is silent, in one place:
//! - `active_from` is inclusive and `active_until` exclusive (every interval is half-open); a
//!   missing bound is unbounded.
//! - A metered machine's cost is `price * busy / 3600` with `busy` the sum of the (clipped)
//!   step seconds as given, even when it exceeds `slots * |A|`: metered billing is per busy
//!   hour, and the contract does not cap it. A metered machine with no active part costs 0.
//! - A jobset with busy seconds on a machine whose price is 0 still gets its line (0 cents):
//!   the line carries the busy seconds. The idle line only exists when its exact amount is > 0.
//! - Remaining cents go to the largest fractional remainders; ties are broken by plain
//!   byte-wise ascending comparison of the line keys (`~idle` included), as the contract says.
//!   Lines are *listed* jobsets ascending, then the idle line last.
//! - [`machine_lines`] refuses a window that crosses a month boundary
//!   ([`AttributionError::WindowCrossesMonth`]): the contract
//!   rounds each month part on its own, so one call per
//!   [`split_months`](crate::calendar::split_months) part is required.
//!   [`machine_cost_exact`] accepts any window (a monthly price is prorated per month part).
//! - Nothing here clips to `ledger_start` or `now`: the caller does, as documented per function.
//! - A machine's `[[machines.changes]]` split a window at their instants
//!   ([`machine_parts`](super::terms::machine_parts)):
//!   each part is attributed and rounded on its own with the [`Terms`] in force during it
//!   ([`part_lines`]). [`machine_lines`] and [`machine_cost_exact`] take a window without a
//!   change inside it ([`AttributionError::WindowHoldsChange`] otherwise).
use crate::books::terms::{MachineTerms, PricedPart};
use crate::calendar::{month_of, Span};
use crate::config::{Config, CostModel, IdlePolicy, Machine, Terms, OTHER_POOL};
use crate::money::{
    add, add_fractions, gcd, mul, narrow, reduce, round_half_away_from_zero, Overflow,
};
use std::collections::BTreeMap;

/// The line key of a machine's idle line (sorts after every ASCII jobset key in ties).
pub const IDLE_KEY: &str = "~idle";

/// Seconds in one hour, the unit of hourly and metered prices.
const HOUR: i128 = 3600;

/// One cost line of one (machine, window).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Line {
    /// Canonical machine name.
    pub machine: String,
    /// `project:jobset`; `None` on the idle line.
    pub jobset: Option<String>,
    /// Pool slug, [`OTHER_POOL`] for jobsets matching no pool; `None` on the idle line.
    pub pool: Option<String>,
    /// The pool's fund (the default fund for [`OTHER_POOL`]); the machine's `idle_fund` on the
    /// idle line.
    pub fund: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub idle: bool,
    /// 0 on the idle line.
    pub busy_seconds: i64,
    pub cost_cents: i64,
}

impl Line {
    /// The line key used for tie-breaking: `project:jobset`, or [`IDLE_KEY`].
    pub fn key(&self) -> &str {
        self.jobset.as_deref().unwrap_or(IDLE_KEY)
    }
}

/// One line before rounding: `numerator / ExactShares::denominator` cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactLine {
    /// `project:jobset`, or [`IDLE_KEY`].
    pub key: String,
    /// 0 on the idle line.
    pub busy_seconds: i64,
    pub numerator: i128,
}

/// The exact (unrounded) lines of one (machine, window) over one common denominator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactShares {
    /// Common denominator (> 0) of every line, in cents.
    pub denominator: i128,
    /// Jobsets ascending by key, then the idle line when its amount is > 0. The numerators sum
    /// to the machine's exact cost over `denominator`.
    pub lines: Vec<ExactLine>,
}

impl ExactShares {
    /// The machine's exact cost, as `(numerator, denominator)` (not reduced).
    pub fn total(&self) -> Result<(i128, i128), Overflow> {
        let n = self
            .lines
            .iter()
            .try_fold(0i128, |acc, l| add(acc, l.numerator))?;
        Ok((n, self.denominator))
    }
}

/// What the attribution refuses: an amount out of range, or inputs outside its rules (which
/// the books never pass: each is a caller's mistake, returned rather than panicking).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttributionError {
    #[error(transparent)]
    Overflow(#[from] Overflow),
    /// A window given to [`machine_lines`] or [`machine_cost_exact`] holds a change of the
    /// machine's terms: each part between changes is attributed on its own.
    #[error(
        "{caller}: the window [{start}, {end}) of machine {machine} holds a change; split it \
         with machine_parts and attribute each part on its own"
    )]
    WindowHoldsChange {
        caller: &'static str,
        machine: String,
        start: i64,
        end: i64,
    },
    /// A window crosses a month boundary: each month part is rounded on its own.
    #[error(
        "machine_lines: the window [{start}, {end}) of machine {machine} crosses a month \
         boundary; split it with split_months and attribute each part on its own"
    )]
    WindowCrossesMonth {
        machine: String,
        start: i64,
        end: i64,
    },
    /// Busy seconds below zero.
    #[error("busy seconds of {of} are negative ({seconds})")]
    NegativeBusy { of: String, seconds: i64 },
    /// A line of negative cents given to be split among its jobs.
    #[error("split_line: a line of {cents} cents")]
    NegativeLine { cents: i64 },
    /// The rounding has more cents to hand out than lines (amounts below zero).
    #[error("round_lines: {left} cents to hand out over {lines} lines")]
    Rounding { left: i128, lines: usize },
}

/// The one part of a window without a change of the machine strictly inside it (`None` for an
/// empty window); a window holding a change is refused.
fn single_part(
    machine: &Machine,
    window: Span,
    caller: &'static str,
) -> Result<Option<PricedPart>, AttributionError> {
    let MachineTerms { mut parts, .. } = MachineTerms::prepare(machine, window);
    if parts.len() > 1 {
        return Err(AttributionError::WindowHoldsChange {
            caller,
            machine: machine.name.clone(),
            start: window.start,
            end: window.end,
        });
    }
    Ok(parts.pop())
}

/// Exact (unrounded) cost of the machine in the window as a fraction of cents (numerator,
/// denominator), per "Machine cost of a window"; `busy_total` is the machine's total busy
/// seconds in the active span (only used by metered). The window holds no change of the
/// machine (refused otherwise; see [`part_cost_exact`]).
///
/// The fraction is in lowest terms with a positive denominator; `(0, 1)` when the machine has
/// no active part in the window. A monthly price over a window that crosses a month boundary
/// is prorated per month part (each part over its own month's seconds).
pub fn machine_cost_exact(
    machine: &Machine,
    window: Span,
    busy_total: i64,
) -> Result<(i128, i128), AttributionError> {
    match single_part(machine, window, "machine_cost_exact")? {
        Some(part) => part_cost_exact(machine, &part, busy_total),
        None => Ok((0, 1)),
    }
}

/// [`machine_cost_exact`] of one prepared part of a window.
pub(crate) fn part_cost_exact(
    machine: &Machine,
    part: &PricedPart,
    busy_total: i64,
) -> Result<(i128, i128), AttributionError> {
    let Some(active) = part.active else {
        return Ok((0, 1));
    };
    let (pn, pd) = part.price;
    Ok(match part.terms.cost {
        CostModel::Monthly(_) => part.months.iter().try_fold((0, 1), |sum, &(len, month)| {
            add_fractions(
                sum,
                (mul(pn, i128::from(len))?, mul(pd, i128::from(month))?),
            )
        })?,
        CostModel::Hourly(_) => reduce(mul(pn, i128::from(active.len()))?, mul(pd, HOUR)?)?,
        CostModel::Metered(_) => {
            if busy_total < 0 {
                return Err(AttributionError::NegativeBusy {
                    of: machine.name.clone(),
                    seconds: busy_total,
                });
            }
            reduce(mul(pn, i128::from(busy_total))?, mul(pd, HOUR)?)?
        }
    })
}

/// Whether jobsets of a machine under these terms share its whole cost (no idle line while
/// anything ran): the deployment's policy is proportional, or the machine is metered.
pub(crate) fn is_proportional(config: &Config, terms: &Terms) -> bool {
    config.idle == IdlePolicy::Proportional || matches!(terms.cost, CostModel::Metered(_))
}

fn check_window(machine: &Machine, window: Span) -> Result<(), AttributionError> {
    if !window.is_empty() && window.end > month_of(window.start).end {
        return Err(AttributionError::WindowCrossesMonth {
            machine: machine.name.clone(),
            start: window.start,
            end: window.end,
        });
    }
    Ok(())
}

/// The exact lines of one machine in one part of a window before rounding, under the terms in
/// force during it (same inputs and rules as [`part_lines`]).
pub(crate) fn exact_shares(
    config: &Config,
    machine: &Machine,
    part: &PricedPart,
    busy: &BTreeMap<String, i64>,
) -> Result<ExactShares, AttributionError> {
    check_window(machine, part.span)?;
    let none = ExactShares {
        denominator: 1,
        lines: Vec::new(),
    };
    let Some(active) = part.active else {
        return Ok(none);
    };
    let terms = &part.terms;
    let mut busy_total: i64 = 0;
    for (jobset, &seconds) in busy {
        if seconds < 0 {
            return Err(AttributionError::NegativeBusy {
                of: format!("{jobset} on {}", machine.name),
                seconds,
            });
        }
        busy_total = crate::money::add_cents(busy_total, seconds)?;
    }
    let (n, d) = part_cost_exact(machine, part, busy_total)?;
    let busy_total = i128::from(busy_total);
    let capacity = mul(i128::from(terms.slots), i128::from(active.len()))?;
    let denominator = if is_proportional(config, terms) {
        busy_total
    } else {
        capacity.max(busy_total)
    };
    if denominator == 0 {
        // Nothing ran (proportional, or metered): the whole cost, if any, is idle.
        if n == 0 {
            return Ok(none);
        }
        return Ok(ExactShares {
            denominator: d,
            lines: vec![ExactLine {
                key: IDLE_KEY.to_string(),
                busy_seconds: 0,
                numerator: n,
            }],
        });
    }
    // Line j is n * busy_j / (d * denominator); cancel what n and denominator share so the
    // common denominator stays small.
    let g = gcd(n, denominator)?;
    let (n, reduced) = if n == 0 {
        (0, 1)
    } else {
        (n / g, denominator / g)
    };
    let mut lines: Vec<ExactLine> = busy
        .iter()
        .filter(|(_, &seconds)| seconds > 0)
        .map(|(jobset, &seconds)| {
            Ok(ExactLine {
                key: jobset.clone(),
                busy_seconds: seconds,
                numerator: mul(n, i128::from(seconds))?,
            })
        })
        .collect::<Result<_, Overflow>>()?;
    let idle = mul(n, denominator - busy_total)?;
    if idle > 0 {
        lines.push(ExactLine {
            key: IDLE_KEY.to_string(),
            busy_seconds: 0,
            numerator: idle,
        });
    }
    Ok(ExactShares {
        denominator: mul(d, reduced)?,
        lines,
    })
}

/// Rounds exact lines to whole cents that sum to the total rounded half away from zero: each
/// line gets the floor of its amount, the remaining cents go one each to the largest
/// fractional remainders, ties by ascending key. Returns cents in the order of `shares.lines`.
pub(crate) fn round_lines(shares: &ExactShares) -> Result<Vec<i128>, AttributionError> {
    let d = shares.denominator;
    let (total, _) = shares.total()?;
    let rounded = round_half_away_from_zero(total, d);
    let mut cents: Vec<i128> = shares
        .lines
        .iter()
        .map(|l| l.numerator.div_euclid(d))
        .collect();
    let remainders: Vec<i128> = shares
        .lines
        .iter()
        .map(|l| l.numerator.rem_euclid(d))
        .collect();
    let floors = cents.iter().try_fold(0i128, |acc, &c| add(acc, c))?;
    let left = rounded - floors;
    // Sum of remainders / d is in [0, #lines), so 0 <= left <= #lines with a positive
    // remainder when every amount is >= 0 (always the case here).
    if !(0..=cents.len() as i128).contains(&left) {
        return Err(AttributionError::Rounding {
            left,
            lines: cents.len(),
        });
    }
    let mut order: Vec<usize> = (0..cents.len()).collect();
    order.sort_by(|&a, &b| {
        remainders[b]
            .cmp(&remainders[a])
            .then_with(|| shares.lines[a].key.cmp(&shares.lines[b].key))
    });
    for &i in order.iter().take(left as usize) {
        cents[i] += 1;
    }
    Ok(cents)
}

/// All lines of one machine in one window. `busy` maps "project:jobset" -> busy seconds of that
/// jobset's steps on this machine, ALREADY clipped by the caller to active_span(machine,
/// window). Applies the idle policy (config.idle; metered machines always proportional),
/// capacity = slots*|A|, denominator = max(capacity, busy), pools by first matching glob
/// (config.pool_of), the implicit pool "other" of the default fund, and the exact-cents rule:
/// round the machine total half away from zero to C, floor every line, hand the remaining
/// cents one each to the largest fractional remainders, ties by ascending line key (a
/// jobset's key is "project:jobset", the idle line's key is "~idle"). Lines sorted by key
/// (jobsets ascending, idle last). No line for a jobset with 0 busy seconds. The idle line
/// exists only when its exact amount is > 0. A machine with no active span in the window gives
/// no lines.
///
/// Refused ([`AttributionError`]) when the window crosses a month boundary or holds a change of the machine (use
/// [`super::terms`] and [`part_lines`]), or a busy value is negative.
pub fn machine_lines(
    config: &Config,
    machine: &Machine,
    window: Span,
    busy: &BTreeMap<String, i64>,
) -> Result<Vec<Line>, AttributionError> {
    match single_part(machine, window, "machine_lines")? {
        Some(part) => part_lines(config, machine, &part, busy),
        None => Ok(Vec::new()),
    }
}

/// [`machine_lines`] of one prepared part of a window ([`PricedPart`]) under the terms in
/// force during it: `busy` holds the busy seconds of the part's active span only, and the part
/// is rounded on its own.
pub(crate) fn part_lines(
    config: &Config,
    machine: &Machine,
    part: &PricedPart,
    busy: &BTreeMap<String, i64>,
) -> Result<Vec<Line>, AttributionError> {
    let shares = exact_shares(config, machine, part, busy)?;
    let cents = round_lines(&shares)?;
    let default_fund = &config.default_fund().slug;
    shares
        .lines
        .iter()
        .zip(cents)
        .map(|(exact, cents)| {
            let cost_cents = narrow(cents)?;
            Ok(if exact.key == IDLE_KEY {
                Line {
                    machine: machine.name.clone(),
                    jobset: None,
                    pool: None,
                    fund: machine.idle_fund.clone(),
                    idle: true,
                    busy_seconds: 0,
                    cost_cents,
                }
            } else {
                let (pool, fund) = match config.pool_of(&exact.key) {
                    Some(p) => (p.slug.clone(), p.fund.clone()),
                    None => (OTHER_POOL.to_string(), default_fund.clone()),
                };
                Line {
                    machine: machine.name.clone(),
                    jobset: Some(exact.key.clone()),
                    pool: Some(pool),
                    fund,
                    idle: false,
                    busy_seconds: exact.busy_seconds,
                    cost_cents,
                }
            })
        })
        .collect()
}

/// One machine's lines of a window from the lines of its parts ([`part_lines`], each rounded
/// on its own): summed per jobset and for the idle line, so the machine has one line per
/// jobset (jobsets ascending) and one idle line (last) in the window.
pub(crate) fn merge_parts(parts: &[&[Line]]) -> Vec<Line> {
    let mut merged: BTreeMap<(bool, &str), Line> = BTreeMap::new();
    for l in parts.iter().flat_map(|p| p.iter()) {
        merged
            .entry((l.idle, l.key()))
            .and_modify(|m| {
                m.busy_seconds += l.busy_seconds;
                m.cost_cents += l.cost_cents;
            })
            .or_insert_with(|| l.clone());
    }
    merged.into_values().collect()
}

#[cfg(test)]
#[path = "attribution_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "changes_tests.rs"]
mod changes_tests;
