//! eth0's IPv6, kept with the rest of its network: the kernel's own autoconfiguration from router
//! advertisements (SLAAC), a static address with its prefix and gateway, or none. Checked when
//! made, like the IPv4 settings beside it.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::box_settings::SettingError;

/// How eth0 gets its IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Ipv6Method {
    /// Router advertisements (the kernel's `accept_ra` and `autoconf`): what the kernel does on
    /// its own, so a box set up before IPv6 was a setting keeps it.
    #[default]
    Slaac,
    Static(StaticIpv6),
    /// No IPv6 on eth0 at all (`disable_ipv6`).
    Off,
}

impl Ipv6Method {
    /// `slaac`, `off`, or `ADDRESS/PREFIX` with its gateway (only a static address has one).
    pub fn parse(method: &str, gateway: Option<Ipv6Addr>) -> Result<Ipv6Method, SettingError> {
        let m = match method.trim().to_ascii_lowercase().as_str() {
            "slaac" | "auto" => Ipv6Method::Slaac,
            "off" | "none" => Ipv6Method::Off,
            _ => {
                return Ok(Ipv6Method::Static(
                    StaticIpv6::parse_address(method)?.with_gateway(gateway)?,
                ));
            }
        };
        match gateway {
            Some(_) => Err(SettingError::Ipv6GatewayWithoutAddress),
            None => Ok(m),
        }
    }

    /// The word `setup network --ipv6` takes for this method.
    pub fn argument(&self) -> String {
        match self {
            Ipv6Method::Slaac => "slaac".into(),
            Ipv6Method::Off => "off".into(),
            Ipv6Method::Static(s) => format!("{}/{}", s.address, s.prefix_len),
        }
    }
}

impl fmt::Display for Ipv6Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ipv6Method::Slaac => f.write_str("SLAAC (router advertisements)"),
            Ipv6Method::Off => f.write_str("off"),
            Ipv6Method::Static(s) => write!(f, "static {s}"),
        }
    }
}

/// A static global IPv6 address with its prefix and, if the box routes beyond it, a gateway on
/// the link (link-local, as routers advertise themselves, or inside the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StaticRaw", into = "StaticRaw")]
pub struct StaticIpv6 {
    address: Ipv6Addr,
    prefix_len: u8,
    gateway: Option<Ipv6Addr>,
}

#[derive(Serialize, Deserialize)]
struct StaticRaw {
    address: Ipv6Addr,
    prefix_len: u8,
    gateway: Option<Ipv6Addr>,
}

impl TryFrom<StaticRaw> for StaticIpv6 {
    type Error = SettingError;
    fn try_from(r: StaticRaw) -> Result<StaticIpv6, SettingError> {
        StaticIpv6::new(r.address, r.prefix_len, r.gateway)
    }
}

impl From<StaticIpv6> for StaticRaw {
    fn from(s: StaticIpv6) -> StaticRaw {
        StaticRaw {
            address: s.address,
            prefix_len: s.prefix_len,
            gateway: s.gateway,
        }
    }
}

/// fe80::/10.
pub fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

impl StaticIpv6 {
    pub fn new(
        address: Ipv6Addr,
        prefix_len: u8,
        gateway: Option<Ipv6Addr>,
    ) -> Result<StaticIpv6, SettingError> {
        let shown = format!("{address}/{prefix_len}");
        let mapped = address.to_ipv4_mapped().is_some();
        if !(1..=128).contains(&prefix_len)
            || address.is_unspecified()
            || address.is_loopback()
            || address.is_multicast()
            || mapped
        {
            return Err(SettingError::NotAnIpv6Address(shown));
        }
        if is_link_local(address) {
            return Err(SettingError::Ipv6LinkLocal(address));
        }
        let s = StaticIpv6 {
            address,
            prefix_len,
            gateway: None,
        };
        if let Some(gw) = gateway {
            if gw == address {
                return Err(SettingError::Ipv6GatewayIsSelf(gw));
            }
            if gw.is_unspecified() || gw.is_multicast() || !(is_link_local(gw) || s.contains(gw)) {
                return Err(SettingError::Ipv6GatewayOutside {
                    gateway: gw,
                    network: s.network(),
                });
            }
        }
        Ok(StaticIpv6 { gateway, ..s })
    }

    /// Parses `ADDRESS/PREFIX`, without a gateway yet.
    pub fn parse_address(s: &str) -> Result<StaticIpv6, SettingError> {
        let bad = || SettingError::NotAnIpv6Address(s.trim().to_string());
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let address: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        StaticIpv6::new(address, len, None)
    }

    /// This address with `gateway` (checked against the prefix).
    pub fn with_gateway(self, gateway: Option<Ipv6Addr>) -> Result<StaticIpv6, SettingError> {
        StaticIpv6::new(self.address, self.prefix_len, gateway)
    }

    pub fn address(&self) -> Ipv6Addr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn gateway(&self) -> Option<Ipv6Addr> {
        self.gateway
    }

    fn mask(&self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// Whether `ip` is inside this address's prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.address) & self.mask()
    }

    /// The prefix, as `2001:db8::/64`.
    pub fn network(&self) -> String {
        let net = Ipv6Addr::from(u128::from(self.address) & self.mask());
        format!("{net}/{}", self.prefix_len)
    }
}

impl fmt::Display for StaticIpv6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)?;
        match self.gateway {
            Some(g) => write!(f, " gateway {g}"),
            None => write!(f, " no gateway"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn methods_are_slaac_off_or_a_static_address_with_its_gateway() {
        assert_eq!(Ipv6Method::parse("SLAAC", None), Ok(Ipv6Method::Slaac));
        assert_eq!(Ipv6Method::parse("off", None), Ok(Ipv6Method::Off));
        let m = Ipv6Method::parse("2001:db8::10/64", Some(ip("fe80::1"))).unwrap();
        assert_eq!(m.to_string(), "static 2001:db8::10/64 gateway fe80::1");
        assert_eq!(m.argument(), "2001:db8::10/64");
        assert_eq!(
            Ipv6Method::parse("2001:db8::10/64", Some(ip("2001:db8::1")))
                .unwrap()
                .to_string(),
            "static 2001:db8::10/64 gateway 2001:db8::1"
        );
        assert_eq!(
            Ipv6Method::parse("slaac", Some(ip("fe80::1"))),
            Err(SettingError::Ipv6GatewayWithoutAddress)
        );
    }

    #[test]
    fn inconsistent_settings_are_refused_with_their_reason() {
        assert_eq!(
            Ipv6Method::parse("2001:db8::10/64", Some(ip("2001:db9::1"))),
            Err(SettingError::Ipv6GatewayOutside {
                gateway: ip("2001:db9::1"),
                network: "2001:db8::/64".into()
            })
        );
        assert_eq!(
            Ipv6Method::parse("2001:db8::10/64", Some(ip("2001:db8::10"))),
            Err(SettingError::Ipv6GatewayIsSelf(ip("2001:db8::10")))
        );
        assert_eq!(
            StaticIpv6::parse_address("fe80::10/64"),
            Err(SettingError::Ipv6LinkLocal(ip("fe80::10")))
        );
        for bad in [
            "2001:db8::10",
            "2001:db8::10/129",
            "2001:db8::10/0",
            "::/64",
            "::1/128",
            "ff02::1/64",
            "::ffff:192.0.2.1/96",
            "192.0.2.1/24",
            "dhcp",
        ] {
            assert!(
                matches!(
                    StaticIpv6::parse_address(bad),
                    Err(SettingError::NotAnIpv6Address(_))
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn a_stored_static_address_that_no_longer_validates_is_refused() {
        let good = Ipv6Method::Static(
            StaticIpv6::parse_address("2001:db8::10/64")
                .unwrap()
                .with_gateway(Some(ip("fe80::1")))
                .unwrap(),
        );
        let bytes = postcard::to_allocvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<Ipv6Method>(&bytes).unwrap(), good);
        let raw = StaticRaw {
            address: ip("2001:db8::10"),
            prefix_len: 64,
            gateway: Some(ip("2001:db9::1")),
        };
        let bytes = postcard::to_allocvec(&raw).unwrap();
        assert!(postcard::from_bytes::<StaticIpv6>(&bytes).is_err());
    }
}
