//! Durations as written in the fleet repo: ISO 8601 (`PT10M`, `P1DT2H`) or short (`10m`, `1h30m`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

pub const DURATION_EXPECTED: &str = "a duration such as 30s, 10m, 1h30m, PT10M or PT24H";

/// A duration from the fleet repo; wraps `std::time::Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    pub fn from_secs(secs: u64) -> Self {
        Span(Duration::from_secs(secs))
    }
    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn parse(text: &str) -> Option<Span> {
        let text = text.trim();
        if let Some(iso) = text.strip_prefix('P') { parse_iso(iso) } else { parse_short(text) }.map(Span)
    }
}

fn parse_short(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit())?;
        if split == 0 {
            return None;
        }
        let number: u64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            "d" => Duration::from_secs(number.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn parse_iso(text: &str) -> Option<Duration> {
    let (date, time) = match text.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (text, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut total = Duration::ZERO;
    for (value, unit) in iso_parts(date)? {
        let secs = match unit {
            'W' => 604_800.0,
            'D' => 86_400.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(value * secs).ok()?)?;
    }
    if let Some(time) = time {
        for (value, unit) in iso_parts(time)? {
            let secs = match unit {
                'H' => 3600.0,
                'M' => 60.0,
                'S' => 1.0,
                _ => return None,
            };
            total = total.checked_add(Duration::try_from_secs_f64(value * secs).ok()?)?;
        }
    }
    Some(total)
}

/// `1DT` style number+designator pairs; a fraction is allowed on any part.
fn iso_parts(text: &str) -> Option<Vec<(f64, char)>> {
    let mut parts = Vec::new();
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
        } else {
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return None;
            }
            parts.push((number.parse().ok()?, c));
            number.clear();
        }
    }
    number.is_empty().then_some(parts)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_millis() != 0 || d.as_secs() == 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let mut secs = d.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("found {text:?}, expected {DURATION_EXPECTED}")))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_table() {
        let cases = [
            ("PT10M", Some(600_000)),
            ("PT24H", Some(86_400_000)),
            ("PT1H30M", Some(5_400_000)),
            ("PT0.5S", Some(500)),
            ("P1D", Some(86_400_000)),
            ("P1DT2H", Some(93_600_000)),
            ("10m", Some(600_000)),
            ("30s", Some(30_000)),
            ("1h30m", Some(5_400_000)),
            ("500ms", Some(500)),
            ("2d", Some(172_800_000)),
            ("10 minutes", None),
            ("10", None),
            ("m10", None),
            ("P", None),
            ("PT", None),
            ("PT5X", None),
            ("", None),
            ("-5s", None),
        ];
        for (text, millis) in cases {
            assert_eq!(Span::parse(text).map(|s| s.0.as_millis() as u64), millis, "{text}");
        }
    }

    #[test]
    fn display_is_short_form() {
        assert_eq!(Span::parse("PT1H30M").unwrap().to_string(), "1h30m");
        assert_eq!(Span::parse("500ms").unwrap().to_string(), "500ms");
    }
}
