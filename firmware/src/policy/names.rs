//! Host name and address syntax as Postfix's restrictions judge it (its `valid_hostname` and
//! `valid_hostaddr`): what is a name at all, and what is fully qualified.

use std::net::IpAddr;

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    let inner = match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner.get(5..).unwrap_or(""),
        _ => inner,
    };
    inner.parse::<IpAddr>().is_ok()
}

/// Letters, digits, `-` and `_` in labels of 1 to 63 that do not start or end with `-`, at most
/// 255 in all, and not all digits (that would be an address written without brackets).
pub fn is_valid_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A valid host name with at least two labels.
pub fn is_fqdn(s: &str) -> bool {
    is_valid_hostname(s) && s.trim_end_matches('.').contains('.')
}

/// The domain of `user@domain`, if there is an `@`.
pub fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

/// Postfix's non-FQDN address test: a domain that is an address literal or a fully qualified name.
pub fn is_fqdn_address(address: &str) -> bool {
    domain_of(address).is_some_and(|d| is_address_literal(d) || is_fqdn(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_postfix_judges_them() {
        for ok in [
            "mail.example.com",
            "a_b.example",
            "localhost",
            "x1.example.",
        ] {
            assert!(is_valid_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            "bad..name",
            "-x.example",
            "x-.example",
            "sp ace.example",
            "192.0.2.1",
            "é.example",
        ] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
        assert!(!is_valid_hostname(&"a.".repeat(300)));
        assert!(is_fqdn("mx.example.com") && !is_fqdn("localhost"));
        assert!(is_address_literal("[192.0.2.1]") && is_address_literal("[IPv6:2001:db8::1]"));
        assert!(!is_address_literal("[mx.example]") && !is_address_literal("192.0.2.1"));
        assert!(is_fqdn_address("a@example.com") && is_fqdn_address("a@[192.0.2.1]"));
        assert!(!is_fqdn_address("a@localhost") && !is_fqdn_address("postmaster"));
    }
}
