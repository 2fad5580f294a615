//! A DNS blocklist as Postfix names one: `zen.spamhaus.org`, or `zen.spamhaus.org=127.0.0.[2..11]`
//! to count only some answers as a listing (`reject_rbl_client DOMAIN[=PATTERN]`). The same value
//! is one entry of Zimbra's `zimbraMtaRestrictionRBLs` / `RHSBLCs` / `RHSBLSs`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A blocklist domain and, optionally, which answers count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dnsbl {
    /// The list's domain, lower case, e.g. `zen.spamhaus.org`.
    pub domain: String,
    pub pattern: Option<AnswerPattern>,
}

/// Postfix's `d.d.d.d` answer filter: each octet a number, `[a..b]` (a range) or `[a;b;c]` (a set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerPattern {
    octets: [Vec<(u8, u8)>; 4],
    text: String,
}

/// Why a blocklist value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadDnsbl {
    Domain(String),
    Pattern(String),
}

impl fmt::Display for BadDnsbl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadDnsbl::Domain(d) => write!(f, "{d:?} is not a blocklist domain"),
            BadDnsbl::Pattern(p) => write!(
                f,
                "{p:?} is not an answer pattern (e.g. 127.0.0.2 or 127.0.0.[2..11])"
            ),
        }
    }
}

impl AnswerPattern {
    /// Whether a blocklist answer matches.
    pub fn matches(&self, answer: Ipv4Addr) -> bool {
        self.octets
            .iter()
            .zip(answer.octets())
            .all(|(ranges, o)| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&o)))
    }
}

impl Dnsbl {
    /// Whether an A record from the list counts as a listing.
    pub fn lists(&self, answer: Ipv4Addr) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.matches(answer))
    }
}

fn octet(s: &str) -> Option<Vec<(u8, u8)>> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Some((lo, hi)) = inner.split_once("..") {
            let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
            return (lo <= hi).then_some(vec![(lo, hi)]);
        }
        return inner
            .split(';')
            .map(|n| n.parse().ok().map(|n| (n, n)))
            .collect();
    }
    let n: u8 = s.parse().ok()?;
    Some(vec![(n, n)])
}

/// Splits at the dots between octets, not at those of a `[a..b]` range.
fn octet_texts(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_brackets) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '.' if !in_brackets => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

impl FromStr for AnswerPattern {
    type Err = BadDnsbl;

    fn from_str(s: &str) -> Result<AnswerPattern, BadDnsbl> {
        let bad = || BadDnsbl::Pattern(s.to_string());
        let parts = octet_texts(s);
        let [a, b, c, d] = parts.as_slice() else {
            return Err(bad());
        };
        let octets = [octet(a), octet(b), octet(c), octet(d)];
        let [Some(a), Some(b), Some(c), Some(d)] = octets else {
            return Err(bad());
        };
        Ok(AnswerPattern {
            octets: [a, b, c, d],
            text: s.to_string(),
        })
    }
}

impl FromStr for Dnsbl {
    type Err = BadDnsbl;

    fn from_str(s: &str) -> Result<Dnsbl, BadDnsbl> {
        let (domain, pattern) = match s.split_once('=') {
            Some((d, p)) => (d, Some(p.parse()?)),
            None => (s, None),
        };
        if !is_domain(domain) {
            return Err(BadDnsbl::Domain(domain.to_string()));
        }
        Ok(Dnsbl {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            pattern,
        })
    }
}

pub(super) fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.contains('.')
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for Dnsbl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.domain)?;
        if let Some(p) = &self.pattern {
            write!(f, "={}", p.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_select_answers_as_postfix_does() {
        let any: Dnsbl = "Zen.Spamhaus.org".parse().unwrap();
        assert_eq!(any.to_string(), "zen.spamhaus.org");
        assert!(any.lists(ip("127.0.0.2")) && any.lists(ip("127.255.255.254")));
        let some: Dnsbl = "zen.spamhaus.org=127.0.0.[2..11]".parse().unwrap();
        assert_eq!(some.to_string(), "zen.spamhaus.org=127.0.0.[2..11]");
        assert!(some.lists(ip("127.0.0.4")) && !some.lists(ip("127.0.0.12")));
        let set: Dnsbl = "bl.example=127.0.[0;1].2".parse().unwrap();
        assert!(set.lists(ip("127.0.1.2")) && !set.lists(ip("127.0.2.2")));
        for bad in [
            "nodot",
            "bad..list",
            "bl.example=127.0.0",
            "bl.example=127.0.0.[3..2]",
            "bl.example=127.0.0.300",
            "bl.example=",
        ] {
            assert!(bad.parse::<Dnsbl>().is_err(), "{bad} accepted");
        }
    }
}
