//! The texts every presentation shows figures in: amounts with thousands grouped and month
//! names. The view model ([`super::view`]) and the chart ([`super::chart`]) both use them.
use crate::calendar::Month;
use crate::money::{format_cents, group_thousands};
use std::fmt;

pub const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// An amount: exact cents (for `data-value`) and its text ("1,500.00"); displays as its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub cents: i64,
    pub text: String,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// 123456 -> "1,234.56".
pub fn money(cents: i64) -> Money {
    Money {
        cents,
        text: group_thousands(&format_cents(cents)),
    }
}

/// "October 2026".
pub fn month_label(m: Month) -> String {
    format!("{} {}", MONTH_NAMES[(m.number() - 1) as usize], m.year())
}
