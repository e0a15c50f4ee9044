//! Tests of `view`.
use super::*;

#[test]
fn amounts_are_grouped_by_thousands() {
    assert_eq!(money(0).text, "0.00");
    assert_eq!(money(123_456).text, "1,234.56");
    assert_eq!(money(-100_000_000).text, "-1,000,000.00");
    assert_eq!(money(99_999).text, "999.99");
    assert_eq!(money(123_456).to_string(), "1,234.56");
    assert_eq!(hours(5400), "1.5");
    assert_eq!(hours(3_600_000), "1,000.0");
}

#[test]
fn only_web_profile_links_become_links() {
    assert_eq!(
        person("a", Some("https://opencollective.com/a"))
            .url
            .as_deref(),
        Some("https://opencollective.com/a")
    );
    assert!(person("b", Some("javascript:alert(1)")).url.is_none());
    assert!(person("c", Some(" data:text/html,x")).url.is_none());
    // The scheme's case does not matter (RFC 3986: schemes are case-insensitive) ...
    assert_eq!(
        web_link("HTTPS://example.org/x"),
        Some("HTTPS://example.org/x")
    );
    assert_eq!(web_link("Http://example.org"), Some("Http://example.org"));
    // ... but nothing else is a web address.
    for bad in [
        "JavaScript:alert(1)",
        " https://example.org",
        "https:/example.org",
        "ftp://example.org",
        "//example.org",
        "http",
        "",
        "ünïcode://x",
    ] {
        assert_eq!(web_link(bad), None, "{bad:?}");
    }
}

#[test]
fn utilization_is_formatted_from_the_exact_permille() {
    assert_eq!(utilization_text(Some(500)), "50.0 %");
    assert_eq!(utilization_text(Some(734)), "73.4 %");
    assert_eq!(utilization_text(Some(1250)), "125.0 %");
    assert_eq!(utilization_text(Some(0)), "0.0 %");
    assert_eq!(utilization_text(None), "–");
}

fn event(kind: &str, from: Option<&str>, to: Option<&str>) -> GateEvent {
    GateEvent {
        at: "2026-10-20T10:00:00Z".into(),
        pool: "cuda".into(),
        kind: kind.into(),
        from_state: from.map(Into::into),
        to_state: to.map(Into::into),
        until: None,
        reason: "r".into(),
    }
}

#[test]
fn gate_events_have_one_wording_and_no_admin_names() {
    assert_eq!(
        event_what(&event("state", None, Some("open"))),
        "new → open"
    );
    assert_eq!(
        event_what(&event("state", Some("open"), Some("closed"))),
        "open → closed"
    );
    assert_eq!(
        event_what(&event("pause", None, None)),
        "paused by an admin"
    );
    assert_eq!(
        event_what(&event("lift", None, None)),
        "pause or override lifted"
    );
    let mut o = event("override", None, None);
    assert_eq!(event_what(&o), "allowed by an admin override");
    o.until = Some("2026-10-21T08:30:00Z".into());
    assert_eq!(
        event_what(&o),
        "allowed by an admin override until 2026-10-21 08:30 UTC"
    );
    let v = event_view(&event("pause", None, None));
    assert_eq!(
        (v.day.as_str(), v.at_text.as_str()),
        ("2026-10-20", "2026-10-20 10:00 UTC")
    );
}

#[test]
fn admin_names_leave_gate_reasons() {
    let reason = "cuda spent 0.00 EUR this month (no budget); projected 0.00; \
                  paused by ops: driver upgrade by ops; \
                  allowed by ops-lead's override until 2026-10-21T00:00:00Z: release";
    assert_eq!(
        admin_free(reason, &["ops", "ops-lead"]),
        "cuda spent 0.00 EUR this month (no budget); projected 0.00; \
         paused by an admin: driver upgrade by ops; \
         allowed by an admin's override until 2026-10-21T00:00:00Z: release"
    );
    assert_eq!(
        admin_free("the budget is spent", &["ops"]),
        "the budget is spent"
    );
    assert_eq!(
        admin_free::<&str>("paused by ops: x", &[]),
        "paused by ops: x"
    );
}

#[test]
fn plans_read_the_same_everywhere() {
    assert_eq!(cover_text(100, true), "funded");
    assert_eq!(cover_text(55, false), "55 % covered");
    assert_eq!(cover_text(0, false), "0 % covered");
    assert_eq!(adopted_runway_text(0), "none: the balance is used up");
    assert_eq!(adopted_runway_text(1), "1 day");
    assert_eq!(adopted_runway_text(1234), "1,234 days");
    let change = |before, after, became, lost| PlanChange {
        fund: "cuda".into(),
        slug: "gpu".into(),
        name: "GPU".into(),
        url: Some("javascript:alert(1)".into()),
        monthly_cents: 18_000,
        before_percent: before,
        after_percent: after,
        became_funded: became,
        no_longer_funded: lost,
    };
    assert_eq!(
        plan_change_text(&change(40, 100, true, false)),
        "became funded (40 % → 100 %)"
    );
    assert_eq!(
        plan_change_text(&change(0, 12, false, false)),
        "up 12 points (0 % → 12 %)"
    );
    assert_eq!(
        plan_change_text(&change(13, 12, false, false)),
        "down 1 point (13 % → 12 %)"
    );
    assert_eq!(
        plan_change_text(&change(100, 80, false, true)),
        "down 20 points, no longer funded (100 % → 80 %)"
    );
    assert!(plan_change_view(&change(0, 1, false, false)).url.is_none());
}

#[test]
fn runway_reads_the_same_everywhere() {
    assert_eq!(runway_text(Some(0)), "none: the balance is used up");
    assert_eq!(runway_text(Some(1)), "1 day at the last 30 days’ spending");
    assert_eq!(
        runway_text(Some(1234)),
        "1,234 days at the last 30 days’ spending"
    );
    assert_eq!(runway_text(None), "no spending in the last 30 days");
}

#[test]
fn the_reconciliation_is_shown_as_the_domain_gives_it() {
    use crate::books::reconciliation::{OcCheckSummary, OtherExpenses};
    use crate::config::Billing;
    let machine = |name: &str, status| MachineReconciliation {
        machine: name.into(),
        billing: Billing::Arrears,
        modeled_cents: 31_000,
        billed_cents: 31_500,
        difference_cents: 500,
        tolerance_cents: 310,
        status,
        invoices: vec!["inv".into()],
    };
    let r = Reconciliation {
        month: "2026-10".into(),
        currency: "EUR".into(),
        as_of: "2026-11-06T00:00:00Z".into(),
        modeled_cents: 93_000,
        billed_cents: 94_500,
        difference_cents: 1_500,
        cash_cents: 123_456,
        machines: vec![
            machine("a", MachineStatus::Over),
            machine("b", MachineStatus::Over),
            machine("c", MachineStatus::Unbilled),
            machine("d", MachineStatus::NotBilled),
        ],
        other_expenses: vec![OtherExpenses {
            fund: "general".into(),
            total_cents: 1_235,
        }],
        opencollective: OcCheckSummary::of(None),
    };
    let line = |id: &str, fund: Option<&str>, machine: Option<&str>| ExpenseLine {
        source: "manual".into(),
        id: id.into(),
        kind: "manual".into(),
        paid_at: "2026-10-10T10:00:00Z".into(),
        incurred_at: "2026-10-10T00:00:00Z".into(),
        account: "nixos".into(),
        payee: Some("<b>x</b>".into()),
        tags: vec!["domain".into(), "dns".into()],
        description: None,
        amount_cents: 1_200,
        fees_cents: 35,
        total_cents: 1_235,
        original_amount: "12.00".into(),
        original_currency: "EUR".into(),
        machine: machine.map(Into::into),
        pays_for: machine.map(|_| "2026-09".into()),
        fund: fund.map(Into::into),
    };
    let e = ExpensesMonth {
        month: "2026-10".into(),
        currency: "EUR".into(),
        amount_cents: 2_400,
        fees_cents: 70,
        total_cents: 2_470,
        expenses: vec![
            line("dns", Some("general"), None),
            line("inv", None, Some("a")),
        ],
    };
    let v = reconciliation_view(&r, &e);
    assert_eq!(v.month_label, "October 2026");
    assert_eq!(v.difference.text, "15.00");
    assert_eq!(v.machines[2].status, "unbilled");
    assert_eq!(v.machines[3].status_text, "not billed");
    assert_eq!(v.other_by_fund[0].total.text, "12.35");
    // Only the other expenses are listed: the invoice is in its machine's row.
    let listed: Vec<&str> = v.other_expenses.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(listed, ["dns"]);
    assert_eq!(v.other_expenses[0].tags, "domain, dns");
    let last = last_month_view(&r);
    assert_eq!(
        (last.counts.matched, last.counts.over, last.counts.under),
        (0, 2, 0)
    );
    assert_eq!((last.counts.unbilled, last.counts.not_billed), (1, 1));
}
