//! The box's own network identity, kept in its config slot: host name and IPv4 network (DHCP or a
//! static address with its gateway and resolvers). Each type is checked when it is made, so a
//! stored or typed setting that exists can be applied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::box_ipv6::Ipv6Method;
use crate::mail::Transport;

/// At most this many resolvers, as /etc/resolv.conf reads them.
pub const MAX_DNS_SERVERS: usize = 3;

/// Why a network or host name setting was refused; each says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// Not `ADDRESS/PREFIX` with an IPv4 address and a prefix 1–32.
    NotAnAddress(String),
    /// The address is the network's own address or its broadcast address.
    NotAHost(Ipv4Addr, u8),
    /// The gateway is not inside the address's network.
    GatewayOutside {
        gateway: Ipv4Addr,
        network: String,
    },
    /// The gateway is the box's own address.
    GatewayIsSelf(Ipv4Addr),
    /// Not an IPv4 address.
    NotIpv4(String),
    /// Not an IP address (a DNS server).
    NotIpAddress(String),
    /// A link-local IPv6 DNS server: which interface to ask it on cannot be said.
    LinkLocalDns(std::net::Ipv6Addr),
    TooManyDns(usize),
    /// Not a fully qualified host name (two or more labels of letters, digits and hyphens).
    NotFqdn(String),
    /// Not `ADDRESS/PREFIX` with a global IPv6 address and a prefix 1–128 (nor slaac or off).
    NotAnIpv6Address(String),
    /// A link-local address as the static address: eth0 makes its own.
    Ipv6LinkLocal(Ipv6Addr),
    /// The IPv6 gateway is neither link-local nor inside the address's prefix.
    Ipv6GatewayOutside {
        gateway: Ipv6Addr,
        network: String,
    },
    Ipv6GatewayIsSelf(Ipv6Addr),
    /// An IPv6 gateway with SLAAC or IPv6 off.
    Ipv6GatewayWithoutAddress,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::NotAnAddress(s) => write!(
                f,
                "{s:?} is not an address with its prefix: type e.g. 192.0.2.10/24"
            ),
            SettingError::NotAHost(a, p) => write!(
                f,
                "{a} is the network or broadcast address of its /{p} network: choose a host address"
            ),
            SettingError::GatewayOutside { gateway, network } => write!(
                f,
                "gateway {gateway} is outside the network {network}: it must be reachable directly"
            ),
            SettingError::GatewayIsSelf(a) => {
                write!(f, "the gateway cannot be {a}, the box itself")
            }
            SettingError::NotIpv4(s) => write!(f, "{s:?} is not an IPv4 address"),
            SettingError::NotIpAddress(s) => write!(f, "{s:?} is not an IPv4 or IPv6 address"),
            SettingError::LinkLocalDns(a) => write!(
                f,
                "{a} is link-local: give the DNS server's global or unique local address"
            ),
            SettingError::TooManyDns(n) => {
                write!(
                    f,
                    "{n} DNS servers given; at most {MAX_DNS_SERVERS} are used"
                )
            }
            SettingError::NotFqdn(s) => write!(
                f,
                "{s:?} is not a fully qualified host name: type e.g. mx1.example.com"
            ),
            SettingError::NotAnIpv6Address(s) => write!(
                f,
                "{s:?} is not a global IPv6 address with its prefix: type e.g. 2001:db8::10/64, \
                 slaac (router advertisements) or off"
            ),
            SettingError::Ipv6LinkLocal(a) => write!(
                f,
                "{a} is link-local: eth0 makes its own; type a global address, or slaac"
            ),
            SettingError::Ipv6GatewayOutside { gateway, network } => write!(
                f,
                "IPv6 gateway {gateway} is neither link-local (fe80::/10) nor inside {network}"
            ),
            SettingError::Ipv6GatewayIsSelf(a) => {
                write!(f, "the IPv6 gateway cannot be {a}, the box itself")
            }
            SettingError::Ipv6GatewayWithoutAddress => f.write_str(
                "an IPv6 gateway goes with a static IPv6 address only (SLAAC learns the router's)",
            ),
        }
    }
}

impl std::error::Error for SettingError {}

/// A fully qualified host name: the box's name on the network and in its SMTP greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fqdn(String);

impl Fqdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Fqdn {
    type Err = SettingError;

    fn from_str(s: &str) -> Result<Fqdn, SettingError> {
        let bad = || SettingError::NotFqdn(s.to_string());
        // The kernel keeps at most 64 bytes of host name.
        if s.len() > 64 || s.ends_with('.') || !s.contains('.') {
            return Err(bad());
        }
        let host = Transport::mx(s).map_err(|_| bad())?.host.to_string();
        let labels_ok = host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        // The last label of a host name is never all digits (that would be an address).
        let tld_ok = host
            .rsplit('.')
            .next()
            .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
        if !labels_ok || !tld_ok {
            return Err(bad());
        }
        Ok(Fqdn(host.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for Fqdn {
    type Error = SettingError;
    fn try_from(s: String) -> Result<Fqdn, SettingError> {
        s.parse()
    }
}

impl From<Fqdn> for String {
    fn from(f: Fqdn) -> String {
        f.0
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A static IPv4 address with its prefix and, if the box routes beyond its network, a gateway
/// inside that network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StaticRaw", into = "StaticRaw")]
pub struct StaticIpv4 {
    address: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
}

#[derive(Serialize, Deserialize)]
struct StaticRaw {
    address: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
}

impl TryFrom<StaticRaw> for StaticIpv4 {
    type Error = SettingError;
    fn try_from(r: StaticRaw) -> Result<StaticIpv4, SettingError> {
        StaticIpv4::new(r.address, r.prefix_len, r.gateway)
    }
}

impl From<StaticIpv4> for StaticRaw {
    fn from(s: StaticIpv4) -> StaticRaw {
        StaticRaw {
            address: s.address,
            prefix_len: s.prefix_len,
            gateway: s.gateway,
        }
    }
}

impl StaticIpv4 {
    pub fn new(
        address: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<StaticIpv4, SettingError> {
        if !(1..=32).contains(&prefix_len) || address.is_unspecified() || address.is_broadcast() {
            return Err(SettingError::NotAnAddress(format!(
                "{address}/{prefix_len}"
            )));
        }
        let s = StaticIpv4 {
            address,
            prefix_len,
            gateway: None,
        };
        // /31 and /32 have no network or broadcast address to avoid (RFC 3021).
        if prefix_len <= 30 {
            let host_bits = u32::from(address) & !s.mask();
            if host_bits == 0 || host_bits == !s.mask() {
                return Err(SettingError::NotAHost(address, prefix_len));
            }
        }
        if let Some(gw) = gateway {
            if gw == address {
                return Err(SettingError::GatewayIsSelf(gw));
            }
            if !s.contains(gw) {
                return Err(SettingError::GatewayOutside {
                    gateway: gw,
                    network: s.network(),
                });
            }
        }
        Ok(StaticIpv4 { gateway, ..s })
    }

    /// Parses `ADDRESS/PREFIX`, without a gateway yet.
    pub fn parse_address(s: &str) -> Result<StaticIpv4, SettingError> {
        let bad = || SettingError::NotAnAddress(s.to_string());
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        StaticIpv4::new(address, len, None)
    }

    /// This address with `gateway` (checked against the network).
    pub fn with_gateway(self, gateway: Option<Ipv4Addr>) -> Result<StaticIpv4, SettingError> {
        StaticIpv4::new(self.address, self.prefix_len, gateway)
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// Whether `ip` is inside this address's network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.address) & self.mask()
    }

    /// The network, as `192.0.2.0/24`.
    pub fn network(&self) -> String {
        let net = Ipv4Addr::from(u32::from(self.address) & self.mask());
        format!("{net}/{}", self.prefix_len)
    }

    /// The first host of the network: the usual gateway, offered as the default.
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        let first = Ipv4Addr::from((u32::from(self.address) & self.mask()) + 1);
        (self.prefix_len <= 30 && first != self.address).then_some(first)
    }
}

impl fmt::Display for StaticIpv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)?;
        match self.gateway {
            Some(g) => write!(f, " gateway {g}"),
            None => write!(f, " no gateway"),
        }
    }
}

/// How eth0 gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ipv4Method {
    Dhcp,
    Static(StaticIpv4),
}

/// The box's network: its IPv4 method, the resolvers delivery asks (IPv4 or IPv6; empty: the
/// DHCP lease's and the routers' advertised ones) and its IPv6 method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    pub ipv4: Ipv4Method,
    pub dns: Vec<IpAddr>,
    pub ipv6: Ipv6Method,
}

/// The network as stored when resolvers were IPv4 only (config version 5).
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkSettingsV5 {
    ipv4: Ipv4Method,
    dns: Vec<Ipv4Addr>,
    ipv6: Ipv6Method,
}

impl From<NetworkSettingsV5> for NetworkSettings {
    fn from(n: NetworkSettingsV5) -> NetworkSettings {
        NetworkSettings {
            ipv4: n.ipv4,
            dns: n.dns.into_iter().map(IpAddr::from).collect(),
            ipv6: n.ipv6,
        }
    }
}

/// The network as stored before IPv6 was a setting (config versions 2 to 4).
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkSettingsV1 {
    ipv4: Ipv4Method,
    dns: Vec<Ipv4Addr>,
}

impl From<NetworkSettingsV1> for NetworkSettings {
    fn from(n: NetworkSettingsV1) -> NetworkSettings {
        NetworkSettings {
            ipv4: n.ipv4,
            dns: n.dns.into_iter().map(IpAddr::from).collect(),
            ipv6: Ipv6Method::default(),
        }
    }
}

impl NetworkSettings {
    pub fn new(ipv4: Ipv4Method, dns: Vec<IpAddr>) -> Result<NetworkSettings, SettingError> {
        if dns.len() > MAX_DNS_SERVERS {
            return Err(SettingError::TooManyDns(dns.len()));
        }
        Ok(NetworkSettings {
            ipv4,
            dns,
            ipv6: Ipv6Method::default(),
        })
    }

    /// These settings with `ipv6` as eth0's IPv6.
    pub fn with_ipv6(self, ipv6: Ipv6Method) -> NetworkSettings {
        NetworkSettings { ipv6, ..self }
    }
}

/// Parses a list of resolvers separated by spaces or commas.
pub fn parse_dns_list(s: &str) -> Result<Vec<IpAddr>, SettingError> {
    let list: Vec<IpAddr> = s
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let ip: IpAddr = w
                .parse()
                .map_err(|_| SettingError::NotIpAddress(w.to_string()))?;
            check_dns_server(ip)
        })
        .collect::<Result<_, _>>()?;
    if list.len() > MAX_DNS_SERVERS {
        return Err(SettingError::TooManyDns(list.len()));
    }
    Ok(list)
}

/// A resolver the box can ask: not a link-local IPv6 address (resolv.conf and the resolver
/// carry no interface for it).
pub fn check_dns_server(ip: IpAddr) -> Result<IpAddr, SettingError> {
    match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Err(SettingError::LinkLocalDns(v6)),
        ip => Ok(ip),
    }
}

impl fmt::Display for NetworkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ipv4 {
            Ipv4Method::Dhcp => write!(f, "DHCP")?,
            Ipv4Method::Static(s) => write!(f, "static {s}")?,
        }
        if self.dns.is_empty() {
            write!(f, ", DNS from DHCP")?;
        } else {
            let dns: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            write!(f, ", DNS {}", dns.join(" "))?;
        }
        write!(f, "; IPv6 {}", self.ipv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn host_names_must_be_fully_qualified() {
        assert_eq!(
            "MX1.Example.com".parse::<Fqdn>().unwrap().as_str(),
            "mx1.example.com"
        );
        for bad in [
            "postern",
            "mx1.example.com.",
            "-a.example.com",
            "a_b.example.com",
            "10.0.0.1",
            "",
            "a..b",
            &format!("{}.example.com", "a".repeat(64)),
        ] {
            assert!(bad.parse::<Fqdn>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn static_addresses_are_hosts_with_a_gateway_inside_their_network() {
        let s = StaticIpv4::parse_address("192.0.2.10/24").unwrap();
        assert_eq!(s.network(), "192.0.2.0/24");
        assert_eq!(s.first_host(), Some(ip("192.0.2.1")));
        assert_eq!(
            s.with_gateway(Some(ip("192.0.2.1"))).unwrap().gateway(),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            s.with_gateway(Some(ip("198.51.100.1"))),
            Err(SettingError::GatewayOutside {
                gateway: ip("198.51.100.1"),
                network: "192.0.2.0/24".into()
            })
        );
        assert_eq!(
            s.with_gateway(Some(ip("192.0.2.10"))),
            Err(SettingError::GatewayIsSelf(ip("192.0.2.10")))
        );
        for bad in [
            "192.0.2.10",
            "192.0.2.10/33",
            "192.0.2.10/0",
            "x/24",
            "0.0.0.0/8",
        ] {
            assert!(StaticIpv4::parse_address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            StaticIpv4::parse_address("192.0.2.0/24"),
            Err(SettingError::NotAHost(ip("192.0.2.0"), 24))
        );
        assert!(StaticIpv4::parse_address("192.0.2.255/24").is_err());
        assert!(StaticIpv4::parse_address("192.0.2.1/32").is_ok());
    }

    #[test]
    fn dns_lists_are_checked() {
        assert_eq!(
            parse_dns_list("192.0.2.53, 192.0.2.54").unwrap(),
            [ip("192.0.2.53"), ip("192.0.2.54")]
        );
        assert!(parse_dns_list("").unwrap().is_empty());
        assert!(parse_dns_list("dns.example").is_err());
        assert_eq!(
            parse_dns_list("192.0.2.53 2001:db8::53").unwrap(),
            [
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        assert!(parse_dns_list("fe80::1").is_err());
        assert_eq!(
            parse_dns_list("1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4"),
            Err(SettingError::TooManyDns(4))
        );
    }

    #[test]
    fn a_stored_setting_that_no_longer_validates_is_refused() {
        let good = NetworkSettings::new(
            Ipv4Method::Static(
                StaticIpv4::parse_address("10.0.0.5/8")
                    .unwrap()
                    .with_gateway(Some(ip("10.0.0.1")))
                    .unwrap(),
            ),
            vec![ip("10.0.0.53").into()],
        )
        .unwrap();
        let bytes = postcard::to_allocvec(&good).unwrap();
        assert_eq!(
            postcard::from_bytes::<NetworkSettings>(&bytes).unwrap(),
            good
        );
        let raw = StaticRaw {
            address: ip("10.0.0.5"),
            prefix_len: 24,
            gateway: Some(ip("10.1.0.1")),
        };
        let bytes = postcard::to_allocvec(&raw).unwrap();
        assert!(postcard::from_bytes::<StaticIpv4>(&bytes).is_err());
    }
}
