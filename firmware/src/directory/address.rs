//! Mail addresses and domain names as the directory keeps them: lowercase (Zimbra matches both the
//! local part and the domain without regard to case), checked once when they are stored.
//!
//! Lookups lowercase into a buffer on the stack, so the routing hot path never allocates.
//! Sub-addressing (`user+tag@example.com`) is not applied: Zimbra does not by default, and an
//! admin who wants it adds an alias.

use std::fmt;

use crate::mail::Transport;

/// The longest address kept or looked up (RFC 5321 §4.5.3.1.3: a path is at most 256 octets
/// with its angle brackets).
pub const MAX_ADDRESS: usize = 254;
const MAX_LOCAL: usize = 64;

/// Why an address or domain name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAddress {
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.value, self.reason)
    }
}

impl std::error::Error for BadAddress {}

fn bad(value: &str, reason: &'static str) -> BadAddress {
    BadAddress {
        value: value.to_string(),
        reason,
    }
}

/// Lowercases the ASCII letters of `s` into `buf`; `None` when it does not fit.
pub(crate) fn lower<'b>(s: &str, buf: &'b mut [u8; MAX_ADDRESS]) -> Option<&'b str> {
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    // ASCII lowercasing keeps UTF-8 valid, so this never fails; no panic path either way.
    std::str::from_utf8(out).ok()
}

/// `local@domain` split at the last `@`.
pub fn split(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

/// A domain name as stored: a valid DNS name, lowercase, no trailing dot.
pub fn domain(s: &str) -> Result<Box<str>, BadAddress> {
    let name = match Transport::mx(s) {
        Ok(t) => t.host.to_string(),
        Err(_) => return Err(bad(s, "not a valid domain name")),
    };
    // Judged as stored, without the trailing dot: `example.` is `example`, which the snapshot
    // would then refuse at the next boot.
    if !name.contains('.') && name != "localhost" {
        return Err(bad(s, "a mail domain needs a dot"));
    }
    Ok(name.into_boxed_str())
}

/// A mailbox address as stored: `local@domain`, lowercase, with a valid domain.
pub fn address(s: &str) -> Result<Box<str>, BadAddress> {
    let (local, dom) = split(s).ok_or_else(|| bad(s, "an address needs local@domain"))?;
    check_local(s, local)?;
    let dom = domain(dom).map_err(|e| bad(s, e.reason))?;
    let mut out = String::with_capacity(local.len() + 1 + dom.len());
    out.push_str(local);
    out.make_ascii_lowercase();
    out.push('@');
    out.push_str(&dom);
    if out.len() > MAX_ADDRESS {
        return Err(bad(s, "longer than 254 characters"));
    }
    Ok(out.into_boxed_str())
}

fn check_local(whole: &str, local: &str) -> Result<(), BadAddress> {
    if local.is_empty() {
        return Err(bad(whole, "empty local part"));
    }
    if local.len() > MAX_LOCAL {
        return Err(bad(whole, "local part longer than 64 characters"));
    }
    let ok = local.chars().all(|c| {
        !c.is_control() && !c.is_whitespace() && !matches!(c, '@' | '<' | '>' | '"' | ',' | ';')
    });
    if !ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(bad(whole, "not a valid local part"));
    }
    Ok(())
}

/// A catch-all forwarding target (`zimbraMailCatchAllForwardingAddress`): `@domain` (the same
/// local part at that domain) or a whole address.
pub fn forward_target(s: &str) -> Result<Box<str>, BadAddress> {
    match s.strip_prefix('@') {
        Some(d) => Ok(format!("@{}", domain(d)?).into_boxed_str()),
        None => address(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stored_lowercase() {
        assert_eq!(
            &*address("Foo.Bar@Example.COM").unwrap(),
            "foo.bar@example.com"
        );
        assert_eq!(&*domain("Example.com.").unwrap(), "example.com");
        assert_eq!(&*forward_target("@Example.com").unwrap(), "@example.com");
        assert_eq!(
            &*forward_target("Boss@example.com").unwrap(),
            "boss@example.com"
        );
        let mut buf = [0; MAX_ADDRESS];
        assert_eq!(lower("FOO@Example.Com", &mut buf), Some("foo@example.com"));
        assert_eq!(lower(&"a".repeat(300), &mut buf), None);
    }

    #[test]
    fn bad_addresses_are_refused() {
        for s in [
            "",
            "foo",
            "@example.com",
            "foo@",
            "foo@bar",
            "foo bar@example.com",
            "foo@exa mple.com",
            ".foo@example.com",
            "a..b@example.com",
            "foo@[127.0.0.1]",
            "foo@bar.",
        ] {
            assert!(address(s).is_err(), "{s} accepted");
        }
        assert!(address(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(a) = address(&s) {
                prop_assert_eq!(address(&a), Ok(a.clone()));
            }
            if let Ok(d) = domain(&s) {
                prop_assert_eq!(domain(&d), Ok(d.clone()));
            }
            let mut buf = [0; MAX_ADDRESS];
            let _ = lower(&s, &mut buf);
        }
    }
}
