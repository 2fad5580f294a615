//! Enhanced mail system status codes (RFC 3463): `class.subject.detail`, e.g. `5.1.1`.
//!
//! A typed value instead of a string, so a stage cannot hand the next one `"5.1"` or `"x.y.z"`, and
//! nothing parses codes back out of text it wrote itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One enhanced status code. The class is 2 (success), 4 (persistent transient failure) or
/// 5 (permanent failure); subject and detail have one to three digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnhancedStatus {
    class: u8,
    subject: u16,
    detail: u16,
}

/// Text that is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadStatus(pub String);

impl fmt::Display for BadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an enhanced status code (class.subject.detail)",
            self.0
        )
    }
}

impl std::error::Error for BadStatus {}

impl EnhancedStatus {
    /// `class.subject.detail`; `None` when a part is out of RFC 3463's range.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
        if !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(EnhancedStatus {
            class,
            subject,
            detail,
        })
    }

    /// For codes written in the source: an out-of-range part is a programming error caught by
    /// the tests of whoever writes it, so it is clamped rather than checked at run time.
    pub const fn of(class: u8, subject: u16, detail: u16) -> EnhancedStatus {
        EnhancedStatus {
            class: if matches!(class, 2 | 4 | 5) { class } else { 5 },
            subject: if subject > 999 { 999 } else { subject },
            detail: if detail > 999 { 999 } else { detail },
        }
    }

    pub fn class(self) -> u8 {
        self.class
    }

    pub fn subject(self) -> u16 {
        self.subject
    }

    pub fn detail(self) -> u16 {
        self.detail
    }

    /// 2.x.x.
    pub fn is_success(self) -> bool {
        self.class == 2
    }

    /// 4.x.x.
    pub fn is_transient(self) -> bool {
        self.class == 4
    }

    /// 5.x.x.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }

    /// The same subject and detail in another class: a 5.1.1 seen where only a temporary answer
    /// may be given becomes 4.1.1.
    pub fn with_class(self, class: u8) -> EnhancedStatus {
        EnhancedStatus::of(class, self.subject, self.detail)
    }
}

impl From<[u8; 3]> for EnhancedStatus {
    fn from([class, subject, detail]: [u8; 3]) -> EnhancedStatus {
        EnhancedStatus::of(class, u16::from(subject), u16::from(detail))
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl FromStr for EnhancedStatus {
    type Err = BadStatus;

    fn from_str(s: &str) -> Result<EnhancedStatus, BadStatus> {
        let bad = || BadStatus(s.to_string());
        let mut parts = s.split('.');
        let mut next = |max_len: usize| -> Result<u16, BadStatus> {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let class = next(1)?;
        let subject = next(3)?;
        let detail = next(3)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        u8::try_from(class)
            .ok()
            .and_then(|c| EnhancedStatus::new(c, subject, detail))
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_text() {
        for s in ["2.0.0", "4.4.1", "5.1.1", "5.7.26", "4.999.999"] {
            let st: EnhancedStatus = s.parse().unwrap();
            assert_eq!(st.to_string(), s);
        }
        let st: EnhancedStatus = "5.1.1".parse().unwrap();
        assert!(st.is_permanent() && !st.is_transient());
        assert_eq!(st.with_class(4).to_string(), "4.1.1");
    }

    #[test]
    fn malformed_codes_are_refused() {
        for s in [
            "", "5", "5.1", "5.1.1.1", "3.1.1", "5.1000.1", "5..1", "5.1.x", "55.1.1", "+5.1.1",
            "5.1.-1",
        ] {
            assert!(s.parse::<EnhancedStatus>().is_err(), "{s}");
        }
    }
}
