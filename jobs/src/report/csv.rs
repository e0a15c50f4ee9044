//! The month's CSV (`GET /reports/YYYY-MM.csv`): every cost line, every job's cost and every
//! donation record of the month, one row each, from the same [`MonthReport`] as the pages and the email. Amounts
//! are cents and plain decimals (`1234.56`, as the API gives them); outside text is defused.
use super::MonthReport;
use crate::books::donations::PublicDonation;
use crate::calendar::rfc3339;
use crate::money::format_cents;

/// The columns of the month's CSV (`GET /reports/YYYY-MM.csv`), in order.
pub const CSV_COLUMNS: &[&str] = &[
    "record",
    "month",
    "as_of",
    "occurred_at",
    "fund",
    "pool",
    "jobset",
    "machine",
    "idle",
    "busy_seconds",
    "contributor",
    "contributor_url",
    "anonymous",
    "source",
    "id",
    "kind",
    "account",
    "tier",
    "refund_of",
    "gross_cents",
    "fees_cents",
    "amount_cents",
    "amount",
    "currency",
    "original_amount",
    "original_currency",
    "job",
    "steps",
    "modeled_cents",
    "billed_cents",
    "difference_cents",
    "tolerance_cents",
    "status",
    "payee",
    "description",
    "tags",
    "pays_for",
];

/// How many of [`CSV_COLUMNS`] the cost, job and donation rows use (the rest are the
/// reconciliation's and the expenses').
const BASE_COLUMNS: usize = 28;

/// A cost, job or donation row with the reconciliation's and the expenses' columns empty.
fn pad(row: [&str; BASE_COLUMNS]) -> impl Iterator<Item = &str> {
    row.into_iter()
        .chain(std::iter::repeat_n("", CSV_COLUMNS.len() - BASE_COLUMNS))
}

/// Text from outside (names, jobsets, machines, links) as a CSV cell that a spreadsheet will
/// not run as a formula: a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'` in
/// front (OWASP's advice for CSV injection). Numbers are never passed through this.
pub fn text_cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

/// Every cost line of the report (`record` = `cost`, `amount` = its cost), then every
/// (jobset, job) of the month (`record` = `job`, as `/api/v1/costs/jobs` lists them, `amount`
/// = its cost; the jobs of a jobset sum to its cost lines), then every donation record of the
/// month (`record` = `donation`, `amount` = its net), then every machine of the month's
/// reconciliation (`record` = `reconciliation`: `modeled_cents`, `billed_cents`,
/// `difference_cents`, `tolerance_cents`, `status` as `/api/v1/reconciliation` gives them,
/// `amount` = billed), then every expense record paid in the month (`record` = `expense`, as
/// `/api/v1/expenses` lists them: `gross_cents` = paid to the payee, `fees_cents`, `amount` =
/// their total; `machine` and `pays_for` for an invoice, `fund` for an other expense), one row
/// each, with a header row of [`CSV_COLUMNS`]. Amounts are cents and decimals of the ledger
/// currency.
pub fn month_csv(
    report: &MonthReport,
    donations: &[PublicDonation],
) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let month = report.month.to_string();
    let as_of = rfc3339(report.as_of);
    let money = format_cents;
    for l in &report.lines {
        w.write_record(pad([
            "cost",
            &month,
            &as_of,
            "",
            &l.fund,
            l.pool.as_deref().unwrap_or(""),
            &text_cell(l.jobset.as_deref().unwrap_or("")),
            &text_cell(&l.machine),
            if l.idle { "true" } else { "false" },
            &l.busy_seconds.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &l.cost_cents.to_string(),
            &money(l.cost_cents),
            &report.currency,
            "",
            "",
            "",
            "",
        ]))?;
    }
    for j in &report.jobs {
        w.write_record(pad([
            "job",
            &month,
            &as_of,
            "",
            &j.fund,
            &j.pool,
            &text_cell(&j.jobset),
            "",
            "false",
            &j.busy_seconds.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &j.cost_cents.to_string(),
            &money(j.cost_cents),
            &report.currency,
            "",
            "",
            &text_cell(&j.job),
            &j.steps.to_string(),
        ]))?;
    }
    for d in donations {
        w.write_record(pad([
            "donation",
            &month,
            &as_of,
            &d.occurred_at,
            &d.fund,
            "",
            "",
            "",
            "",
            "",
            &text_cell(&d.contributor.name),
            &text_cell(d.contributor.url.as_deref().unwrap_or("")),
            if d.contributor.anonymous {
                "true"
            } else {
                "false"
            },
            &text_cell(&d.source),
            &text_cell(&d.id),
            &d.kind,
            &text_cell(&d.account),
            &text_cell(d.tier.as_deref().unwrap_or("")),
            &text_cell(d.refund_of.as_deref().unwrap_or("")),
            &d.gross_cents.to_string(),
            &d.fees_cents.to_string(),
            &d.net_cents.to_string(),
            &money(d.net_cents),
            &report.currency,
            // A decimal number as stored (a refund's starts with `-`): never prefixed.
            &d.original_amount,
            &text_cell(&d.original_currency),
            "",
            "",
        ]))?;
    }
    let r = &report.reconciliation;
    for m in &r.machines {
        w.write_record([
            "reconciliation",
            &month,
            &as_of,
            "",
            "",
            "",
            "",
            &text_cell(&m.machine),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &m.billed_cents.to_string(),
            &money(m.billed_cents),
            &report.currency,
            "",
            "",
            "",
            "",
            &m.modeled_cents.to_string(),
            &m.billed_cents.to_string(),
            &m.difference_cents.to_string(),
            &m.tolerance_cents.to_string(),
            m.status.as_str(),
            "",
            "",
            "",
            &month,
        ])?;
    }
    for e in &report.expenses.expenses {
        w.write_record([
            "expense",
            &month,
            &as_of,
            &e.paid_at,
            &text_cell(e.fund.as_deref().unwrap_or("")),
            "",
            "",
            &text_cell(e.machine.as_deref().unwrap_or("")),
            "",
            "",
            "",
            "",
            "",
            &text_cell(&e.source),
            &text_cell(&e.id),
            &e.kind,
            &text_cell(&e.account),
            "",
            "",
            &e.amount_cents.to_string(),
            &e.fees_cents.to_string(),
            &e.total_cents.to_string(),
            &money(e.total_cents),
            &report.currency,
            // A decimal number as given (a reversal's starts with `-`): never prefixed.
            &e.original_amount,
            &text_cell(&e.original_currency),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &text_cell(e.payee.as_deref().unwrap_or("")),
            &text_cell(e.description.as_deref().unwrap_or("")),
            &text_cell(&e.tags.join(", ")),
            e.pays_for.as_deref().unwrap_or(""),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_cells_never_start_a_formula() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("-1+2"), "'-1+2");
        assert_eq!(text_cell("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(text_cell(""), "");
    }
}
