//! The funding page's chart of raised and spent per month: an inline SVG scaled here with
//! integer arithmetic (no script, no floating point), and the same figures as a table.
use super::format::{money, month_label, Money, MONTH_NAMES};
use crate::books::HistoryMonth;

#[derive(Clone, Debug)]
pub struct BarView {
    pub month: String,
    pub label: String,
    pub short: String,
    /// The year under January and under the first bar.
    pub year: Option<i32>,
    pub raised: Money,
    pub spent: Money,
    pub difference: Money,
    pub x_raised: i64,
    pub x_spent: i64,
    pub x_label: i64,
    pub y_raised: i64,
    pub y_spent: i64,
    pub h_raised: i64,
    pub h_spent: i64,
}

#[derive(Clone, Debug)]
pub struct ChartView {
    pub width: i64,
    pub height: i64,
    pub left: i64,
    pub right: i64,
    pub top: i64,
    pub baseline: i64,
    pub bar_width: i64,
    pub max_label: String,
    pub desc: String,
    pub bars: Vec<BarView>,
}

pub fn chart(history: &[HistoryMonth]) -> ChartView {
    let (width, height, left, right, top, baseline) =
        (720i64, 260i64, 72i64, 712i64, 14i64, 214i64);
    let n = history.len().max(1) as i64;
    let group = (right - left) / n;
    let bar_width = ((group - 10) / 2).clamp(2, 26);
    let max = history
        .iter()
        .flat_map(|h| [h.raised_cents, h.spent_cents])
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |v: i64| -> i64 {
        (i128::from(v.max(0)) * i128::from(baseline - top) / i128::from(max)) as i64
    };
    let mut desc = String::new();
    let bars = history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let gx = left + i as i64 * group;
            let x_raised = gx + (group - 2 * bar_width - 2) / 2;
            let (h_raised, h_spent) = (scale(h.raised_cents), scale(h.spent_cents));
            let label = month_label(h.month);
            if !desc.is_empty() {
                desc.push_str("; ");
            }
            desc.push_str(&format!(
                "{label}: raised {}, spent {}",
                money(h.raised_cents).text,
                money(h.spent_cents).text
            ));
            BarView {
                month: h.month.to_string(),
                short: MONTH_NAMES[(h.month.number() - 1) as usize][..3].to_string(),
                year: (i == 0 || h.month.number() == 1).then_some(h.month.year()),
                label,
                raised: money(h.raised_cents),
                spent: money(h.spent_cents),
                difference: money(h.raised_cents - h.spent_cents),
                x_raised,
                x_spent: x_raised + bar_width + 2,
                x_label: gx + group / 2,
                y_raised: baseline - h_raised,
                y_spent: baseline - h_spent,
                h_raised,
                h_spent,
            }
        })
        .collect();
    ChartView {
        width,
        height,
        left,
        right,
        top,
        baseline,
        bar_width,
        max_label: money(max).text,
        desc,
        bars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Month;

    #[test]
    fn chart_bars_are_scaled_to_the_largest_figure() {
        let m = |s| Month::parse(s).unwrap();
        let c = chart(&[
            HistoryMonth {
                month: m("2026-10"),
                raised_cents: 10_000,
                spent_cents: 5_000,
            },
            HistoryMonth {
                month: m("2026-11"),
                raised_cents: -300,
                spent_cents: 2_500,
            },
        ]);
        let full = c.baseline - c.top;
        assert_eq!(c.bars[0].h_raised, full);
        assert_eq!(c.bars[0].h_spent, full / 2);
        assert_eq!(c.bars[0].y_raised, c.top);
        assert_eq!(c.bars[1].h_raised, 0, "a negative month draws no bar");
        assert_eq!(c.bars[1].h_spent, full / 4);
        assert_eq!(c.bars[1].raised.text, "-3.00");
        assert_eq!(c.max_label, "100.00");
        assert!(c.bars[1].x_raised > c.bars[0].x_spent);
        assert_eq!(c.bars[0].year, Some(2026));
        assert_eq!(c.bars[1].year, None);
    }
}
