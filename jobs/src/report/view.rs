//! The view model: the report's figures as every presentation shows them. The funding page,
//! the report pages, both parts of the email and the CLI table read these structs and differ
//! only in their templates; the formatting, the filtering of outside links and the wording of
//! gate events happen here, once. No arithmetic on figures happens here either: every amount is
//! one of [`super::month_report`]'s, formatted.
use super::chart::{chart, ChartView};
pub use super::format::{money, month_label, Money, MONTH_NAMES};
use super::packages::{PackageCost, TOP_PACKAGES};
use super::{FundingPage, GateEvent, MonthReport, Sponsor, StatusCounts};
use crate::books::attribution::Line;
use crate::books::costs::UnpricedLine;
use crate::books::donations::PublicDonation;
use crate::books::funds::FundMonth;
use crate::books::machines::{ChangeShown, MachineCost, TermsShown};
use crate::books::plans::{FundPlans, PlanChange, PlanFigures};
use crate::books::reconciliation::{
    ExpenseLine, ExpensesMonth, MachineReconciliation, MachineStatus, Reconciliation,
};
use crate::books::HistoryMonth;
use crate::calendar::{rfc3339, Month};
use crate::config::Config;
use crate::gate::{Current, State};
use crate::money::{group_thousands, hours};
use chrono::{DateTime, Utc};

/// This month's sponsors listed on the funding page (the month's report lists them all).
pub const FRONT_SPONSORS: usize = 100;

/// Who made an admin change, wherever the public sees it: token names are never shown.
pub const AN_ADMIN: &str = "an admin";

/// "2026-10-20 10:00 UTC".
pub fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An RFC 3339 instant as [`time_text`] (the text itself when it does not parse).
fn instant_text(at: &str) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| time_text(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| at.to_string())
}

/// A machine's use of its capacity, from [`MachineCost::utilization_permille`] (tenths of a
/// percent, exact): "73.4 %", or "–" without capacity. A package's share of the month's
/// spending reads the same.
pub fn utilization_text(permille: Option<i64>) -> String {
    match permille {
        Some(p) => format!("{}.{} %", p / 10, p % 10),
        None => "–".into(),
    }
}

/// A link from outside (a contributor's profile) when it is a web address: its scheme is
/// `http` or `https`, in any case; anything else (`javascript:`, `data:`, a leading space) is
/// no link, so the name is shown bare.
pub fn web_link(url: &str) -> Option<&str> {
    let starts = |prefix: &str| {
        url.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    (starts("https://") || starts("http://")).then_some(url)
}

/// A name and, when it is a web address, a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub url: Option<String>,
}

pub fn person(name: &str, url: Option<&str>) -> Person {
    Person {
        name: name.to_string(),
        url: url.and_then(web_link).map(str::to_string),
    }
}

fn sponsors(list: &[Sponsor]) -> Vec<Person> {
    list.iter()
        .map(|s| person(&s.name, s.url.as_deref()))
        .collect()
}

/// `reason` (a stored gate event's, as `gate::evaluate` worded it before it said "an admin"
/// itself) without the names of `actors`:
/// "paused by alice: …" and "allowed by alice's override …" become "paused by an admin: …" and
/// "allowed by an admin's override …". Only those phrases are rewritten, so an admin's own
/// words stay as written.
pub fn admin_free<S: AsRef<str>>(reason: &str, actors: &[S]) -> String {
    let mut names: Vec<&str> = actors.iter().map(AsRef::as_ref).collect();
    // Longer names first: "ops-lead" before "ops".
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = reason.to_string();
    for n in names {
        out = out
            .replace(
                &format!("paused by {n}: "),
                &format!("paused by {AN_ADMIN}: "),
            )
            .replace(
                &format!("allowed by {n}'s override"),
                &format!("allowed by {AN_ADMIN}'s override"),
            );
    }
    out
}

/// What a public gate event did, in one wording for every presentation.
pub fn event_what(e: &GateEvent) -> String {
    match e.kind.as_str() {
        "state" => format!(
            "{} → {}",
            e.from_state.as_deref().unwrap_or("new"),
            e.to_state.as_deref().unwrap_or("?")
        ),
        "pause" => format!("paused by {AN_ADMIN}"),
        "override" => match &e.until {
            Some(u) => format!("allowed by {AN_ADMIN} override until {}", instant_text(u)),
            None => format!("allowed by {AN_ADMIN} override"),
        },
        "lift" => "pause or override lifted".into(),
        other => other.into(),
    }
}

#[derive(Clone, Debug)]
pub struct FundView {
    pub slug: String,
    pub name: String,
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
    pub spent: Money,
    pub balance: Money,
    pub goal: Option<Money>,
    /// The progress bar's width, 0..=100.
    pub progress_bar: i64,
    pub progress_text: String,
    pub runway_days: Option<i64>,
    pub runway_text: String,
}

/// "41 days at the last 30 days’ spending".
pub fn runway_text(days: Option<i64>) -> String {
    match days {
        Some(0) => "none: the balance is used up".to_string(),
        Some(1) => "1 day at the last 30 days’ spending".to_string(),
        Some(d) => format!(
            "{} days at the last 30 days’ spending",
            group_thousands(&d.to_string())
        ),
        None => "no spending in the last 30 days".to_string(),
    }
}

fn fund_view(f: &FundMonth) -> FundView {
    let (progress_bar, progress_text) = match f.goal_cents {
        Some(goal) if goal > 0 => {
            let pct = (i128::from(f.net_cents) * 100 / i128::from(goal)) as i64;
            let text = if f.net_cents >= goal {
                format!("Goal reached: {pct} % of the goal")
            } else {
                format!("{pct} % of the goal")
            };
            (pct.clamp(0, 100), text)
        }
        _ => (0, String::new()),
    };
    FundView {
        slug: f.slug.clone(),
        name: f.name.clone(),
        gross: money(f.gross_cents),
        fees: money(f.fees_cents),
        net: money(f.net_cents),
        spent: money(f.spent_cents),
        balance: money(f.balance_cents),
        goal: f.goal_cents.map(money),
        progress_bar,
        progress_text,
        runway_days: f.runway_days,
        runway_text: match f.runway_days {
            // Nothing is used up in a fund that holds nothing (a fresh install's).
            Some(0) if f.balance_cents == 0 => "none: the fund holds no money".to_string(),
            days => runway_text(days),
        },
    }
}

#[derive(Clone, Debug)]
pub struct PoolView {
    pub pool: String,
    pub fund: String,
    pub busy_hours: String,
    pub cost: Money,
    pub budget: Option<Money>,
}

#[derive(Clone, Debug)]
pub struct MachineView {
    pub machine: String,
    pub busy_hours: String,
    pub capacity_hours: String,
    pub utilization: String,
    pub cost: Money,
    pub idle: Money,
    /// The price in force at the report's instant: "monthly 120.00".
    pub price: String,
    pub slots: u32,
    /// Its changes in the month, worded by [`change_text`].
    pub changes: Vec<String>,
}

pub fn machine_view(m: &MachineCost) -> MachineView {
    MachineView {
        machine: m.machine.clone(),
        busy_hours: hours(m.busy_seconds),
        capacity_hours: hours(m.capacity_seconds),
        utilization: utilization_text(m.utilization_permille),
        cost: money(m.cost_cents),
        idle: money(m.idle_cents),
        price: price_text(&m.terms),
        slots: m.terms.slots,
        changes: m.changes.iter().map(change_text).collect(),
    }
}

/// "hourly 1.90": a cost model and its price.
pub fn price_text(t: &TermsShown) -> String {
    format!("{} {}", t.model, t.price)
}

/// A machine change as every presentation words it: "hourly 1.90 → metered 2.40 from
/// 2026-10-15", "4 → 8 slots from 2026-10-15", both joined by a comma, or "monthly 120.00
/// unchanged from 2026-10-15" for a change that restates its terms.
pub fn change_text(c: &ChangeShown) -> String {
    let (a, b) = (&c.before, &c.after);
    let mut what = Vec::new();
    if (a.model, &a.price) != (b.model, &b.price) {
        what.push(format!("{} → {}", price_text(a), price_text(b)));
    }
    if a.slots != b.slots {
        what.push(format!("{} → {} slots", a.slots, b.slots));
    }
    if what.is_empty() {
        what.push(format!("{} unchanged", price_text(b)));
    }
    format!("{} from {}", what.join(", "), c.from)
}

#[derive(Clone, Debug)]
pub struct UnpricedView {
    pub machine: String,
    pub jobset: String,
    pub busy_hours: String,
}

fn unpriced_view(u: &UnpricedLine) -> UnpricedView {
    UnpricedView {
        machine: u.machine.clone(),
        jobset: u.jobset.clone(),
        busy_hours: hours(u.busy_seconds),
    }
}

/// One cost line.
#[derive(Clone, Debug)]
pub struct LineView {
    pub machine: String,
    pub jobset: Option<String>,
    /// The jobset, or `idle`: the line's key in `data-figure`.
    pub key: String,
    pub pool: String,
    pub fund: String,
    pub busy_hours: String,
    pub cost: Money,
}

fn line_view(l: &Line) -> LineView {
    LineView {
        machine: l.machine.clone(),
        jobset: l.jobset.clone(),
        key: l.jobset.clone().unwrap_or_else(|| "idle".into()),
        pool: l.pool.clone().unwrap_or_else(|| "–".into()),
        fund: l.fund.clone(),
        busy_hours: hours(l.busy_seconds),
        cost: money(l.cost_cents),
    }
}

/// One package of "What the money built" ([`super::packages`]).
#[derive(Clone, Debug)]
pub struct PackageView {
    pub package: String,
    pub pool: String,
    /// Its pool spent more than its budget this month.
    pub over_budget: bool,
    /// Its jobs, "python3Packages.torch.aarch64-linux, python3Packages.torch.x86_64-linux".
    pub jobs: String,
    pub busy_hours: String,
    pub cost: Money,
    /// Its share of the month's spending, "12.3 %".
    pub share: String,
}

fn package_view(p: &PackageCost) -> PackageView {
    PackageView {
        package: p.package.clone(),
        pool: p.pool.clone(),
        over_budget: p.pool_over_budget,
        jobs: p.jobs.join(", "),
        busy_hours: hours(p.busy_seconds),
        cost: money(p.cost_cents),
        share: utilization_text(p.share_permille),
    }
}

/// A public gate event ([`super::PUBLIC_GATE_EVENTS`]), worded by [`event_what`].
#[derive(Clone, Debug)]
pub struct EventView {
    pub at: String,
    pub at_text: String,
    /// "2026-10-20".
    pub day: String,
    pub pool: String,
    pub what: String,
    pub reason: String,
}

fn event_view(e: &GateEvent) -> EventView {
    EventView {
        at: e.at.clone(),
        at_text: instant_text(&e.at),
        day: e.at.get(..10).unwrap_or(&e.at).to_string(),
        pool: e.pool.clone(),
        what: event_what(e),
        reason: e.reason.clone(),
    }
}

#[derive(Clone, Debug)]
pub struct DonationView {
    pub at: String,
    pub date: String,
    pub contributor: Person,
    pub fund: String,
    pub refund: bool,
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
}

fn donation_view(d: &PublicDonation) -> DonationView {
    DonationView {
        at: d.occurred_at.clone(),
        date: d
            .occurred_at
            .get(..10)
            .unwrap_or(&d.occurred_at)
            .to_string(),
        contributor: person(&d.contributor.name, d.contributor.url.as_deref()),
        fund: d.fund.clone(),
        refund: d.gross_cents < 0 || d.refund_of.is_some(),
        gross: money(d.gross_cents),
        fees: money(d.fees_cents),
        net: money(d.net_cents),
    }
}

#[derive(Clone, Debug)]
pub struct GateView {
    pub pool: String,
    pub state: &'static str,
    /// Closed, but allowed by an admin override.
    pub overridden: bool,
    /// Without admin names (the gate words an admin's control as "an admin").
    pub reason: String,
}

/// Every pool's gate from the in-memory snapshot, and a note when it is missing or stale.
fn gate_views(gate: &Current) -> (Vec<GateView>, Option<String>) {
    let Some(snapshot) = &gate.snapshot else {
        return (
            Vec::new(),
            Some("The pool states have not been computed yet.".into()),
        );
    };
    let views = snapshot
        .pools
        .values()
        .map(|g| GateView {
            pool: g.pool.clone(),
            state: g.state.as_str(),
            overridden: g.state == State::Closed && g.allow,
            reason: g.reason.clone(),
        })
        .collect();
    let note = gate.stale.then(|| {
        format!(
            "These states could not be refreshed since {}.",
            time_text(snapshot.at)
        )
    });
    (views, note)
}

/// One plan as the funding page and the CLI show it.
#[derive(Clone, Debug)]
pub struct PlanView {
    pub slug: String,
    pub name: String,
    /// The plan's `url` when it is a web address ([`web_link`]).
    pub url: Option<String>,
    pub monthly: Money,
    /// 0..=100: the bar's width and the figure.
    pub covered_percent: i64,
    pub funded: bool,
    /// "funded" or "55 % covered".
    pub cover_text: String,
    pub runway_if_adopted_days: i64,
    pub runway_text: String,
}

/// "funded", or "55 % covered" (by the fund's recent income, after the plans before it).
pub fn cover_text(covered_percent: i64, funded: bool) -> String {
    if funded {
        "funded".into()
    } else {
        format!("{covered_percent} % covered")
    }
}

/// The runway a fund would have with a plan adopted: "97 days", "1 day", or
/// "none: the balance is used up".
pub fn adopted_runway_text(days: i64) -> String {
    match days {
        0 => "none: the balance is used up".into(),
        1 => "1 day".into(),
        d => format!("{} days", group_thousands(&d.to_string())),
    }
}

fn plan_view(p: &PlanFigures) -> PlanView {
    PlanView {
        slug: p.slug.clone(),
        name: p.name.clone(),
        url: p.url.as_deref().and_then(web_link).map(str::to_string),
        monthly: money(p.monthly_cents),
        covered_percent: p.covered_percent,
        funded: p.funded,
        cover_text: cover_text(p.covered_percent, p.funded),
        runway_if_adopted_days: p.runway_if_adopted_days,
        runway_text: adopted_runway_text(p.runway_if_adopted_days),
    }
}

/// A fund's plans in order, with the recent income and burn they are measured against.
#[derive(Clone, Debug)]
pub struct FundPlansView {
    pub fund: String,
    pub name: String,
    /// A third of the last 90 days' net donations, to the cent.
    pub income30: Money,
    /// The last 30 days' cost.
    pub burn30: Money,
    pub plans: Vec<PlanView>,
}

/// The funds that have plans, in config order.
pub fn plans_views(funds: &[FundPlans]) -> Vec<FundPlansView> {
    funds
        .iter()
        .filter(|f| !f.plans.is_empty())
        .map(|f| FundPlansView {
            fund: f.fund.clone(),
            name: f.name.clone(),
            income30: money(f.income30_cents),
            burn30: money(f.burn30_cents),
            plans: f.plans.iter().map(plan_view).collect(),
        })
        .collect()
}

/// A plan whose cover moved in the month, as the report and the email word it.
#[derive(Clone, Debug)]
pub struct PlanChangeView {
    pub fund: String,
    pub slug: String,
    pub name: String,
    pub url: Option<String>,
    pub monthly: Money,
    pub before_percent: i64,
    pub after_percent: i64,
    /// "became funded (40 % → 100 %)", "up 12 points (0 % → 12 %)", "down 20 points, no
    /// longer funded (100 % → 80 %)".
    pub what: String,
}

/// How a plan's cover moved, in one wording for every presentation.
pub fn plan_change_text(c: &PlanChange) -> String {
    let points = c.moved_points();
    let range = format!("({} % → {} %)", c.before_percent, c.after_percent);
    let n = points.abs();
    let unit = if n == 1 { "point" } else { "points" };
    if c.became_funded {
        format!("became funded {range}")
    } else if c.no_longer_funded {
        format!("down {n} {unit}, no longer funded {range}")
    } else if points > 0 {
        format!("up {n} {unit} {range}")
    } else {
        format!("down {n} {unit} {range}")
    }
}

fn plan_change_view(c: &PlanChange) -> PlanChangeView {
    PlanChangeView {
        fund: c.fund.clone(),
        slug: c.slug.clone(),
        name: c.name.clone(),
        url: c.url.as_deref().and_then(web_link).map(str::to_string),
        monthly: money(c.monthly_cents),
        before_percent: c.before_percent,
        after_percent: c.after_percent,
        what: plan_change_text(c),
    }
}

/// Why cash and the books' balance differ, in one wording for every presentation.
pub const CASH_NOTE: &str = "The books charge each machine its modeled cost by the second as it runs; cash counts only what has actually left through paid expenses (invoices, fees and other costs). They differ by the machine cost not invoiced yet and by how far the invoices differ from the model.";

/// A reconciliation status as the public reads it.
pub fn status_text(s: MachineStatus) -> &'static str {
    match s {
        MachineStatus::NotBilled => "not billed",
        MachineStatus::Open => "month not over",
        MachineStatus::Unbilled => "unbilled",
        MachineStatus::Matched => "matched",
        MachineStatus::Over => "over",
        MachineStatus::Under => "under",
    }
}

/// One machine's modeled cost against its invoices.
#[derive(Clone, Debug)]
pub struct ReconMachineView {
    pub machine: String,
    /// `arrears`, `advance` or `none`.
    pub billing: &'static str,
    pub modeled: Money,
    pub billed: Money,
    /// Billed minus modeled.
    pub difference: Money,
    pub tolerance: Money,
    /// `matched`, `over`, … (the API's).
    pub status: &'static str,
    pub status_text: &'static str,
    /// How many invoice records (reversals included) pay for the month.
    pub invoices: usize,
}

fn recon_machine_view(m: &MachineReconciliation) -> ReconMachineView {
    ReconMachineView {
        machine: m.machine.clone(),
        billing: m.billing.as_str(),
        modeled: money(m.modeled_cents),
        billed: money(m.billed_cents),
        difference: money(m.difference_cents),
        tolerance: money(m.tolerance_cents),
        status: m.status.as_str(),
        status_text: status_text(m.status),
        invoices: m.invoices.len(),
    }
}

/// A fund's other expenses in the month.
#[derive(Clone, Debug)]
pub struct OtherFundView {
    pub fund: String,
    pub total: Money,
}

/// One other expense (not an invoice of a machine) paid in the month. Payee, description and
/// tags come from outside: templates escape them, the CSV defuses them.
#[derive(Clone, Debug)]
pub struct ExpenseView {
    pub id: String,
    pub at: String,
    pub date: String,
    pub fund: String,
    pub reversal: bool,
    pub payee: String,
    pub description: String,
    pub tags: String,
    pub amount: Money,
    pub fees: Money,
    pub total: Money,
}

fn expense_view(e: &ExpenseLine) -> ExpenseView {
    ExpenseView {
        id: e.id.clone(),
        at: e.paid_at.clone(),
        date: e.paid_at.get(..10).unwrap_or(&e.paid_at).to_string(),
        fund: e.fund.clone().unwrap_or_default(),
        reversal: e.kind == "reversal",
        payee: e.payee.clone().unwrap_or_default(),
        description: e.description.clone().unwrap_or_default(),
        tags: e.tags.join(", "),
        amount: money(e.amount_cents),
        fees: money(e.fees_cents),
        total: money(e.total_cents),
    }
}

/// A month's invoices against the model and its other expenses, as the report page, the CSV
/// and the email show them.
#[derive(Clone, Debug)]
pub struct ReconciliationView {
    pub month: String,
    pub month_label: String,
    /// The instant the invoices are counted to (RFC 3339): the report's request instant, which
    /// for a past month is after its end (an invoice in arrears is paid the month after).
    pub as_of: String,
    pub as_of_text: String,
    pub modeled: Money,
    pub billed: Money,
    pub difference: Money,
    pub machines: Vec<ReconMachineView>,
    /// Other expenses by fund, in config order.
    pub other_by_fund: Vec<OtherFundView>,
    /// Every other expense record paid in the month (invoices are in `machines`).
    pub other_expenses: Vec<ExpenseView>,
}

pub fn reconciliation_view(r: &Reconciliation, e: &ExpensesMonth) -> ReconciliationView {
    let month = Month::parse(&r.month).ok();
    ReconciliationView {
        month: r.month.clone(),
        month_label: month.map(month_label).unwrap_or_else(|| r.month.clone()),
        as_of: r.as_of.clone(),
        as_of_text: instant_text(&r.as_of),
        modeled: money(r.modeled_cents),
        billed: money(r.billed_cents),
        difference: money(r.difference_cents),
        machines: r.machines.iter().map(recon_machine_view).collect(),
        other_by_fund: r
            .other_expenses
            .iter()
            .map(|o| OtherFundView {
                fund: o.fund.clone(),
                total: money(o.total_cents),
            })
            .collect(),
        other_expenses: e
            .expenses
            .iter()
            .filter(|x| x.fund.is_some())
            .map(expense_view)
            .collect(),
    }
}

/// Last month's reconciliation as the funding page sums it up.
#[derive(Clone, Debug)]
pub struct LastMonthView {
    pub month: String,
    pub month_label: String,
    pub counts: StatusCounts,
    pub modeled: Money,
    pub billed: Money,
    pub difference: Money,
}

fn last_month_view(r: &Reconciliation) -> LastMonthView {
    LastMonthView {
        month: r.month.clone(),
        month_label: Month::parse(&r.month)
            .map(month_label)
            .unwrap_or_else(|_| r.month.clone()),
        counts: StatusCounts::of(r),
        modeled: money(r.modeled_cents),
        billed: money(r.billed_cents),
        difference: money(r.difference_cents),
    }
}

/// A month's figures as every presentation shows them.
#[derive(Clone, Debug)]
pub struct Figures {
    /// "2026-10".
    pub month: String,
    /// "October 2026".
    pub month_label: String,
    pub currency: String,
    /// The month is over.
    pub complete: bool,
    /// RFC 3339, to the second.
    pub as_of: String,
    pub as_of_text: String,
    pub funds: Vec<FundView>,
    pub gross: Money,
    pub fees: Money,
    /// Net raised over every fund.
    pub raised: Money,
    pub spent: Money,
    pub idle: Money,
    /// The sum of the funds' balances.
    pub balance: Money,
    /// Cash at `as_of`: opening balances plus net donations minus every expense paid
    /// (the reconciliation's).
    pub cash: Money,
    /// [`CASH_NOTE`].
    pub cash_note: &'static str,
    pub pools: Vec<PoolView>,
    pub machines: Vec<MachineView>,
    pub unpriced: Vec<UnpricedView>,
    /// The month's [`TOP_PACKAGES`] most expensive packages.
    pub packages: Vec<PackageView>,
    /// How many more packages the month's jobs hold (in the CSV and `/api/v1/costs/jobs`).
    pub packages_more: usize,
}

pub fn figures(r: &MonthReport) -> Figures {
    Figures {
        month: r.month.to_string(),
        month_label: month_label(r.month),
        currency: r.currency.clone(),
        complete: r.complete,
        as_of: rfc3339(r.as_of),
        as_of_text: time_text(r.as_of),
        funds: r.funds.iter().map(fund_view).collect(),
        gross: money(r.raised.gross_cents),
        fees: money(r.raised.fees_cents),
        raised: money(r.raised.net_cents),
        spent: money(r.spent_cents),
        idle: money(r.idle_cents),
        balance: money(r.funds.iter().map(|f| f.balance_cents).sum()),
        cash: money(r.reconciliation.cash_cents),
        cash_note: CASH_NOTE,
        pools: r
            .pools
            .iter()
            .map(|p| PoolView {
                pool: p.pool.clone(),
                fund: p.fund.clone(),
                busy_hours: hours(p.busy_seconds),
                cost: money(p.cost_cents),
                budget: p.budget_cents.map(money),
            })
            .collect(),
        machines: r.machines.iter().map(machine_view).collect(),
        unpriced: r.unpriced.iter().map(unpriced_view).collect(),
        packages: r
            .packages
            .iter()
            .take(TOP_PACKAGES)
            .map(package_view)
            .collect(),
        packages_more: r.packages.len().saturating_sub(TOP_PACKAGES),
    }
}

/// What the funding page shows.
#[derive(Clone, Debug)]
pub struct FundingView {
    /// The instant the figures are for (the page's `Last-Modified`).
    pub as_of: DateTime<Utc>,
    pub fig: Figures,
    pub chart: ChartView,
    pub gates: Vec<GateView>,
    pub gate_note: Option<String>,
    /// The first [`FRONT_SPONSORS`] of the month's sponsors.
    pub sponsors: Vec<Person>,
    /// How many more the month's report lists.
    pub sponsors_more: usize,
    pub top_sponsors: Vec<Person>,
    pub recent: Vec<DonationView>,
    /// The funds that have plans, each with its plans in order.
    pub plans: Vec<FundPlansView>,
    /// Last month's reconciliation, summed up (none in the books' first month).
    pub last_month: Option<LastMonthView>,
}

/// The funding page's view of `data` with the gate snapshot `gate`.
pub fn funding_view(data: &FundingPage, gate: &Current) -> FundingView {
    let r = &data.report;
    let (gates, gate_note) = gate_views(gate);
    let front = &r.sponsors[..r.sponsors.len().min(FRONT_SPONSORS)];
    FundingView {
        as_of: r.as_of,
        fig: figures(r),
        chart: chart(&data.history),
        gates,
        gate_note,
        sponsors: sponsors(front),
        sponsors_more: r.sponsors.len() - front.len(),
        top_sponsors: sponsors(&data.top_sponsors),
        recent: data.recent_donations.iter().map(donation_view).collect(),
        plans: plans_views(&r.plans),
        last_month: data.last_month.as_ref().map(last_month_view),
    }
}

/// What a month's report shows: the report page and the email.
#[derive(Clone, Debug)]
pub struct ReportView {
    pub fig: Figures,
    /// The neighbouring months that have a report, "YYYY-MM".
    pub prev: Option<String>,
    pub next: Option<String>,
    pub lines: Vec<LineView>,
    /// Every sponsor of the month, largest net first (names and links only).
    pub sponsors: Vec<Person>,
    /// Every donation record of the month (the email leaves them out).
    pub donations: Vec<DonationView>,
    pub events: Vec<EventView>,
    /// Whether any plan is configured (the report then has a plans section).
    pub has_plans: bool,
    /// The plans whose cover moved in the month.
    pub plan_changes: Vec<PlanChangeView>,
    /// The month's invoices against the model and its other expenses.
    pub recon: ReconciliationView,
}

/// The month's report view; `months` are those with a report (for the links to the
/// neighbouring months).
pub fn report_view(r: &MonthReport, donations: &[PublicDonation], months: &[Month]) -> ReportView {
    let (prev, next) = (r.month.prev(), r.month.next());
    ReportView {
        fig: figures(r),
        prev: months.contains(&prev).then(|| prev.to_string()),
        next: months.contains(&next).then(|| next.to_string()),
        lines: r.lines.iter().map(line_view).collect(),
        sponsors: sponsors(&r.sponsors),
        donations: donations.iter().map(donation_view).collect(),
        events: r.gate_events.iter().map(event_view).collect(),
        has_plans: r.plans.iter().any(|f| !f.plans.is_empty()),
        plan_changes: r.plan_changes.iter().map(plan_change_view).collect(),
        recon: reconciliation_view(&r.reconciliation, &r.expenses),
    }
}

/// One month of the index of reports.
#[derive(Clone, Debug)]
pub struct MonthRow {
    pub month: String,
    pub label: String,
    pub complete: bool,
    pub raised: Money,
    pub spent: Money,
}

/// The index of reports: every month of `history`, newest first.
#[derive(Clone, Debug)]
pub struct ReportsView {
    pub currency: String,
    pub as_of: String,
    pub as_of_text: String,
    pub months: Vec<MonthRow>,
}

/// `history` is oldest first and ends with the month of `at` (the one not over yet).
pub fn reports_view(config: &Config, history: &[HistoryMonth], at: DateTime<Utc>) -> ReportsView {
    let last = history.last().map(|h| h.month);
    ReportsView {
        currency: config.currency.clone(),
        as_of: rfc3339(at),
        as_of_text: time_text(at),
        months: history
            .iter()
            .rev()
            .map(|h| MonthRow {
                month: h.month.to_string(),
                label: month_label(h.month),
                complete: Some(h.month) < last,
                raised: money(h.raised_cents),
                spent: money(h.spent_cents),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
