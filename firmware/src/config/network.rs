//! `zimbraMtaMyNetworks` (Postfix `mynetworks`): the client networks trusted to relay, written as
//! Postfix writes them: `127.0.0.0/8 [::1]/128 10.0.0.5 192.168.0.0/16`, separated by spaces or
//! commas. IPv6 networks may be bracketed (`[2001:db8::]/32`) or not.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address and a prefix length, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNetwork(pub String);

impl fmt::Display for BadNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a network: use address/prefix, e.g. 10.0.0.0/8 or [2001:db8::]/32",
            self.0
        )
    }
}

impl std::error::Error for BadNetwork {}

impl Cidr {
    /// The network `addr/prefix`; host bits of `addr` must be zero (Postfix refuses them too).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max || mask(addr, prefix) != addr {
            return None;
        }
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 client (`::ffff:10.0.0.1`) counts
    /// as the IPv4 address it carries, as dual-stack listeners report them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = BadNetwork;

    fn from_str(s: &str) -> Result<Cidr, BadNetwork> {
        let bad = || BadNetwork(s.to_string());
        let (host, prefix) = match s.rsplit_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
            None => host,
        };
        let addr: IpAddr = host.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}/{}", self.prefix),
            IpAddr::V6(a) => write!(f, "[{a}]/{}", self.prefix),
        }
    }
}

/// A list of networks, as `zimbraMtaMyNetworks` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkList(Vec<Cidr>);

impl NetworkList {
    pub fn new(nets: Vec<Cidr>) -> NetworkList {
        NetworkList(nets)
    }

    /// Zimbra's default: `127.0.0.0/8 [::1]/128`.
    pub fn loopback() -> NetworkList {
        NetworkList(vec![
            Cidr {
                addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }

    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl FromStr for NetworkList {
    type Err = BadNetwork;

    fn from_str(s: &str) -> Result<NetworkList, BadNetwork> {
        s.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(NetworkList)
    }
}

impl fmt::Display for NetworkList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn zimbra_default_mynetworks() {
        let n: NetworkList = "127.0.0.0/8 [::1]/128".parse().unwrap();
        assert!(n.contains(ip("127.0.0.1")));
        assert!(n.contains(ip("127.255.0.9")));
        assert!(n.contains(ip("::1")));
        assert!(n.contains(ip("::ffff:127.0.0.1")));
        assert!(!n.contains(ip("128.0.0.1")));
        assert!(!n.contains(ip("::2")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert_eq!(n.to_string(), "127.0.0.0/8 [::1]/128");
    }

    #[test]
    fn forms_postfix_accepts() {
        let n: NetworkList = "10.0.0.5, 192.168.0.0/16 2001:db8::/32 0.0.0.0/0"
            .parse()
            .unwrap();
        assert_eq!(n.networks().len(), 4);
        assert!(n.contains(ip("10.0.0.5")));
        assert!(n.contains(ip("2001:db8:1::1")));
        let only: NetworkList = "10.0.0.5".parse().unwrap();
        assert!(!only.contains(ip("10.0.0.6")));
        let all: NetworkList = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for s in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "[::1]/129",
            "foo",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "[10.0.0.0/8",
            "300.0.0.0/8",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s} accepted");
        }
        assert!("127.0.0.0/8 nonsense".parse::<NetworkList>().is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(a in any::<u32>(), p in 0u8..=32, b in any::<u128>(), q in 0u8..=128) {
            let v4 = Cidr::new(mask(IpAddr::V4(a.into()), p), p).unwrap();
            let v6 = Cidr::new(mask(IpAddr::V6(b.into()), q), q).unwrap();
            prop_assert_eq!(v4.to_string().parse::<Cidr>(), Ok(v4));
            prop_assert_eq!(v6.to_string().parse::<Cidr>(), Ok(v6));
            prop_assert!(v4.contains(IpAddr::V4(a.into())));
            prop_assert!(v6.contains(IpAddr::V6(b.into())));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<NetworkList>();
        }
    }
}
