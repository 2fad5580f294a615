//! `posternHostsTable`: the box's own `/etc/hosts`. The appliance has no hosts file, and a
//! secondary with DNS lookups off (`zimbraMtaDnsLookupsEnabled FALSE`) still has to find the
//! address of `mail.example.com`; each value `name=address` answers the address lookup of a next
//! hop by that name before DNS is asked. A name may be given several times for several addresses,
//! tried in the order given.

use std::fmt;
use std::net::IpAddr;

use crate::mail::{Host, Transport};

/// Names and their addresses, in the order the admin gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    /// (lowercase name without a trailing dot, address)
    entries: Vec<(String, IpAddr)>,
}

/// Why a hosts table value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadHostEntry {
    /// Not `name=address`.
    Shape,
    /// The part before `=` is not a host name.
    Name(String),
    /// The part after `=` is not an IPv4 or IPv6 address.
    Address(String),
}

impl fmt::Display for BadHostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadHostEntry::Shape => {
                f.write_str("use name=address, e.g. mail.example.com=192.0.2.25")
            }
            BadHostEntry::Name(n) => write!(f, "{n:?} is not a host name"),
            BadHostEntry::Address(a) => write!(f, "{a:?} is not an IP address"),
        }
    }
}

impl HostsTable {
    /// Adds one `name=address` value.
    pub fn add(&mut self, value: &str) -> Result<(), BadHostEntry> {
        let (name, addr) = value.split_once('=').ok_or(BadHostEntry::Shape)?;
        let (name, addr) = (name.trim(), addr.trim());
        let name = match Transport::mx(name) {
            Ok(Transport {
                host: Host::Name(n),
                ..
            }) => n,
            _ => return Err(BadHostEntry::Name(name.to_string())),
        };
        let literal = addr.trim_start_matches('[').trim_end_matches(']');
        let ip = literal
            .parse()
            .map_err(|_| BadHostEntry::Address(addr.to_string()))?;
        self.entries.push((name, ip));
        Ok(())
    }

    /// The addresses the table gives `name` (any case, trailing dot or not); empty when the
    /// table does not know it.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.entries
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, ip)| *ip)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_their_addresses_in_order() {
        let mut t = HostsTable::default();
        t.add("Mail.Example.com=192.0.2.25").unwrap();
        t.add("mail.example.com = [2001:db8::25]").unwrap();
        t.add("zimbra.example.com=127.0.0.1").unwrap();
        assert_eq!(
            t.lookup("mail.example.com."),
            [
                "192.0.2.25".parse::<IpAddr>().unwrap(),
                "2001:db8::25".parse().unwrap()
            ]
        );
        assert!(t.lookup("other.example.com").is_empty());
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut t = HostsTable::default();
        assert_eq!(t.add("mail.example.com"), Err(BadHostEntry::Shape));
        assert!(matches!(
            t.add("bad host=192.0.2.1"),
            Err(BadHostEntry::Name(_))
        ));
        assert!(matches!(
            t.add("mail.example.com=999.1.1.1"),
            Err(BadHostEntry::Address(_))
        ));
        assert!(t.is_empty());
    }
}
