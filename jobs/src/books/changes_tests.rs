//! Tests of `attribution` over `[[machines.changes]]`: windows split at change instants, each
//! part attributed and rounded on its own with the terms in force during it.
use super::tests::{busy_map, check_lines, price};
use super::*;
use crate::books::terms::{active_span, machine_parts, PricedPart};
use crate::calendar::month_span;
use crate::money::Price;
use proptest::prelude::*;

fn config() -> Config {
    Config::parse(
        r#"
ledger_start = "2026-01-01"
idle = "separate"
[[funds]]
slug = "general"
default = true
[[funds]]
slug = "cuda"
[[pools]]
slug = "cuda"
fund = "cuda"
jobsets = ["nixpkgs:cuda*"]

[[machines]]
name = "rent01"
slots = 2
monthly = "120.00"
[[machines.changes]]
from = "2026-10-15"
monthly = "150.00"

[[machines]]
name = "cloud02"
slots = 4
hourly = "1.90"
[[machines.changes]]
from = 2026-10-15
metered = "2.40"

[[machines]]
name = "grow01"
slots = 2
monthly = "93.00"
[[machines.changes]]
from = "2026-10-11"
slots = 4

[[machines]]
name = "tie01"
slots = 1
hourly = "0.01"
active_from = "2026-10-14T23:30:00Z"
[[machines.changes]]
from = "2026-09-01"
hourly = "0.02"
[[machines.changes]]
from = "2026-10-15"
hourly = "0.03"
[[machines.changes]]
from = "2026-11-01"
slots = 2
"#,
        "changes",
    )
    .unwrap()
}

fn machine<'a>(c: &'a Config, name: &str) -> &'a Machine {
    c.machines.iter().find(|m| m.name == name).unwrap()
}

fn at(text: &str) -> i64 {
    crate::calendar::parse_instant(text).unwrap().timestamp()
}

fn busy(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn monthly(p: &str) -> CostModel {
    CostModel::Monthly(Price::parse(p).unwrap())
}

/// The machine's lines of `window` with `busy[i]` the busy seconds of its i-th part, each
/// part rounded on its own and the parts merged (what `lines_from_steps` does with the data).
fn window_lines(
    c: &Config,
    m: &Machine,
    window: Span,
    busy: &[BTreeMap<String, i64>],
) -> Vec<Line> {
    let parts = machine_parts(m, window);
    assert_eq!(parts.len(), busy.len(), "{parts:?}");
    let lines: Vec<Vec<Line>> = parts
        .iter()
        .zip(busy)
        .map(|((part, terms), b)| part_lines(c, m, &PricedPart::new(m, *part, *terms), b).unwrap())
        .collect();
    let slices: Vec<&[Line]> = lines.iter().map(Vec::as_slice).collect();
    merge_parts(&slices)
}

fn cents(lines: &[Line]) -> Vec<(&str, i64, i64)> {
    lines
        .iter()
        .map(|l| (l.key(), l.busy_seconds, l.cost_cents))
        .collect()
}

#[test]
fn terms_and_parts_follow_the_changes() {
    let c = config();
    let tie = machine(&c, "tie01");
    let hourly = |p: &str| CostModel::Hourly(Price::parse(p).unwrap());
    // Before every change, the machine's own terms; a change is in force from its instant on.
    let own = Terms {
        cost: hourly("0.01"),
        slots: 1,
    };
    assert_eq!(tie.terms_at(at("2026-08-31T23:59:59Z")), own);
    let sept = Terms {
        cost: hourly("0.02"),
        ..own
    };
    assert_eq!(tie.terms_at(at("2026-09-01")), sept);
    let oct = Terms {
        cost: hourly("0.03"),
        ..own
    };
    assert_eq!(tie.terms_at(at("2026-10-15")), oct);
    // A change that names only slots keeps the price.
    assert_eq!(tie.terms_at(at("2027-01-01")), Terms { slots: 2, ..oct });
    // October is split at the 15th only (September's change is before it, November's at its
    // end); a window starting at a change is not split there.
    let october = month_span(2026, 10);
    assert_eq!(
        machine_parts(tie, october),
        vec![
            (Span::new(october.start, at("2026-10-15")), sept),
            (Span::new(at("2026-10-15"), october.end), oct),
        ]
    );
    let late = Span::new(at("2026-10-15"), at("2026-10-20"));
    assert_eq!(machine_parts(tie, late), vec![(late, oct)]);
    assert!(machine_parts(tie, Span::new(5, 5)).is_empty());
    // The whole-window functions refuse a window with a change inside.
    for e in [
        machine_lines(&c, tie, october, &BTreeMap::new()).unwrap_err(),
        machine_cost_exact(tie, october, 0).unwrap_err(),
    ] {
        assert!(
            matches!(&e, AttributionError::WindowHoldsChange { machine, .. } if machine == "tie01"),
            "{e:?}"
        );
    }
}

/// rent01: 2 slots, monthly 120.00 until 2026-10-15, 150.00 from then. October: 31 days.
/// Part 1 [Oct 1, Oct 15), 14 days = 1_209_600 s, capacity 2_419_200:
///   cost 12000 * 14/31 = 168000/31 = 5419.35 -> C = 5419;
///   cuda  5419.35 * 100_000/2_419_200 = 62500/279 = 224.01 -> 224
///   trunk 5419.35 *  50_000/2_419_200 = 31250/279 = 112.01 -> 112
///   idle  the rest = 15250/3 = 5083.33 -> 5083; floors 5419 = C.
/// Part 2 [Oct 15, Nov 1), 17 days = 1_468_800 s, capacity 2_937_600:
///   cost 15000 * 17/31 = 255000/31 = 8225.81 -> C = 8226;
///   cuda  8225.81 * 200_000/2_937_600 = 156250/279 = 560.04 -> 560
///   idle  2138750/279 = 7665.77 -> 7665, + the cent left (.77 > .04) = 7666.
/// Month: cuda 224 + 560 = 784, trunk 112, idle 5083 + 7666 = 12749; 13645 in all.
#[test]
fn a_monthly_price_that_changes_mid_month() {
    let c = config();
    let m = machine(&c, "rent01");
    let lines = window_lines(
        &c,
        m,
        month_span(2026, 10),
        &[
            busy(&[("nixpkgs:cuda", 100_000), ("nixpkgs:trunk", 50_000)]),
            busy(&[("nixpkgs:cuda", 200_000)]),
        ],
    );
    assert_eq!(
        cents(&lines),
        [
            ("nixpkgs:cuda", 300_000, 784),
            ("nixpkgs:trunk", 50_000, 112),
            ("~idle", 0, 12749)
        ]
    );
    assert_eq!(lines[0].fund, "cuda");
    assert_eq!(lines[2].fund, "general");
    assert_eq!(lines.iter().map(|l| l.cost_cents).sum::<i64>(), 13645);
    // Before the change the old price alone: the first 14 days cost 5419.
    let first = Span::new(month_span(2026, 10).start, at("2026-10-15"));
    assert_eq!(machine_cost_exact(m, first, 0).unwrap(), (168_000, 31));
}

/// cloud02: 4 slots, hourly 1.90 until 2026-10-15, metered 2.40 from then (separate policy).
/// A step of nixpkgs:cuda runs across the change, 23:00 to 01:00: an hour in each part.
/// Part 1, 14 days = 336 h: cost 190 * 336 = 63840 exactly; capacity 4 * 1_209_600 =
///   4_838_400; busy cuda 360_000 + 3600 = 363_600, trunk 7_200.
///   cuda 63840 * 363_600/4_838_400 = 4797.5, trunk 63840 * 7200/4_838_400 = 95,
///   idle 58947.5: floors 63839, the cent left goes to the tie .5/.5 by ascending key:
///   "nixpkgs:cuda" < "~idle", so cuda 4798, idle 58947.
/// Part 2, metered (always proportional, no idle): busy cuda 36_000 + 3600 = 39_600 (11 h),
///   trunk 1_800 (0.5 h): cost 240 * 11.5 = 2760; cuda 2640, trunk 120.
/// Month: cuda 4798 + 2640 = 7438, trunk 95 + 120 = 215, idle 58947; 66600 in all.
#[test]
fn a_machine_that_goes_from_hourly_to_metered() {
    let c = config();
    let m = machine(&c, "cloud02");
    let lines = window_lines(
        &c,
        m,
        month_span(2026, 10),
        &[
            busy(&[("nixpkgs:cuda", 363_600), ("nixpkgs:trunk", 7_200)]),
            busy(&[("nixpkgs:cuda", 39_600), ("nixpkgs:trunk", 1_800)]),
        ],
    );
    assert_eq!(
        cents(&lines),
        [
            ("nixpkgs:cuda", 403_200, 7438),
            ("nixpkgs:trunk", 9_000, 215),
            ("~idle", 0, 58947)
        ]
    );
    // After the change nothing is idle, however little ran: an idle metered part costs 0.
    let (part, terms) = machine_parts(m, month_span(2026, 10))[1];
    assert!(
        part_lines(&c, m, &PricedPart::new(m, part, terms), &BTreeMap::new())
            .unwrap()
            .is_empty()
    );
}

/// grow01: monthly 93.00, 2 slots until 2026-10-11, 4 slots from then.
/// Part 1, 10 days = 864_000 s: cost 9300 * 10/31 = 3000, capacity 2 * 864_000 = 1_728_000;
///   cuda busy 864_000 (half of it): 1500, idle 1500.
/// Part 2, 21 days = 1_814_400 s: cost 9300 * 21/31 = 6300, capacity 4 * 1_814_400 =
///   7_257_600; cuda busy 1_814_400 (a quarter): 1575, idle 4725.
/// Month: cuda 3075, idle 6225; the same busy time over 2 slots all month would have cost
/// cuda 9300 * 2_678_400 / 5_356_800 = 4650.
#[test]
fn a_change_that_adds_slots_grows_capacity_and_idle() {
    let c = config();
    let m = machine(&c, "grow01");
    let lines = window_lines(
        &c,
        m,
        month_span(2026, 10),
        &[
            busy(&[("nixpkgs:cuda", 864_000)]),
            busy(&[("nixpkgs:cuda", 1_814_400)]),
        ],
    );
    assert_eq!(
        cents(&lines),
        [("nixpkgs:cuda", 2_678_400, 3075), ("~idle", 0, 6225)]
    );
    assert_eq!(m.terms_at(at("2026-10-31")).cost, monthly("93.00"));
}

/// tie01: 1 slot, active from 2026-10-14T23:30Z, hourly 0.02 (from September) then 0.03 from
/// 2026-10-15; the window [Oct 14, Oct 15 00:10) as a month to date.
/// Part 1 [23:30, 00:00), half an hour: cost 2 * 0.5 = 1 cent... at 0.02 -> exactly 1.0;
///   cuda 900 s and trunk 900 s fill the capacity of 1800 s: 0.5 each, C = 1, floors 0, the
///   tie of remainders goes to the ascending key: cuda 1, trunk 0.
/// Part 2 [00:00, 00:10), 600 s at 3 cents an hour: cost 0.5 -> C = 1 (half away from zero);
///   cuda 300 s and trunk 300 s: 0.25 each, tie again: cuda 1, trunk 0.
/// Merged: cuda 2, trunk 0 (its line is kept for its busy time); 2 cents where the exact cost
/// is 1.5: each part is rounded on its own.
#[test]
fn each_part_is_rounded_on_its_own_and_ties_go_by_key() {
    let c = config();
    let m = machine(&c, "tie01");
    let window = Span::new(at("2026-10-14"), at("2026-10-15T00:10:00Z"));
    let lines = window_lines(
        &c,
        m,
        window,
        &[
            busy(&[("nixpkgs:cuda", 900), ("nixpkgs:trunk", 900)]),
            busy(&[("nixpkgs:cuda", 300), ("nixpkgs:trunk", 300)]),
        ],
    );
    assert_eq!(
        cents(&lines),
        [("nixpkgs:cuda", 1200, 2), ("nixpkgs:trunk", 1200, 0)]
    );
}

/// A machine with up to three changes inside one month, each naming a new model or slots.
#[derive(Clone, Debug)]
struct Changing {
    policy: &'static str,
    model: &'static str,
    price: String,
    slots: u32,
    /// (day of the month 2..=28, new model or none, its price, new slots or none)
    changes: Vec<(u32, Option<&'static str>, String, Option<u32>)>,
    /// The changes restate the machine's own terms (a split that changes nothing).
    restate: bool,
}

const MODELS: &[&str] = &["monthly", "hourly", "metered"];

fn changing() -> impl Strategy<Value = Changing> {
    (
        prop::sample::select(&["separate", "proportional"][..]),
        prop::sample::select(MODELS),
        price(),
        1u32..=4,
        prop::collection::btree_map(
            2u32..=28,
            (
                prop::option::of(prop::sample::select(MODELS)),
                price(),
                prop::option::of(1u32..=8),
            ),
            1..=3,
        ),
        any::<bool>(),
    )
        .prop_map(|(policy, model, price, slots, changes, restate)| Changing {
            policy,
            model,
            price,
            slots,
            changes: changes
                .into_iter()
                .map(|(day, (m, p, s))| {
                    (
                        day,
                        m.or(if s.is_none() { Some(model) } else { None }),
                        p,
                        s,
                    )
                })
                .collect(),
            restate,
        })
}

impl Changing {
    fn config(&self) -> Config {
        let mut text = format!(
            "ledger_start = \"2020-01-01\"\nidle = \"{}\"\n[[funds]]\nslug = \"general\"\n\
             default = true\n[[machines]]\nname = \"m\"\nslots = {}\n{} = \"{}\"\n",
            self.policy, self.slots, self.model, self.price
        );
        for (day, model, price, slots) in &self.changes {
            text.push_str(&format!(
                "[[machines.changes]]\nfrom = \"2026-10-{day:02}\"\n"
            ));
            if self.restate {
                text.push_str(&format!(
                    "{} = \"{}\"\nslots = {}\n",
                    self.model, self.price, self.slots
                ));
                continue;
            }
            if let Some(model) = model {
                text.push_str(&format!("{model} = \"{price}\"\n"));
            }
            if let Some(slots) = slots {
                text.push_str(&format!("slots = {slots}\n"));
            }
        }
        Config::parse(&text, "prop").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Splitting a window at its changes drifts the machine's month total by at most one cent
    /// per part: from the exact cost of the month (the parts' exact costs summed, rounded
    /// once), and, when the changes restate the terms, from the total without them.
    #[test]
    fn splitting_at_changes_drifts_a_cent_per_part_at_most(
        s in changing(),
        picks in prop::collection::vec((0usize..6, 0u32..=300, 0i64..5000), 0..6),
    ) {
        let c = s.config();
        let m = &c.machines[0];
        let month = month_span(2026, 10);
        let parts = machine_parts(m, month);
        prop_assert_eq!(parts.len(), s.changes.len() + 1);
        // Parts in order, covering the month.
        prop_assert_eq!(parts[0].0.start, month.start);
        prop_assert_eq!(parts[parts.len() - 1].0.end, month.end);
        prop_assert!(parts.windows(2).all(|w| w[0].0.end == w[1].0.start));
        let busy: Vec<BTreeMap<String, i64>> =
            parts.iter().map(|(part, _)| busy_map(m, *part, &picks)).collect();
        let mut exact = (0i128, 1i128);
        for ((part, terms), b) in parts.iter().zip(&busy) {
            check_lines(&c, m, *part, terms, b);
            exact = add_fractions(exact, part_cost_exact(m, &PricedPart::new(m, *part, *terms), b.values().sum()).unwrap()).unwrap();
        }
        let lines = window_lines(&c, m, month, &busy);
        let total = i128::from(lines.iter().map(|l| l.cost_cents).sum::<i64>());
        let n = parts.len() as i128;
        prop_assert!((total - round_half_away_from_zero(exact.0, exact.1)).abs() <= n);
        // Busy seconds are carried through the merge.
        for l in lines.iter().filter(|l| !l.idle) {
            let given: i64 = busy.iter().filter_map(|b| b.get(l.key())).sum();
            prop_assert_eq!(l.busy_seconds, given);
        }
        if s.restate {
            // The same machine without changes, over the whole month, with the same steps.
            let mut same = m.clone();
            same.changes.clear();
            let mut all: BTreeMap<String, i64> = BTreeMap::new();
            for b in &busy {
                for (k, v) in b {
                    *all.entry(k.clone()).or_insert(0) += v;
                }
            }
            let one = machine_lines(&c, &same, month, &all).unwrap();
            let one_total = i128::from(one.iter().map(|l| l.cost_cents).sum::<i64>());
            prop_assert!((total - one_total).abs() <= n, "{one:?} {lines:?}");
            // Separate idle, busy within the capacity of every part, a price per slot-second:
            // a jobset's exact amount is the same split or not, and each part rounds it by
            // less than a cent.
            let within = parts.iter().zip(&busy).all(|((part, terms), b)| {
                let cap = active_span(m, *part).map_or(0, |a| a.len()) * i64::from(terms.slots);
                b.values().sum::<i64>() <= cap
            });
            let per_slot = c.idle == IdlePolicy::Separate && s.model != "metered";
            for l in lines.iter().filter(|_| within && per_slot) {
                let other = one.iter().find(|o| o.key() == l.key()).map_or(0, |o| o.cost_cents);
                prop_assert!((l.cost_cents - other).abs() <= n as i64, "{l:?} {one:?}");
            }
        }
    }
}
