//! The readable month table of `buildfund costs`: cost grouped by fund, pool, jobset and
//! machine, then each machine's busy hours, capacity, utilization and cost.
use crate::books::attribution::{active_span, Line};
use crate::books::costs::{clip, CostsReport};
use crate::calendar::Month;
use crate::config::Config;
use crate::money::format_cents;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

fn hours(seconds: i64) -> String {
    format!("{:.2} h", seconds as f64 / 3600.0)
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
    // fund -> pool ("idle" for idle lines) -> lines
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
    let window = clip(config, month.span(), at);
    let _ = writeln!(
        out,
        "\n{:<16} {:<8} {:>5} {:>12} {:>12} {:>6} {:>12}",
        "machine", "model", "slots", "busy", "capacity", "util", "cost"
    );
    for m in &config.machines {
        let lines = report.lines.iter().filter(|l| l.machine == m.name);
        let (busy, cost) = lines.fold((0, 0), |(b, c), l| (b + l.busy_seconds, c + l.cost_cents));
        let capacity = window
            .and_then(|w| active_span(m, w))
            .map(|a| a.len() * m.slots as i64)
            .unwrap_or(0);
        let util = if capacity > 0 {
            format!("{:.1}%", busy as f64 * 100.0 / capacity as f64)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:>5} {:>12} {:>12} {:>6} {:>12}",
            m.name,
            m.cost.kind(),
            m.slots,
            hours(busy),
            hours(capacity),
            util,
            format_cents(cost)
        );
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
