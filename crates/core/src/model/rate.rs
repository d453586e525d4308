//! Rates (`maxErrorRate`, `minSuccessRate`, `winnerThreshold`): one rule for the whole format.
//!
//! A rate is a fraction from 0 to 1, as HotSwap-style deployment configs write it (`0.05` is
//! 5 %), or a string with a percent sign (`"5%"`). A bare number above 1 is an error: `5`
//! could mean 5 % or 500 %, and plugsync does not guess.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a rate field must hold, for error messages and the schema's descriptions.
pub const RATE_EXPECTED: &str = "a rate: a fraction from 0 to 1 (0.05 = 5 %) or a percentage string such as \"5%\"";

/// A share from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate(f64);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    #[error("found {0}, expected {expected}", expected = expected_instead_of(*.0))]
    AboveOne(f64),
    #[error("found {0:?}, expected {RATE_EXPECTED}")]
    Invalid(String),
}

/// What to write instead of `found`; for a number above 1, both readings of it.
pub fn expected_instead_of(found: f64) -> String {
    if found > 1.0 && found.is_finite() {
        format!(
            "{RATE_EXPECTED}; {n} as a fraction would be {pct} % — write {frac} or \"{n}%\" if you meant {n} %",
            n = fmt_num(found),
            pct = fmt_num(found * 100.0),
            frac = fmt_num(found / 100.0)
        )
    } else {
        RATE_EXPECTED.to_string()
    }
}

impl Rate {
    pub const ZERO: Rate = Rate(0.0);

    /// A fraction from 0 to 1; anything else (NaN included) is refused.
    pub fn from_fraction(fraction: f64) -> Result<Rate, RateError> {
        if (0.0..=1.0).contains(&fraction) {
            Ok(Rate(fraction))
        } else if fraction > 1.0 && fraction.is_finite() {
            Err(RateError::AboveOne(fraction))
        } else {
            Err(RateError::Invalid(fmt_num(fraction)))
        }
    }

    /// `"5%"`, `"5 %"`, `"0.5%"`: a percentage from 0 to 100.
    pub fn parse_percent(text: &str) -> Result<Rate, RateError> {
        let invalid = || RateError::Invalid(text.to_string());
        let number = text.trim().strip_suffix('%').ok_or_else(invalid)?.trim_end();
        let percent: f64 = number.parse().map_err(|_| invalid())?;
        if (0.0..=100.0).contains(&percent) {
            Ok(Rate(percent / 100.0))
        } else {
            Err(invalid())
        }
    }

    pub fn fraction(self) -> f64 {
        self.0
    }

    /// The same rate in percent (metrics are measured in percent).
    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", fmt_num(self.percent()))
    }
}

/// A number without float noise: 5, 0.5, 0.05 (never 5.000000000000001).
fn fmt_num(value: f64) -> String {
    let rounded = (value * 1e9).round() / 1e9;
    format!("{rounded}")
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(RATE_EXPECTED)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Rate::from_fraction(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                Rate::parse_percent(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_their_authors_meant() {
        let table: [(&str, Option<f64>); 12] = [
            ("0.05", Some(0.05)),
            ("0.95", Some(0.95)),
            ("0", Some(0.0)),
            ("1", Some(1.0)),
            ("\"5%\"", Some(0.05)),
            ("\"99.5 %\"", Some(0.995)),
            ("\"100%\"", Some(1.0)),
            ("5", None),
            ("-0.1", None),
            ("\"5\"", None),
            ("\"150%\"", None),
            ("\"é%\"", None),
        ];
        for (json, want) in table {
            let got = serde_json::from_str::<Rate>(json).ok().map(Rate::fraction);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{json}: {g} != {w}"),
                (g, w) => assert_eq!(g, w, "{json}"),
            }
        }
    }

    #[test]
    fn a_bare_number_above_one_names_both_readings() {
        let message = Rate::from_fraction(5.0).unwrap_err().to_string();
        assert!(message.contains("500 %"), "{message}");
        assert!(message.contains("0.05") && message.contains("\"5%\""), "{message}");
    }

    #[test]
    fn percent_is_the_fraction_times_one_hundred() {
        assert_eq!(Rate::from_fraction(0.05).map(Rate::percent).map(|p| (p * 1e9).round() / 1e9), Ok(5.0));
        assert_eq!(Rate::from_fraction(0.05).map(|r| r.to_string()), Ok("5 %".to_string()));
    }
}
