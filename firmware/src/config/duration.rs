//! Time settings in Postfix's syntax: a number with an optional unit `s`, `m`, `h`, `d` or `w`
//! (`300s`, `5d`, `1h`). A bare number takes the setting's own default unit, as in Postfix
//! (`maximal_queue_lifetime = 5` means five days, `queue_run_delay = 300` five minutes).

use std::fmt;
use std::time::Duration;

/// The unit of a time value, and what a bare number means for a given setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl Unit {
    fn seconds(self) -> u64 {
        match self {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
            Unit::Weeks => 604_800,
        }
    }

    fn suffix(self) -> char {
        match self {
            Unit::Seconds => 's',
            Unit::Minutes => 'm',
            Unit::Hours => 'h',
            Unit::Days => 'd',
            Unit::Weeks => 'w',
        }
    }

    fn from_suffix(c: char) -> Option<Unit> {
        Some(match c.to_ascii_lowercase() {
            's' => Unit::Seconds,
            'm' => Unit::Minutes,
            'h' => Unit::Hours,
            'd' => Unit::Days,
            'w' => Unit::Weeks,
            _ => return None,
        })
    }
}

/// Why a time value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDuration(pub String);

impl fmt::Display for BadDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a time: use a number with s, m, h, d or w (300s, 5d)",
            self.0
        )
    }
}

/// The longest time any setting accepts: ten years, so sums of times never overflow.
const MAX_SECONDS: u64 = 10 * 366 * 86_400;

/// Parses `300s`, `5d`, `1h`, or a bare number in `default_unit`.
pub fn parse(s: &str, default_unit: Unit) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(s.to_string());
    let t = s.trim();
    let (digits, unit) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            (&t[..t.len() - 1], Unit::from_suffix(c).ok_or_else(bad)?)
        }
        Some(_) => (t, default_unit),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(unit.seconds()).ok_or_else(bad)?;
    if secs > MAX_SECONDS {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// Shows a time in the largest unit that divides it exactly (`5d`, `1h`, `300s`).
pub fn show(d: Duration, default_unit: Unit) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("0{}", default_unit.suffix());
    }
    for unit in [Unit::Days, Unit::Hours] {
        if secs.is_multiple_of(unit.seconds()) {
            return format!("{}{}", secs / unit.seconds(), unit.suffix());
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn postfix_units() {
        let s = |v: &str, u| parse(v, u).map(|d| d.as_secs());
        assert_eq!(s("300s", Unit::Days), Ok(300));
        assert_eq!(s("5d", Unit::Seconds), Ok(432_000));
        assert_eq!(s("1h", Unit::Seconds), Ok(3600));
        assert_eq!(s("2w", Unit::Seconds), Ok(1_209_600));
        assert_eq!(s("10m", Unit::Seconds), Ok(600));
        assert_eq!(s("5", Unit::Days), Ok(432_000));
        assert_eq!(s("300", Unit::Seconds), Ok(300));
        assert_eq!(s("0", Unit::Hours), Ok(0));
        for bad in [
            "",
            "s",
            "5x",
            "-5s",
            "5.5d",
            "1 d",
            "99999999999999999999s",
            "100000d",
        ] {
            assert!(parse(bad, Unit::Seconds).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn shown_as_an_admin_wrote_them() {
        assert_eq!(show(Duration::from_secs(432_000), Unit::Days), "5d");
        assert_eq!(show(Duration::from_secs(300), Unit::Seconds), "300s");
        assert_eq!(show(Duration::from_secs(4000), Unit::Seconds), "4000s");
        assert_eq!(show(Duration::from_secs(3600), Unit::Seconds), "1h");
        assert_eq!(show(Duration::ZERO, Unit::Hours), "0h");
    }

    proptest! {
        #[test]
        fn show_then_parse_round_trips(secs in 0u64..MAX_SECONDS) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse(&show(d, Unit::Seconds), Unit::Days), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = parse(&s, Unit::Seconds);
        }
    }
}
