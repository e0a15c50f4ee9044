//! The readable month table of `buildfund costs`: cost grouped by fund, pool, jobset and
//! machine, then each machine's price in force, slots, busy hours, capacity, utilization and
//! cost, and the machines' changes dated in the month. The machine figures
//! are the report's ([`crate::books::machines::machine_costs`], the same as the pages' and the email's) and the
//! utilization is the view model's text of its exact permille; only the column layout is here.
use super::view::{change_text, plans_views, price_text, utilization_text};
use crate::books::attribution::Line;
use crate::books::costs::CostsReport;
use crate::books::job_costs::JobsReport;
use crate::books::machines::machine_costs;
use crate::books::plans::PlansReport;
use crate::books::reconciliation::{ExpensesMonth, Reconciliation};
use crate::books::terms::WindowTerms;
use crate::calendar::Month;
use crate::calendar::Period;
use crate::config::Config;
use crate::money::format_cents;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// "11.00 h": hours to the hundredth, exact (rounded half up), plain like the table's amounts.
fn hours(seconds: i64) -> String {
    let hundredths = (i128::from(seconds.max(0)) * 100 + 1800) / 3600;
    format!("{}.{:02} h", hundredths / 100, hundredths % 100)
}

pub fn render(config: &Config, report: &CostsReport, month: Month, at: DateTime<Utc>) -> String {
    let mut out = String::new();
    let cur = &report.currency;
    let _ = writeln!(
        out,
        "Costs of {} as of {} ({cur}); total {}",
        report.month,
        report.as_of,
        format_cents(report.total_cents)
    );
    // fund -> pool ("(idle)" for idle lines) -> lines
    let mut tree: BTreeMap<&str, BTreeMap<String, Vec<&Line>>> = BTreeMap::new();
    for l in &report.lines {
        let pool = l.pool.clone().unwrap_or_else(|| "(idle)".into());
        tree.entry(&l.fund)
            .or_default()
            .entry(pool)
            .or_default()
            .push(l);
    }
    for (fund, pools) in &tree {
        let fund_total: i64 = pools.values().flatten().map(|l| l.cost_cents).sum();
        let _ = writeln!(out, "\nfund {fund:<44} {:>14}", format_cents(fund_total));
        for (pool, lines) in pools {
            let pool_total: i64 = lines.iter().map(|l| l.cost_cents).sum();
            let _ = writeln!(out, "  pool {pool:<42} {:>14}", format_cents(pool_total));
            let mut lines = lines.clone();
            lines.sort_by(|a, b| (&a.jobset, &a.machine).cmp(&(&b.jobset, &b.machine)));
            for l in lines {
                let what = l.jobset.as_deref().unwrap_or("idle");
                let _ = writeln!(
                    out,
                    "    {what:<28} {:<14} {:>10} {:>10}",
                    l.machine,
                    if l.idle {
                        String::new()
                    } else {
                        hours(l.busy_seconds)
                    },
                    format_cents(l.cost_cents)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:<18} {:>5} {:>12} {:>12} {:>8} {:>12}",
        "machine", "price", "slots", "busy", "capacity", "util", "cost"
    );
    let period = Period::new(month, at, config.ledger_start);
    let terms = period.window.map(|w| WindowTerms::prepare(config, w));
    let machines = machine_costs(&period, terms.as_ref(), &report.lines);
    for m in &machines {
        let _ = writeln!(
            out,
            "{:<16} {:<18} {:>5} {:>12} {:>12} {:>8} {:>12}",
            m.machine,
            price_text(&m.terms),
            m.terms.slots,
            hours(m.busy_seconds),
            hours(m.capacity_seconds),
            utilization_text(m.utilization_permille),
            format_cents(m.cost_cents)
        );
    }
    let changed: Vec<_> = machines.iter().filter(|m| !m.changes.is_empty()).collect();
    if !changed.is_empty() {
        let _ = writeln!(out, "\nmachine changes in the month:");
        for m in changed {
            for c in &m.changes {
                let _ = writeln!(out, "  {:<16} {}", m.machine, change_text(c));
            }
        }
    }
    if !report.unpriced.is_empty() {
        let _ = writeln!(out, "\nunpriced (machines not in the configuration):");
        for u in &report.unpriced {
            let _ = writeln!(
                out,
                "  {:<28} {:<14} {:>10}",
                u.jobset,
                u.machine,
                hours(u.busy_seconds)
            );
        }
    }
    out
}

/// The readable table of `buildfund plans`: each fund that has plans, its recent income and
/// burn, then its plans in order with their monthly cost, cover and runway if adopted (the
/// view model's texts, as the funding page shows them).
pub fn render_plans(report: &PlansReport) -> String {
    let mut out = String::new();
    let cur = &report.currency;
    let _ = writeln!(out, "Plans as of {} ({cur})", report.as_of);
    let funds = plans_views(&report.funds);
    if funds.is_empty() {
        let _ = writeln!(
            out,
            "
no plans configured ([[plans]] in the configuration)"
        );
    }
    for f in funds {
        let _ = writeln!(
            out,
            "
fund {}: income {} a month (last 90 days / 3), burn {} (last 30 days)",
            f.fund,
            format_cents(f.income30.cents),
            format_cents(f.burn30.cents)
        );
        let _ = writeln!(
            out,
            "  {:<28} {:>12} {:>14} {:>18}",
            "plan", "monthly", "cover", "runway if adopted"
        );
        for p in f.plans {
            let _ = writeln!(
                out,
                "  {:<28} {:>12} {:>14} {:>18}",
                p.slug,
                format_cents(p.monthly.cents),
                p.cover_text,
                p.runway_text
            );
        }
    }
    out
}

/// The readable table of `buildfund costs --jobs`: the month's most expensive jobs with their
/// jobset, pool, busy hours, steps and cost, then how many matched and their total.
pub fn render_jobs(report: &JobsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cost per job of {} as of {} ({}); {} jobs, total {}",
        report.month,
        report.as_of,
        report.currency,
        report.matched,
        format_cents(report.total_cents)
    );
    let _ = writeln!(
        out,
        "\n{:<44} {:<24} {:<12} {:>12} {:>7} {:>12}",
        "job", "jobset", "pool", "busy", "steps", "cost"
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "{:<44} {:<24} {:<12} {:>12} {:>7} {:>12}",
            j.job,
            j.jobset,
            j.pool,
            hours(j.busy_seconds),
            j.steps,
            format_cents(j.cost_cents)
        );
    }
    if report.jobs.len() < report.matched {
        let _ = writeln!(
            out,
            "… and {} more (--limit)",
            report.matched - report.jobs.len()
        );
    }
    out
}

/// `buildfund reconcile`: one line per machine, the other expenses by fund, cash and the
/// latest OpenCollective check.
pub fn render_reconciliation(r: &Reconciliation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Reconciliation of {} as of {} ({}): modeled {}, billed {}, difference {}",
        r.month,
        r.as_of,
        r.currency,
        format_cents(r.modeled_cents),
        format_cents(r.billed_cents),
        format_cents(r.difference_cents)
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:<8} {:>12} {:>12} {:>12} {:>10} {:<10} invoices",
        "machine", "billing", "modeled", "billed", "difference", "tolerance", "status"
    );
    for m in &r.machines {
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>12} {:>12} {:>12} {:>10} {:<10} {}",
            m.machine,
            m.billing.as_str(),
            format_cents(m.modeled_cents),
            format_cents(m.billed_cents),
            format_cents(m.difference_cents),
            format_cents(m.tolerance_cents),
            m.status.as_str(),
            m.invoices.join(", ")
        );
    }
    if r.machines.is_empty() {
        let _ = writeln!(out, "(no machine with a modeled cost or an invoice)");
    }
    let _ = writeln!(out, "\nOther expenses paid in {}:", r.month);
    for o in &r.other_expenses {
        let _ = writeln!(out, "  {:<20} {:>12}", o.fund, format_cents(o.total_cents));
    }
    if r.other_expenses.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let _ = writeln!(out, "\nCash: {}", format_cents(r.cash_cents));
    let oc = &r.opencollective;
    let _ = write!(out, "OpenCollective check: {}", oc.status);
    if let Some(at) = &oc.checked_at {
        let _ = write!(out, " at {at}");
    }
    if let Some(d) = oc.drift_cents {
        let _ = write!(out, ", drift {}", format_cents(d));
    }
    if let Some(why) = &oc.reason {
        let _ = write!(out, " ({why})");
    }
    let _ = writeln!(out);
    out
}

/// `buildfund expenses`: every expense record of the month and the sums.
pub fn render_expenses(e: &ExpensesMonth) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Expenses paid in {} ({}): {} records, amount {}, fees {}, total {}",
        e.month,
        e.currency,
        e.expenses.len(),
        format_cents(e.amount_cents),
        format_cents(e.fees_cents),
        format_cents(e.total_cents)
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:<24} {:<20} {:>12} {:>10} {:<24} payee",
        "paid", "id", "account", "amount", "fees", "counts as"
    );
    for x in &e.expenses {
        let counts = match (&x.machine, &x.pays_for, &x.fund) {
            (Some(m), Some(p), _) => format!("invoice {m} {p}"),
            (_, _, Some(f)) => format!("other, fund {f}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<20} {:>12} {:>10} {:<24} {}",
            x.paid_at,
            x.id,
            x.account,
            format_cents(x.amount_cents),
            format_cents(x.fees_cents),
            counts,
            x.payee.as_deref().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_hours_are_exact_to_the_hundredth() {
        assert_eq!(hours(39_600), "11.00 h");
        assert_eq!(hours(5_400), "1.50 h");
        // 1 s is 0.000277… h; 18 s is exactly 0.005 h, rounded up.
        assert_eq!(hours(1), "0.00 h");
        assert_eq!(hours(18), "0.01 h");
        assert_eq!(hours(3_600_000), "1000.00 h");
        assert_eq!(hours(-5), "0.00 h");
    }

    #[test]
    fn the_plans_table_lists_funds_with_plans() {
        use crate::books::plans::{FundPlans, PlanFigures};
        let fund = |slug: &str, plans: Vec<PlanFigures>| FundPlans {
            fund: slug.into(),
            name: slug.into(),
            income30_cents: 41_000,
            burn30_cents: 31_024,
            balance_cents: 0,
            plans,
        };
        let report = PlansReport {
            currency: "EUR".into(),
            as_of: "2026-10-20T10:00:00Z".into(),
            funds: vec![
                fund("general", Vec::new()),
                fund(
                    "cuda",
                    vec![PlanFigures {
                        slug: "gpu-test-runner".into(),
                        name: "GPU".into(),
                        url: None,
                        monthly_cents: 18_000,
                        covered_percent: 55,
                        funded: false,
                        runway_if_adopted_days: 97,
                    }],
                ),
            ],
        };
        let text = render_plans(&report);
        assert!(!text.contains("fund general"), "{text}");
        assert!(
            text.contains("fund cuda: income 410.00 a month (last 90 days / 3), burn 310.24"),
            "{text}"
        );
        assert!(text.contains("gpu-test-runner"), "{text}");
        assert!(
            text.contains("180.00") && text.contains("55 % covered"),
            "{text}"
        );
        assert!(text.contains("97 days"), "{text}");
    }
}
