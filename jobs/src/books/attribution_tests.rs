//! Tests of `attribution`.
use super::*;
use crate::books::terms::{active_span, PricedPart};
use crate::calendar::{month_span, split_months};
use chrono::DateTime;
use proptest::prelude::*;

const DAY: i64 = 86_400;

fn config(policy: &str) -> Config {
    let text = format!(
        r#"
currency = "EUR"
ledger_start = "2026-01-01"
idle = "{policy}"

[[funds]]
slug = "general"
name = "General"
default = true

[[funds]]
slug = "cuda"
name = "CUDA builds"

[[funds]]
slug = "infra"
name = "Infrastructure"

[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[pools]]
slug = "release"
fund = "infra"
jobsets = ["nixos:release-*", "nixpkgs:cuda-legacy"]

[[machines]]
name = "build03"
slots = 4
monthly = "120.00"

[[machines]]
name = "build04"
slots = 1
monthly = "120"

[[machines]]
name = "late01"
slots = 2
monthly = "120.00"
active_from = 2026-04-16

[[machines]]
name = "hourly01"
slots = 2
hourly = "1.90"

[[machines]]
name = "cloud01"
slots = 8
metered = "2.40"

[[machines]]
name = "tiny01"
slots = 1
hourly = "0.02"
idle_fund = "infra"

[[machines]]
name = "half01"
slots = 1
hourly = "0.01"

[[machines]]
name = "jetson01"
slots = 1
monthly = "120"
idle_fund = "cuda"
"#
    );
    Config::parse(&text, "test").unwrap()
}

fn machine<'a>(c: &'a Config, name: &str) -> &'a Machine {
    c.machines.iter().find(|m| m.name == name).unwrap()
}

fn busy(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// (key, cents) of each line, in output order.
fn cents(lines: &[Line]) -> Vec<(String, i64)> {
    lines
        .iter()
        .map(|l| (l.key().to_string(), l.cost_cents))
        .collect()
}

fn kc(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn at(text: &str) -> i64 {
    crate::calendar::parse_instant(text).unwrap().timestamp()
}

#[test]
fn spans_and_months() {
    let s = Span::new(10, 20);
    assert_eq!(s.len(), 10);
    assert_eq!(Span::new(20, 10).len(), 0);
    assert!(Span::new(5, 5).is_empty());
    assert_eq!(s.intersect(Span::new(15, 30)), Some(Span::new(15, 20)));
    assert_eq!(s.intersect(Span::new(20, 30)), None);
    let apr = month_span(2026, 4);
    assert_eq!(apr, Span::new(at("2026-04-01"), at("2026-05-01")));
    assert_eq!(apr.len(), 30 * DAY);
    assert_eq!(month_span(2026, 12).end, at("2027-01-01"));
    assert_eq!(month_span(2024, 2).len(), 29 * DAY);
    assert_eq!(month_of(at("2026-04-30T23:59:59Z")), apr);
    assert_eq!(month_of(at("2026-05-01")), month_span(2026, 5));
    assert_eq!(month_of(-1), month_span(1969, 12));
    assert_eq!(split_months(Span::new(7, 7)), Vec::<Span>::new());
    assert_eq!(
        split_months(Span::new(at("2026-03-31T12:00:00Z"), at("2026-05-02"))),
        vec![
            Span::new(at("2026-03-31T12:00:00Z"), at("2026-04-01")),
            apr,
            Span::new(at("2026-05-01"), at("2026-05-02")),
        ]
    );
}

#[test]
fn rounding_is_half_away_from_zero() {
    assert_eq!(round_half_away_from_zero(1, 2), 1);
    assert_eq!(round_half_away_from_zero(-1, 2), -1);
    assert_eq!(round_half_away_from_zero(5, 4), 1);
    assert_eq!(round_half_away_from_zero(7, 4), 2);
    assert_eq!(round_half_away_from_zero(-7, 4), -2);
    assert_eq!(round_half_away_from_zero(0, 3), 0);
}

/// build03: 4 slots, 120.00/month = 12000 cents, April 2026 (30 days = 2_592_000 s).
/// capacity = 4 * 2_592_000 = 10_368_000; busy = 1_000_000 + 500_000 = 1_500_000.
/// - nixpkgs:cuda-12: 12000 * 1_000_000 / 10_368_000 = 1157.4074.. -> floor 1157 (.407)
/// - nixpkgs:trunk:   12000 *   500_000 / 10_368_000 =  578.7037.. -> floor  578 (.704)
/// - idle:            12000 * 8_868_000 / 10_368_000 = 10263.8888.. -> floor 10263 (.889)
///
/// floors sum to 11998, C = 12000: 2 cents, to idle (.889) then trunk (.704).
#[test]
fn monthly_separate_in_a_30_day_month() {
    let c = config("separate");
    let m = machine(&c, "build03");
    let b = busy(&[("nixpkgs:cuda-12", 1_000_000), ("nixpkgs:trunk", 500_000)]);
    let lines = machine_lines(&c, m, month_span(2026, 4), &b).unwrap();
    assert_eq!(
        cents(&lines),
        kc(&[
            ("nixpkgs:cuda-12", 1157),
            ("nixpkgs:trunk", 579),
            ("~idle", 10264)
        ])
    );
    assert_eq!(
        machine_cost_exact(m, month_span(2026, 4), 1_500_000).unwrap(),
        (12000, 1)
    );
    let cuda = &lines[0];
    assert_eq!(cuda.pool.as_deref(), Some("cuda"));
    assert_eq!(cuda.fund, "cuda");
    assert_eq!(cuda.busy_seconds, 1_000_000);
    let idle = &lines[2];
    assert!(idle.idle && idle.jobset.is_none() && idle.pool.is_none());
    assert_eq!((idle.fund.as_str(), idle.busy_seconds), ("general", 0));
}

/// Same busy in May 2026 (31 days = 2_678_400 s): capacity = 10_713_600.
/// - cuda-12: 12000 * 1_000_000 / 10_713_600 = 1120.0716.. -> 1120
/// - trunk:   12000 *   500_000 / 10_713_600 =  560.0358.. ->  560
/// - idle:    12000 * 9_213_600 / 10_713_600 = 10319.8924.. -> 10319 (.892)
///
/// floors 11999, C = 12000: the one cent goes to idle.
#[test]
fn monthly_separate_in_a_31_day_month() {
    let c = config("separate");
    let m = machine(&c, "build03");
    let b = busy(&[("nixpkgs:cuda-12", 1_000_000), ("nixpkgs:trunk", 500_000)]);
    let lines = machine_lines(&c, m, month_span(2026, 5), &b).unwrap();
    assert_eq!(
        cents(&lines),
        kc(&[
            ("nixpkgs:cuda-12", 1120),
            ("nixpkgs:trunk", 560),
            ("~idle", 10320)
        ])
    );
}

/// Proportional: busy = 1_000_000 + 300_000 = 1_300_000, no idle line.
/// - cuda-12: 12000 * 10/13 = 9230.769.. -> 9230 (.769)
/// - trunk:   12000 *  3/13 = 2769.230.. -> 2769 (.231)
///
/// floors 11999, C = 12000: the cent goes to cuda-12. The month length does not matter
/// when the whole month is active (cost = 12000 in April and in May).
#[test]
fn monthly_proportional() {
    let c = config("proportional");
    let m = machine(&c, "build03");
    let b = busy(&[("nixpkgs:cuda-12", 1_000_000), ("nixpkgs:trunk", 300_000)]);
    for month in [4, 5] {
        let lines = machine_lines(&c, m, month_span(2026, month), &b).unwrap();
        assert_eq!(
            cents(&lines),
            kc(&[("nixpkgs:cuda-12", 9231), ("nixpkgs:trunk", 2769)])
        );
    }
    // Nothing ran: all of the cost is idle.
    let lines = machine_lines(&c, m, month_span(2026, 4), &BTreeMap::new()).unwrap();
    assert_eq!(cents(&lines), kc(&[("~idle", 12000)]));
}

/// build04: 1 slot, April: capacity 2_592_000 < busy 1_800_000 + 900_001 = 2_700_001,
/// so denominator = busy and there is no idle line.
/// - cuda-12: 12000 * 1_800_000 / 2_700_001 = 7999.99703.. -> 7999 (.997)
/// - trunk:   12000 *   900_001 / 2_700_001 = 4000.00296.. -> 4000 (.003)
///
/// floors 11999, C = 12000: the cent goes to cuda-12.
#[test]
fn busy_above_capacity_splits_by_busy() {
    let c = config("separate");
    let m = machine(&c, "build04");
    let b = busy(&[("nixpkgs:cuda-12", 1_800_000), ("nixpkgs:trunk", 900_001)]);
    let lines = machine_lines(&c, m, month_span(2026, 4), &b).unwrap();
    assert_eq!(
        cents(&lines),
        kc(&[("nixpkgs:cuda-12", 8000), ("nixpkgs:trunk", 4000)])
    );
}

/// late01: 2 slots, 120.00/month, active_from 2026-04-16: A = [04-16, 05-01) = 15 days =
/// 1_296_000 s of April's 2_592_000: cost = 12000 * 15/30 = 6000.
/// capacity = 2 * 1_296_000 = 2_592_000; busy cuda-12 = 1_000_000.
/// - cuda-12: 6000 * 1_000_000 / 2_592_000 = 2314.8148.. -> 2314 (.815)
/// - idle:    6000 * 1_592_000 / 2_592_000 = 3685.1851.. -> 3685 (.185)
///
/// floors 5999, C = 6000: the cent goes to cuda-12. March: not active, no lines.
#[test]
fn monthly_machine_starting_mid_month_is_prorated() {
    let c = config("separate");
    let m = machine(&c, "late01");
    let april = month_span(2026, 4);
    assert_eq!(
        active_span(m, april),
        Some(Span::new(at("2026-04-16"), april.end))
    );
    assert_eq!(machine_cost_exact(m, april, 0).unwrap(), (6000, 1));
    let b = busy(&[("nixpkgs:cuda-12", 1_000_000)]);
    let lines = machine_lines(&c, m, april, &b).unwrap();
    assert_eq!(
        cents(&lines),
        kc(&[("nixpkgs:cuda-12", 2315), ("~idle", 3685)])
    );
    assert!(machine_lines(&c, m, month_span(2026, 3), &BTreeMap::new())
        .unwrap()
        .is_empty());
    assert_eq!(active_span(m, month_span(2026, 3)), None);
}

/// hourly01: 2 slots, 1.90/hour = 190 cents, one day [05-10, 05-11) = 86_400 s:
/// cost = 190 * 24 = 4560; capacity = 172_800; busy trunk = 10_000.
/// - trunk: 4560 * 10_000 / 172_800 = 263.888.. -> 263 (.889)
/// - idle:  4560 * 162_800 / 172_800 = 4296.111.. -> 4296 (.111)
///
/// floors 4559, C = 4560: the cent goes to trunk. trunk is in no pool: "other", general.
#[test]
fn hourly_machine() {
    let c = config("separate");
    let m = machine(&c, "hourly01");
    let day = Span::new(at("2026-05-10"), at("2026-05-11"));
    let lines = machine_lines(&c, m, day, &busy(&[("nixpkgs:trunk", 10_000)])).unwrap();
    assert_eq!(
        cents(&lines),
        kc(&[("nixpkgs:trunk", 264), ("~idle", 4296)])
    );
    assert_eq!(lines[0].pool.as_deref(), Some(OTHER_POOL));
    assert_eq!(lines[0].fund, "general");
}

/// cloud01: metered 2.40/busy hour = 240 cents, 8 slots, all of April (capacity
/// 20_736_000 s, nearly all idle). busy = 4834 + 1800 = 6634 s:
/// cost = 240 * 6634 / 3600 = 442.2666.. -> C = 442.
/// - trunk:   240 * 4834 / 3600 = 322.2666.. -> 322
/// - cuda-12: 240 * 1800 / 3600 = 120 exactly
///
/// floors 442 = C. No idle line even under the separate policy; no busy, no lines.
#[test]
fn metered_machine_has_no_idle() {
    for policy in ["separate", "proportional"] {
        let c = config(policy);
        let m = machine(&c, "cloud01");
        let april = month_span(2026, 4);
        let b = busy(&[("nixpkgs:trunk", 4834), ("nixpkgs:cuda-12", 1800)]);
        // 240 * 6634 / 3600 = 6634 / 15 in lowest terms.
        assert_eq!(machine_cost_exact(m, april, 6634).unwrap(), (6634, 15));
        let lines = machine_lines(&c, m, april, &b).unwrap();
        assert_eq!(
            cents(&lines),
            kc(&[("nixpkgs:cuda-12", 120), ("nixpkgs:trunk", 322)])
        );
        assert!(machine_lines(&c, m, april, &BTreeMap::new())
            .unwrap()
            .is_empty());
        let zero = busy(&[("nixpkgs:trunk", 0)]);
        assert!(machine_lines(&c, m, april, &zero).unwrap().is_empty());
    }
}

/// tiny01: hourly 0.02 = 2 cents/hour, 1 slot, one hour: cost 2, capacity 3600.
/// a:x and b:y each 1200 s: a:x = b:y = idle = 2/3 cent. Floors 0, C = 2: the three
/// remainders tie, so ascending key: "a:x" < "b:y" < "~idle" get 1, 1, 0. The idle line
/// is still listed (its exact amount is > 0) and is paid by idle_fund "infra".
///
/// half01: hourly 0.01, proportional, one hour: cost 1 cent; b:x and a:y 100 s each get
/// 1/2 cent: C = 1 (half away from zero) goes to "a:y" by key.
#[test]
fn remainder_ties_go_by_ascending_key() {
    let c = config("separate");
    let hour = Span::new(at("2026-05-10"), at("2026-05-10T01:00:00Z"));
    let lines = machine_lines(
        &c,
        machine(&c, "tiny01"),
        hour,
        &busy(&[("b:y", 1200), ("a:x", 1200)]),
    )
    .unwrap();
    assert_eq!(cents(&lines), kc(&[("a:x", 1), ("b:y", 1), ("~idle", 0)]));
    assert_eq!(lines[2].fund, "infra");
    let c = config("proportional");
    let lines = machine_lines(
        &c,
        machine(&c, "half01"),
        hour,
        &busy(&[("b:x", 100), ("a:y", 100)]),
    )
    .unwrap();
    assert_eq!(cents(&lines), kc(&[("a:y", 1), ("b:x", 0)]));
    // Half a cent of cost alone rounds up to one cent.
    let half_hour = Span::new(hour.start, hour.start + 1800);
    let lines = machine_lines(&c, machine(&c, "half01"), half_hour, &BTreeMap::new()).unwrap();
    assert_eq!(cents(&lines), kc(&[("~idle", 1)]));
}

/// A step on build04 (1 slot, 120/month) from 2026-04-30 22:00 to 2026-05-01 02:00 is
/// split at the month boundary: 7200 s in April, 7200 s in May.
/// - April (2_592_000 s): trunk 12000 * 7200 / 2_592_000 = 33.333.. -> 33,
///   idle 11966.666.. -> 11967 (larger remainder).
/// - May (2_678_400 s): trunk 12000 * 7200 / 2_678_400 = 32.258.. -> 32,
///   idle 11967.741.. -> 11968.
#[test]
fn a_step_across_a_month_boundary_is_split() {
    let c = config("separate");
    let m = machine(&c, "build04");
    let step = Span::new(at("2026-04-30T22:00:00Z"), at("2026-05-01T02:00:00Z"));
    let expected = [
        kc(&[("nixpkgs:trunk", 33), ("~idle", 11967)]),
        kc(&[("nixpkgs:trunk", 32), ("~idle", 11968)]),
    ];
    let parts = split_months(step);
    assert_eq!(parts.len(), 2);
    for (part, expected) in parts.iter().zip(expected) {
        let window = month_of(part.start);
        // The caller clips the step to the window's active span.
        let clipped = part.intersect(active_span(m, window).unwrap()).unwrap();
        assert_eq!(clipped.len(), 7200);
        let lines =
            machine_lines(&c, m, window, &busy(&[("nixpkgs:trunk", clipped.len())])).unwrap();
        assert_eq!(cents(&lines), expected);
    }
}

/// jetson01 (idle_fund cuda), 120/month, 1 slot, April: busy nixpkgs:cuda-legacy 259_200 s
/// (a tenth of the month) and nixos:release-26.05 25_920 s (a hundredth): 1200 and 120
/// cents, hydra:trunk 2592 s (a thousandth): 12 cents; idle 12000 - 1332 = 10668 to
/// the cuda fund. cuda-legacy matches both pools; the first in config
/// order (cuda) wins. A jobset in no pool goes to "other", paid by the default fund.
#[test]
fn pools_funds_and_idle_fund_routing() {
    let c = config("separate");
    let m = machine(&c, "jetson01");
    let b = busy(&[
        ("nixpkgs:cuda-legacy", 259_200),
        ("nixos:release-26.05", 25_920),
        ("hydra:trunk", 2592),
    ]);
    let lines = machine_lines(&c, m, month_span(2026, 4), &b).unwrap();
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.key(), l.pool.as_deref(), l.fund.as_str(), l.cost_cents))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hydra:trunk", Some("other"), "general", 12),
            ("nixos:release-26.05", Some("release"), "infra", 120),
            ("nixpkgs:cuda-legacy", Some("cuda"), "cuda", 1200),
            ("~idle", None, "cuda", 10668),
        ]
    );
    assert!(lines.iter().all(|l| l.machine == "jetson01"));
}

#[test]
fn a_window_across_months_is_refused() {
    let c = config("separate");
    let w = Span::new(at("2026-04-30"), at("2026-05-02"));
    let e = machine_lines(&c, machine(&c, "build03"), w, &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&e, AttributionError::WindowCrossesMonth { machine, start, end }
            if machine == "build03" && (*start, *end) == (w.start, w.end)),
        "{e:?}"
    );
    assert!(e.to_string().contains("crosses a month boundary"), "{e}");
}

#[test]
fn worst_case_prices_fit() {
    // The largest price with the most decimals, the most slots, the longest month, and
    // busy far above capacity: no overflow.
    let text = r#"
ledger_start = "2026-01-01"
[[machines]]
name = "big"
slots = 100000
monthly = "999999999.999999"
[[machines]]
name = "meter"
slots = 100000
metered = "999999999.999999"
"#;
    let c = Config::parse(text, "test").unwrap();
    let may = month_span(2026, 5);
    let cap = 100_000 * may.len();
    // Busy far above capacity for the monthly machine; the metered one busy on all slots
    // all month (1e9 an hour for 7.44e7 hours is 7.44e18 cents, just inside i64).
    let above = busy(&[
        ("a:b", cap / 3 + 1),
        ("c:d", cap / 7 + 11),
        ("e:f", cap * 4),
    ]);
    let full = busy(&[
        ("a:b", cap / 3 + 1),
        ("c:d", cap / 7 + 11),
        ("e:f", cap / 2 - 13),
    ]);
    // A window of M - 1 seconds keeps the monthly fraction from reducing.
    for window in [may, Span::new(may.start + 1, may.end)] {
        for (m, b) in c.machines.iter().zip([&above, &full]) {
            let lines = machine_lines(&c, m, window, b).unwrap();
            let sum: i64 = lines.iter().map(|l| l.cost_cents).sum();
            let total = b.values().sum::<i64>();
            let (n, d) = machine_cost_exact(m, window, total).unwrap();
            assert_eq!(i128::from(sum), round_half_away_from_zero(n, d));
        }
    }
}

// ---- properties ----

pub(super) const NAMES: &[&str] = &[
    "nixpkgs:cuda-12",
    "nixpkgs:trunk",
    "nixpkgs:tests",
    "hydra:tests",
    "nixos:release-26.05",
    "a:b",
];

#[derive(Clone, Debug)]
struct Setup {
    policy: &'static str,
    model: &'static str,
    price: String,
    slots: u32,
    /// Offsets from the month start, in seconds, for active_from / active_until.
    active_from: Option<i64>,
    active_len: Option<i64>,
    year: i32,
    month: u32,
}

pub(super) fn price() -> impl Strategy<Value = String> {
    (
        prop_oneof![0u64..=1000, 0u64..=1_000_000_000],
        0usize..=6,
        0u64..1_000_000,
    )
        .prop_map(|(int, decimals, frac)| {
            if decimals == 0 || int == 1_000_000_000 {
                int.to_string()
            } else {
                let frac = frac % 10u64.pow(decimals as u32);
                format!("{int}.{frac:0decimals$}")
            }
        })
}

fn setup(models: &'static [&'static str]) -> impl Strategy<Value = Setup> {
    (
        prop::sample::select(&["separate", "proportional"][..]),
        prop::sample::select(models),
        price(),
        1u32..=4,
        prop::option::of(-40 * DAY..40 * DAY),
        prop::option::of(1..60 * DAY),
        2020i32..=2030,
        1u32..=12,
    )
        .prop_map(
            |(policy, model, price, slots, active_from, active_len, year, month)| Setup {
                policy,
                model,
                price,
                slots,
                active_from,
                active_len,
                year,
                month,
            },
        )
}

fn iso(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Setup {
    fn config(&self) -> Config {
        let month = month_span(self.year, self.month);
        let mut active = String::new();
        // active_len alone means "until month start + len".
        let from = self.active_from.map(|o| month.start + o);
        if let Some(from) = from {
            active.push_str(&format!("active_from = \"{}\"\n", iso(from)));
        }
        if let Some(len) = self.active_len {
            let base = from.unwrap_or(month.start);
            active.push_str(&format!("active_until = \"{}\"\n", iso(base + len)));
        }
        let text = format!(
            r#"
ledger_start = "2020-01-01"
idle = "{}"
[[funds]]
slug = "general"
default = true
[[funds]]
slug = "cuda"
[[funds]]
slug = "infra"
[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]
[[pools]]
slug = "tests"
fund = "infra"
jobsets = ["*:tests"]
[[machines]]
name = "m"
slots = {}
{} = "{}"
idle_fund = "infra"
{active}"#,
            self.policy, self.slots, self.model, self.price
        );
        Config::parse(&text, "prop").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn month(&self) -> Span {
        month_span(self.year, self.month)
    }
}

/// A window inside the month from two raw offsets.
fn window_in(month: Span, x: u32, y: u32) -> Span {
    let len = month.len() + 1;
    let a = i64::from(x) % len;
    let b = i64::from(y) % len;
    Span::new(month.start + a.min(b), month.start + a.max(b))
}

/// Busy seconds as thousandths of the capacity of `span` (plus a few odd seconds), 0 when
/// the machine is not active there.
pub(super) fn busy_map(
    m: &Machine,
    span: Span,
    picks: &[(usize, u32, i64)],
) -> BTreeMap<String, i64> {
    let mut b = BTreeMap::new();
    let Some(a) = active_span(m, span) else {
        return b;
    };
    let cap = i64::from(m.terms_at(span.start).slots) * a.len();
    for &(name, k, extra) in picks {
        let v = cap * i64::from(k) / 1000 + extra.min(cap);
        *b.entry(NAMES[name % NAMES.len()].to_string()).or_insert(0) += v;
    }
    b
}

/// The invariants of one part's lines under `terms` (the machine's own without changes).
pub(super) fn check_lines(
    c: &Config,
    m: &Machine,
    window: Span,
    terms: &Terms,
    b: &BTreeMap<String, i64>,
) {
    let part = PricedPart::new(m, window, *terms);
    let lines = part_lines(c, m, &part, b).unwrap();
    let total_busy: i64 = b.values().sum();
    let (n, d) = part_cost_exact(m, &part, total_busy).unwrap();
    let sum: i64 = lines.iter().map(|l| l.cost_cents).sum();
    assert_eq!(
        i128::from(sum),
        round_half_away_from_zero(n, d),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.cost_cents >= 0), "{lines:?}");
    // Keys strictly ascending with idle last; busy seconds carried through.
    let jobsets: Vec<&Line> = lines.iter().filter(|l| !l.idle).collect();
    assert!(jobsets.windows(2).all(|w| w[0].key() < w[1].key()));
    assert!(lines.iter().rev().skip(1).all(|l| !l.idle));
    for l in &jobsets {
        assert_eq!(Some(&l.busy_seconds), b.get(l.key()));
        assert!(l.busy_seconds > 0);
    }
    assert_eq!(jobsets.len(), b.values().filter(|&&v| v > 0).count());
    // Each line is its exact amount rounded down or up.
    let exact = exact_shares(c, m, &part, b).unwrap();
    assert_eq!(exact.lines.len(), lines.len());
    for (e, l) in exact.lines.iter().zip(&lines) {
        let floor = e.numerator.div_euclid(exact.denominator);
        let got = i128::from(l.cost_cents);
        assert!(got == floor || got == floor + 1, "{e:?} {l:?}");
        assert!(e.numerator > 0 || !l.idle);
    }
    // Independently of exact_shares' common denominator: a jobset's exact amount is
    // cost * busy_j / (busy when proportional, else max(slots * |A|, busy)).
    if let Some(active) = active_span(m, window) {
        let capacity = i128::from(terms.slots) * i128::from(active.len());
        let denom = if is_proportional(c, terms) {
            i128::from(total_busy)
        } else {
            capacity.max(i128::from(total_busy))
        };
        for e in exact.lines.iter().filter(|e| e.key != IDLE_KEY) {
            // e.numerator / exact.denominator == n * busy_j / (d * denom)?
            let lhs = e
                .numerator
                .checked_mul(d)
                .and_then(|x| x.checked_mul(denom));
            let rhs = n
                .checked_mul(i128::from(e.busy_seconds))
                .and_then(|x| x.checked_mul(exact.denominator));
            if let (Some(lhs), Some(rhs)) = (lhs, rhs) {
                assert_eq!(lhs, rhs, "{e:?}");
            }
        }
    } else {
        assert!(lines.is_empty());
    }
    if is_proportional(c, terms) && total_busy > 0 {
        assert!(lines.iter().all(|l| !l.idle), "{lines:?}");
    }
    if matches!(terms.cost, CostModel::Metered(_)) {
        assert!(lines.iter().all(|l| !l.idle), "{lines:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lines_sum_to_the_rounded_cost(
        s in setup(&["monthly", "hourly", "metered"]),
        x in any::<u32>(),
        y in any::<u32>(),
        picks in prop::collection::vec((0usize..6, 0u32..=600, 0i64..5000), 0..6),
    ) {
        let c = s.config();
        let m = &c.machines[0];
        let window = window_in(s.month(), x, y);
        let b = busy_map(m, window, &picks);
        let terms = m.terms_at(window.start);
        check_lines(&c, m, window, &terms, &b);
        // The whole month too.
        let b = busy_map(m, s.month(), &picks);
        check_lines(&c, m, s.month(), &terms, &b);
    }

    #[test]
    fn splitting_a_window_moves_at_most_a_cent(
        s in setup(&["monthly", "hourly"]),
        x in any::<u32>(),
        y in any::<u32>(),
        z in any::<u32>(),
        picks in prop::collection::vec((0usize..6, 0u32..=200, 0i64..1), 0..5),
    ) {
        let c = s.config();
        let m = &c.machines[0];
        let whole = window_in(s.month(), x, y);
        let mid = whole.start + i64::from(z) % (whole.len() + 1);
        let first = Span::new(whole.start, mid);
        let second = Span::new(mid, whole.end);
        // Busy only in the first part, at most its capacity.
        let b = busy_map(m, first, &picks);
        let total = |lines: &[Line]| lines.iter().map(|l| l.cost_cents).sum::<i64>();
        let one = machine_lines(&c, m, whole, &b).unwrap();
        let a = machine_lines(&c, m, first, &b).unwrap();
        let rest = machine_lines(&c, m, second, &BTreeMap::new()).unwrap();
        // The exact costs add up; three roundings of at most half a cent each.
        prop_assert!((total(&one) - total(&a) - total(&rest)).abs() <= 1);
        if c.idle == IdlePolicy::Separate {
            // Same cost per slot-second and busy <= capacity: a jobset's exact amount is
            // the same in [a, b) and in [a, m); each is rounded by less than a cent.
            for l in one.iter().filter(|l| !l.idle) {
                let other = a.iter().find(|o| o.jobset == l.jobset).map_or(0, |o| o.cost_cents);
                prop_assert!((l.cost_cents - other).abs() <= 1, "{l:?} {a:?}");
            }
        }
    }

    #[test]
    fn cents_do_not_depend_on_names_or_order(
        s in setup(&["monthly", "hourly", "metered"]),
        x in any::<u32>(),
        y in any::<u32>(),
        values in prop::collection::vec((0u32..=300, 1i64..5000), 1..=6),
        perm in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let c = s.config();
        let m = &c.machines[0];
        let window = window_in(s.month(), x, y);
        let Some(active) = active_span(m, window) else { return Ok(()) };
        let cap = i64::from(m.slots) * active.len();
        let values: Vec<i64> = values.iter().map(|&(k, e)| cap * i64::from(k) / 1000 + e).collect();
        // Names given in the original order and in a permuted order.
        let given: Vec<(String, i64)> =
            values.iter().enumerate().map(|(i, &v)| (NAMES[i].to_string(), v)).collect();
        let permuted: Vec<(String, i64)> =
            values.iter().enumerate().map(|(i, &v)| (NAMES[perm[i]].to_string(), v)).collect();
        // Insertion order of the same pairs changes nothing at all.
        let forward: BTreeMap<String, i64> = given.iter().cloned().collect();
        let backward: BTreeMap<String, i64> = given.iter().rev().cloned().collect();
        prop_assert_eq!(
            machine_lines(&c, m, window, &forward).unwrap(),
            machine_lines(&c, m, window, &backward).unwrap()
        );
        // Permuting which name carries which busy value: every jobset still gets the same
        // cents for the same busy value, except where remainders tie (then the key decides).
        let b1 = forward;
        let b2: BTreeMap<String, i64> = permuted.into_iter().collect();
        let l1 = machine_lines(&c, m, window, &b1).unwrap();
        let l2 = machine_lines(&c, m, window, &b2).unwrap();
        let part = PricedPart::new(m, window, m.terms_at(window.start));
        let e1 = exact_shares(&c, m, &part, &b1).unwrap();
        let tied = |num: i128| {
            e1.lines
                .iter()
                .filter(|e| e.numerator.rem_euclid(e1.denominator) == num.rem_euclid(e1.denominator))
                .count()
                > 1
        };
        prop_assert_eq!(l1.iter().map(|l| l.cost_cents).sum::<i64>(), l2.iter().map(|l| l.cost_cents).sum::<i64>());
        for (i, v) in values.iter().enumerate() {
            let name1 = NAMES[i];
            let name2 = NAMES[perm[i]];
            let c1 = l1.iter().find(|l| l.key() == name1).map(|l| l.cost_cents);
            let c2 = l2.iter().find(|l| l.key() == name2).map(|l| l.cost_cents);
            let e = e1.lines.iter().find(|e| e.key == name1);
            match e {
                Some(e) if !tied(e.numerator) => prop_assert_eq!(c1, c2, "busy {}", v),
                Some(_) => prop_assert!((c1.unwrap() - c2.unwrap()).abs() <= 1),
                None => prop_assert_eq!((c1, c2), (None, None)),
            }
        }
    }
}
