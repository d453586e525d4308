//! CPU and memory quantities, parsed into exact integers (no floating point drift).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A CPU amount in millicores: `500m` → 500, `1.5` → 1500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpu {
    millis: u64,
}

/// A memory amount in bytes: `512Mi` → 536870912, `500M` → 500000000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory {
    bytes: u64,
}

pub const CPU_EXPECTED: &str = "a CPU quantity such as 500m, 1, 1.5 or 2000m";
pub const MEMORY_EXPECTED: &str = "a memory quantity such as 512Mi, 1Gi, 500M or 2G";

impl Cpu {
    pub fn from_millis(millis: u64) -> Self {
        Cpu { millis }
    }
    pub fn millis(self) -> u64 {
        self.millis
    }
    /// Docker's `NanoCpus`.
    pub fn nano_cpus(self) -> i64 {
        i64::try_from(self.millis.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
    }

    pub fn parse(text: &str) -> Option<Cpu> {
        let text = text.trim();
        if let Some(millis) = text.strip_suffix('m') {
            return digits(millis)?.parse().ok().map(Cpu::from_millis);
        }
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let whole: u64 = digits(whole)?.parse().ok()?;
        if frac.len() > 3 || (!frac.is_empty() && digits(frac).is_none()) {
            return None;
        }
        let frac_millis: u64 = format!("{frac:0<3}").parse().ok()?;
        whole.checked_mul(1000)?.checked_add(frac_millis).map(Cpu::from_millis)
    }
}

impl Memory {
    pub fn from_bytes(bytes: u64) -> Self {
        Memory { bytes }
    }
    pub fn bytes(self) -> u64 {
        self.bytes
    }

    pub fn parse(text: &str) -> Option<Memory> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = digits(number)?.parse().ok()?;
        let factor: u64 = match unit {
            "" => 1,
            "K" | "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => return None,
        };
        number.checked_mul(factor).map(Memory::from_bytes)
    }
}

fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis.is_multiple_of(1000) {
            write!(f, "{}", self.millis / 1000)
        } else {
            write!(f, "{}m", self.millis)
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 8] = [
            (1 << 40, "Ti"),
            (1_000_000_000_000, "T"),
            (1 << 30, "Gi"),
            (1_000_000_000, "G"),
            (1 << 20, "Mi"),
            (1_000_000, "M"),
            (1 << 10, "Ki"),
            (1_000, "K"),
        ];
        for (factor, unit) in UNITS {
            if self.bytes >= factor && self.bytes.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.bytes / factor);
            }
        }
        write!(f, "{}", self.bytes)
    }
}

/// Accepts a string or a plain number (YAML `cpu: 1.5` / JSON `"memory": 1024`).
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(serde_json::Number),
}

impl StringOrNumber {
    fn text(self) -> String {
        match self {
            StringOrNumber::Text(t) => t,
            StringOrNumber::Number(n) => n.to_string(),
        }
    }
}

macro_rules! quantity_serde {
    ($ty:ty, $expected:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = StringOrNumber::deserialize(d)?.text();
                <$ty>::parse(&text)
                    .ok_or_else(|| serde::de::Error::custom(format!("found {text:?}, expected {}", $expected)))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
quantity_serde!(Cpu, CPU_EXPECTED);
quantity_serde!(Memory, MEMORY_EXPECTED);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_table() {
        let cases = [
            ("500m", Some(500)),
            ("1", Some(1000)),
            ("1.5", Some(1500)),
            ("0.25", Some(250)),
            ("2000m", Some(2000)),
            ("0.001", Some(1)),
            ("0.0001", None),
            ("1.5m", None),
            ("abc", None),
            ("", None),
            ("-1", None),
            ("1e3", None),
            ("m", None),
        ];
        for (text, millis) in cases {
            assert_eq!(Cpu::parse(text).map(Cpu::millis), millis, "{text}");
        }
        assert_eq!(Cpu::parse("500m").unwrap().nano_cpus(), 500_000_000);
    }

    #[test]
    fn memory_table() {
        let cases = [
            ("512Mi", Some(512 << 20)),
            ("1Gi", Some(1 << 30)),
            ("500M", Some(500_000_000)),
            ("2G", Some(2_000_000_000)),
            ("1024", Some(1024)),
            ("64Ki", Some(64 << 10)),
            ("512X", None),
            ("1.5Gi", None),
            ("Mi", None),
            ("-5Mi", None),
            ("99999999999999999999Ti", None),
        ];
        for (text, bytes) in cases {
            assert_eq!(Memory::parse(text).map(Memory::bytes), bytes, "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["512Mi", "1Gi", "500M", "2G", "1023"] {
            assert_eq!(Memory::parse(text).unwrap().to_string(), text);
        }
        for text in ["500m", "1", "1500m"] {
            assert_eq!(Cpu::parse(text).unwrap().to_string(), text);
        }
    }
}
