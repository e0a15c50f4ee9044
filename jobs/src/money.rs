//! Exact amounts. Money is an `i64` number of cents of the ledger currency; prices are exact
//! decimals that may carry fractions of a cent (an hourly rate of "0.0125"), kept as a
//! [`Price`] and only rounded where cost-model.md says so.
use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;

/// Most decimals a price may carry (one millionth of the currency unit).
pub const PRICE_MAX_SCALE: u32 = 6;

fn parse_decimal(s: &str) -> Option<Decimal> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let valid = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if !valid {
        return None;
    }
    Decimal::from_str(t).ok()
}

/// Parses a decimal amount of the ledger currency ("120", "120.5", "120.50") into cents.
/// Refuses anything that is not a plain decimal number or that has fractions of a cent.
pub fn parse_cents(s: &str) -> Result<i64, String> {
    let d = parse_decimal(s).ok_or_else(|| format!("{s:?} is not a decimal amount"))?;
    if d.normalize().scale() > 2 {
        return Err(format!("{s:?} has fractions of a cent"));
    }
    let cents = d * Decimal::ONE_HUNDRED;
    i64::try_from(cents).map_err(|_| format!("{s:?} is too large"))
}

/// Formats cents as a decimal amount with two decimals ("-12.05").
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A non-negative price in the ledger currency, exact to [`PRICE_MAX_SCALE`] decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price(Decimal);

impl Price {
    pub fn parse(s: &str) -> Result<Self, String> {
        let d = parse_decimal(s).ok_or_else(|| format!("{s:?} is not a decimal amount"))?;
        if d.is_sign_negative() && !d.is_zero() {
            return Err(format!("{s:?} is negative"));
        }
        if d.normalize().scale() > PRICE_MAX_SCALE {
            return Err(format!("{s:?} has more than {PRICE_MAX_SCALE} decimals"));
        }
        if d > Decimal::from(1_000_000_000i64) {
            return Err(format!("{s:?} is too large"));
        }
        Ok(Price(d.normalize()))
    }

    /// The price as an exact fraction of cents: `(numerator, denominator)`, the denominator a
    /// power of ten.
    pub fn cents_fraction(&self) -> (i128, i128) {
        let scale = self.0.scale();
        let mantissa = self.0.mantissa();
        (mantissa * 100, 10i128.pow(scale))
    }

    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// The price as shown: at least two decimals (`1.90`, `120.00`, `0.015`).
    pub fn shown(&self) -> String {
        let mut d = self.0;
        if d.scale() < 2 {
            d.rescale(2);
        }
        d.to_string()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A fraction in [0, 1] such as a pool's `warn_at`, exact.
pub fn parse_fraction(s: &str) -> Result<Decimal, String> {
    let d = parse_decimal(s).ok_or_else(|| format!("{s:?} is not a decimal number"))?;
    if d < Decimal::ZERO || d > Decimal::ONE {
        return Err(format!("{s} is not between 0 and 1"));
    }
    Ok(d.normalize())
}

/// A decimal string with `,` between thousands ("1,234.56").
pub fn group_thousands(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let mut out = String::with_capacity(s.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Seconds as hours with one decimal, rounded half up ("12.5").
pub fn hours(seconds: i64) -> String {
    let tenths = (seconds.max(0) * 10 + 1800) / 3600;
    format!(
        "{}.{}",
        group_thousands(&(tenths / 10).to_string()),
        tenths % 10
    )
}

// Exact fractions of cents in i128, for the attribution's single rounding. Every operation is
// checked: a result outside i128 (or a sum of cents outside i64) is an [`Overflow`], returned.

/// Exact arithmetic left its range: the configured prices, slots and busy seconds (or the sums
/// of cents) are far beyond anything this ledger can represent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// `a op b` does not fit in 128 bits.
    #[error("exact arithmetic: {a} {op} {b} overflows i128")]
    Exact { op: char, a: i128, b: i128 },
    /// A sum of cents does not fit in 64 bits.
    #[error("a money sum overflows: {a} + {b} cents")]
    Cents { a: i64, b: i64 },
    /// An exact amount of cents does not fit in 64 bits.
    #[error("{0} cents do not fit in i64")]
    Narrow(i128),
    /// A fraction with a zero denominator.
    #[error("exact arithmetic: {0} / 0")]
    ZeroDenominator(i128),
}

pub fn mul(a: i128, b: i128) -> Result<i128, Overflow> {
    a.checked_mul(b).ok_or(Overflow::Exact { op: '*', a, b })
}

pub fn add(a: i128, b: i128) -> Result<i128, Overflow> {
    a.checked_add(b).ok_or(Overflow::Exact { op: '+', a, b })
}

/// `a + b` in cents, checked: sums of money never wrap.
pub fn add_cents(a: i64, b: i64) -> Result<i64, Overflow> {
    a.checked_add(b).ok_or(Overflow::Cents { a, b })
}

/// An exact amount of cents as `i64`.
pub fn narrow(cents: i128) -> Result<i64, Overflow> {
    i64::try_from(cents).map_err(|_| Overflow::Narrow(cents))
}

pub fn gcd(a: i128, b: i128) -> Result<i128, Overflow> {
    let (mut x, mut y) = (a.unsigned_abs(), b.unsigned_abs());
    while y != 0 {
        (x, y) = (y, x % y);
    }
    i128::try_from(x).map_err(|_| Overflow::Exact { op: 'g', a, b })
}

/// `n / d` in lowest terms with a positive denominator (`0/1` for zero).
pub fn reduce(n: i128, d: i128) -> Result<(i128, i128), Overflow> {
    if d == 0 {
        return Err(Overflow::ZeroDenominator(n));
    }
    if n == 0 {
        return Ok((0, 1));
    }
    let g = gcd(n, d)?;
    let (n, d) = (n / g, d / g);
    Ok(if d < 0 {
        (
            n.checked_neg().ok_or(Overflow::Exact {
                op: '-',
                a: 0,
                b: n,
            })?,
            -d,
        )
    } else {
        (n, d)
    })
}

pub fn add_fractions(a: (i128, i128), b: (i128, i128)) -> Result<(i128, i128), Overflow> {
    let g = gcd(a.1, b.1)?;
    if g == 0 {
        return Err(Overflow::ZeroDenominator(a.0));
    }
    let n = add(mul(a.0, b.1 / g)?, mul(b.0, a.1 / g)?)?;
    reduce(n, mul(a.1, b.1 / g)?)
}

/// `num / den` rounded half away from zero to an integer (`den` > 0; a `den` of 0 or less is
/// taken as its magnitude, at least 1). Computed from the quotient and remainder, so it cannot
/// overflow (a result beyond i128 saturates).
pub fn round_half_away_from_zero(num: i128, den: i128) -> i128 {
    let den = den.unsigned_abs().max(1);
    let abs = num.unsigned_abs();
    let (q, r) = (abs / den, abs % den);
    let q = if r >= den - r { q + 1 } else { q };
    let q = i128::try_from(q).unwrap_or(i128::MAX);
    if num < 0 {
        -q
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_parse_plain_decimals() {
        assert_eq!(parse_cents("120"), Ok(12000));
        assert_eq!(parse_cents("120.5"), Ok(12050));
        assert_eq!(parse_cents("0.07"), Ok(7));
        assert_eq!(parse_cents("-3.10"), Ok(-310));
    }

    #[test]
    fn cents_refuse_commas_fractions_and_words() {
        assert_eq!(
            parse_cents("12,50"),
            Err("\"12,50\" is not a decimal amount".into())
        );
        assert!(parse_cents("1.005")
            .unwrap_err()
            .contains("fractions of a cent"));
        assert!(parse_cents("ten").is_err());
        assert!(parse_cents("1e3").is_err());
        assert!(parse_cents(".5").is_err());
        assert!(parse_cents("").is_err());
    }

    #[test]
    fn prices_keep_sub_cent_precision_exactly() {
        let p = Price::parse("1.905").unwrap();
        assert_eq!(p.cents_fraction(), (1905 * 100, 1000));
        assert_eq!(Price::parse("120.00").unwrap().cents_fraction(), (12000, 1));
        assert!(Price::parse("-1").is_err());
        assert!(Price::parse("0.0000001").is_err());
    }

    #[test]
    fn format_cents_round_trips() {
        for c in [0, 5, -5, 1234, -120005, 99] {
            assert_eq!(parse_cents(&format_cents(c)), Ok(c));
        }
        assert_eq!(format_cents(-5), "-0.05");
    }

    #[test]
    fn exact_arithmetic_returns_overflow_instead_of_panicking() {
        assert_eq!(
            mul(i128::MAX, 2),
            Err(Overflow::Exact {
                op: '*',
                a: i128::MAX,
                b: 2
            })
        );
        assert!(add(i128::MAX, 1).is_err());
        assert_eq!(
            add_cents(i64::MAX, 1),
            Err(Overflow::Cents { a: i64::MAX, b: 1 })
        );
        assert_eq!(
            narrow(i128::from(i64::MAX) + 1).unwrap_err().to_string(),
            "9223372036854775808 cents do not fit in i64"
        );
        assert!(reduce(1, 0).is_err());
        assert_eq!(reduce(6, -4), Ok((-3, 2)));
        assert_eq!(add_fractions((1, 2), (1, 3)), Ok((5, 6)));
    }

    #[test]
    fn rounding_half_away_from_zero() {
        for (n, d, r) in [
            (5, 2, 3),
            (-5, 2, -3),
            (4, 3, 1),
            (5, 3, 2),
            (-4, 3, -1),
            (0, 7, 0),
            (7, 7, 1),
        ] {
            assert_eq!(round_half_away_from_zero(n, d), r, "{n}/{d}");
        }
        assert_eq!(round_half_away_from_zero(i128::MAX, 1), i128::MAX);
    }
}
