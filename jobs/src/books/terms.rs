//! The machines' terms over a window, prepared once before any figure is computed: for every
//! configured machine, the parts of the window between its change instants inside it
//! ([`machine_parts`]), each with the terms in force during it, the part's active span
//! (`part ∩ [active_from, active_until)`) and its price as an exact fraction of cents, and the
//! names its steps are recorded under.
//!
//! This is the only place the books read a machine's dates and prices from the config: the
//! reads of busy seconds ([`super::ledger`], [`super::jobs`]) and the arithmetic of
//! [`super::attribution`] and [`super::machines`] take what is prepared here.
use crate::calendar::{seconds_in_month, split_months, Span};
use crate::config::{Config, Machine, Terms};
use std::collections::HashMap;

/// One part of a window of one machine, priced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedPart {
    /// The part of the window (between the machine's change instants inside it).
    pub span: Span,
    /// The terms in force during the part.
    pub terms: Terms,
    /// Where the machine is active in the part; `None` when it is not.
    pub active: Option<Span>,
    /// The price of `terms` as an exact fraction of cents `(numerator, denominator)`.
    pub price: (i128, i128),
    /// The active span split at month boundaries, each piece as (its seconds, the seconds of
    /// its month): what a monthly price is prorated over.
    pub months: Vec<(i64, i64)>,
}

impl PricedPart {
    /// `span` of `machine` under `terms` (a span without a change of the machine inside it).
    pub fn new(machine: &Machine, span: Span, terms: Terms) -> PricedPart {
        let active = active_span(machine, span);
        let months = active
            .map(split_months)
            .unwrap_or_default()
            .into_iter()
            .map(|piece| (piece.len(), seconds_in_month(piece.start)))
            .collect();
        PricedPart {
            span,
            terms,
            active,
            price: terms.cost.price().cents_fraction(),
            months,
        }
    }
}

/// One machine's terms over a window.
#[derive(Clone, Debug)]
pub struct MachineTerms<'a> {
    pub machine: &'a Machine,
    /// Its name and aliases: the names its steps are recorded under.
    pub names: Vec<&'a str>,
    /// The window's parts in time order (none for an empty window).
    pub parts: Vec<PricedPart>,
}

impl<'a> MachineTerms<'a> {
    pub fn prepare(machine: &'a Machine, window: Span) -> MachineTerms<'a> {
        let mut names: Vec<&str> = vec![machine.name.as_str()];
        names.extend(machine.aliases.iter().map(String::as_str));
        let parts = machine_parts(machine, window)
            .into_iter()
            .map(|(span, terms)| PricedPart::new(machine, span, terms))
            .collect();
        MachineTerms {
            machine,
            names,
            parts,
        }
    }

    /// The machine is active through the whole window under one set of terms.
    pub fn whole(&self) -> bool {
        matches!(self.parts.as_slice(), [p] if p.active == Some(p.span))
    }
}

/// Every configured machine's terms over one window, in config order.
#[derive(Clone, Debug)]
pub struct WindowTerms<'a> {
    pub window: Span,
    pub machines: Vec<MachineTerms<'a>>,
    /// Machine name or alias -> index in `machines`.
    by_name: HashMap<&'a str, usize>,
}

impl<'a> WindowTerms<'a> {
    pub fn prepare(config: &'a Config, window: Span) -> WindowTerms<'a> {
        let machines: Vec<MachineTerms> = config
            .machines
            .iter()
            .map(|m| MachineTerms::prepare(m, window))
            .collect();
        let by_name = machines
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.names.iter().map(move |n| (*n, i)))
            .collect();
        WindowTerms {
            window,
            machines,
            by_name,
        }
    }

    /// The machine a build step's machine name (or alias) refers to.
    pub fn machine(&self, name: &str) -> Option<&MachineTerms<'a>> {
        self.by_name.get(name).map(|&i| &self.machines[i])
    }
}

/// The machine's provisioned interval `[active_from, active_until)`; a missing bound is open.
pub(crate) fn active_interval(machine: &Machine) -> Span {
    Span {
        start: machine.active_from.map_or(i64::MIN, |t| t.timestamp()),
        end: machine.active_until.map_or(i64::MAX, |t| t.timestamp()),
    }
}

/// The part of `window` (a window inside one calendar month, already clipped by the caller to
/// [ledger_start, now)) where the machine is active: window ∩ [active_from, active_until).
/// None if empty.
pub fn active_span(machine: &Machine, window: Span) -> Option<Span> {
    window.intersect(active_interval(machine))
}

/// The parts of `window` (inside one calendar month) between the machine's change instants
/// that fall strictly inside it, in time order, each with the terms in force during it. The
/// parts cover the window; a window without a change inside is one part. Empty for an empty
/// window.
pub fn machine_parts(machine: &Machine, window: Span) -> Vec<(Span, Terms)> {
    if window.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let mut start = window.start;
    for c in &machine.changes {
        let at = c.from.timestamp();
        if at > start && at < window.end {
            parts.push((Span::new(start, at), machine.terms_at(start)));
            start = at;
        }
    }
    parts.push((Span::new(start, window.end), machine.terms_at(start)));
    parts
}
