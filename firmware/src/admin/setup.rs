//! `postern setup`: the box's own settings in its config slot (host name, network, the serial
//! console's password), as the first-boot wizard and the console menu set them. Storing is all
//! this does: the appliance applies a stored network itself (at boot, and from its console when it
//! changes), and a host name from the next start of the services.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Reply;
use super::commands::SetupCommand;
use crate::config::box_ipv6::Ipv6Method;
use crate::config::box_settings::{
    self, Fqdn, Ipv4Method, NetworkSettings, SettingError, StaticIpv4,
};
use crate::config::stored::{BoxConfig, StoredError};
use crate::directory::password;
use crate::spool::{Region, SpoolError, SpoolHandle};

/// Why the box config could not be read or written.
#[derive(Debug)]
pub enum BoxConfigError {
    Flash(SpoolError),
    Stored(StoredError),
}

impl std::fmt::Display for BoxConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoxConfigError::Flash(e) => write!(f, "flash: {e}"),
            BoxConfigError::Stored(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BoxConfigError {}

/// The box config from its slot (an empty slot is a new box).
pub async fn read(spool: &SpoolHandle) -> Result<BoxConfig, BoxConfigError> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => BoxConfig::decode(&bytes).map_err(BoxConfigError::Stored),
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(BoxConfigError::Flash(e)),
    }
}

async fn update(
    spool: &SpoolHandle,
    change: impl FnOnce(&mut BoxConfig),
) -> Result<(), BoxConfigError> {
    let mut config = read(spool).await?;
    change(&mut config);
    spool
        .write_slot(Region::Config, config.encode())
        .await
        .map_err(BoxConfigError::Flash)
}

pub async fn run(spool: &SpoolHandle, cmd: SetupCommand) -> Reply {
    match cmd {
        SetupCommand::Show => match read(spool).await {
            Ok(c) => Reply::ok(show(&c)),
            Err(e) => Reply::failed(format!("{e}\n")),
        },
        SetupCommand::Hostname { name } => {
            let text = format!("host name {name} saved; used from the next start\n");
            saved(update(spool, |c| c.hostname = Some(name)).await, text)
        }
        SetupCommand::Network {
            address,
            gateway,
            dns,
            ipv6,
            ipv6_gateway,
        } => match network(&address, gateway, dns, &ipv6, ipv6_gateway) {
            Ok(net) => {
                let text = format!("network saved: {net}\n");
                saved(update(spool, |c| c.network = Some(net)).await, text)
            }
            Err(e) => Reply::failed(format!("not saved: {e}\n")),
        },
        SetupCommand::Ntp { servers } => match ntp_servers(&servers) {
            Ok(servers) => {
                let text = match servers.is_empty() {
                    true => "no NTP servers: the clock is left alone\n".to_string(),
                    false => format!("NTP servers saved: {}\n", servers.join(" ")),
                };
                let done = update(spool, |c| c.ntp_servers = servers).await;
                if done.is_ok() {
                    super::clock::servers_changed();
                }
                saved(done, text)
            }
            Err(e) => Reply::failed(format!("not saved: {e}\n")),
        },
        SetupCommand::ConsolePasswordHash { hash } => match password::verify("", &hash) {
            Ok(_) => saved(
                update(spool, |c| c.console_password = Some(hash)).await,
                "console password saved\n".into(),
            ),
            Err(e) => Reply::failed(format!("not saved: {e}\n")),
        },
    }
}

/// Most NTP servers the box asks.
pub const MAX_NTP_SERVERS: usize = 4;

/// An NTP server that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtpServerError {
    NotAHost(String),
    TooMany(usize),
}

impl std::fmt::Display for NtpServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NtpServerError::NotAHost(s) => {
                write!(f, "{s:?} is not a host name or address (e.g. pool.ntp.org)")
            }
            NtpServerError::TooMany(n) => {
                write!(f, "{n} NTP servers; at most {MAX_NTP_SERVERS}")
            }
        }
    }
}

/// The NTP servers a `setup ntp` line (or the console's answer) names: host names or addresses,
/// separated by spaces or commas; `none` for none.
pub fn ntp_servers(words: &[String]) -> Result<Vec<String>, NtpServerError> {
    let servers: Vec<String> = words
        .iter()
        .flat_map(|w| w.split([' ', ',']))
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("none"))
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if servers.len() > MAX_NTP_SERVERS {
        return Err(NtpServerError::TooMany(servers.len()));
    }
    for s in &servers {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let host = s.len() <= 253 && s.split('.').all(label_ok);
        if !host && s.parse::<std::net::IpAddr>().is_err() {
            return Err(NtpServerError::NotAHost(s.clone()));
        }
    }
    Ok(servers)
}

/// The network a `setup network` line asks for: `dhcp`, or `ADDRESS/PREFIX` with its gateway;
/// IPv6 `slaac`, `off`, or `ADDRESS/PREFIX` with its gateway.
pub fn network(
    address: &str,
    gateway: Option<Ipv4Addr>,
    dns: Vec<std::net::IpAddr>,
    ipv6: &str,
    ipv6_gateway: Option<Ipv6Addr>,
) -> Result<NetworkSettings, SettingError> {
    let ipv4 = if address.eq_ignore_ascii_case("dhcp") {
        Ipv4Method::Dhcp
    } else {
        Ipv4Method::Static(StaticIpv4::parse_address(address)?.with_gateway(gateway)?)
    };
    let ipv6 = Ipv6Method::parse(ipv6, ipv6_gateway)?;
    let dns = dns
        .into_iter()
        .map(box_settings::check_dns_server)
        .collect::<Result<_, _>>()?;
    Ok(NetworkSettings::new(ipv4, dns)?.with_ipv6(ipv6))
}

fn saved(result: Result<(), BoxConfigError>, text: String) -> Reply {
    match result {
        Ok(()) => Reply::ok(text),
        Err(e) => Reply::failed(format!("not saved: {e}\n")),
    }
}

/// `setup show`: what is stored, and what is not set up yet.
pub fn show(c: &BoxConfig) -> String {
    let unset = "not set up (boot parameters or defaults)";
    format!(
        "hostname: {}\nnetwork: {}\nntp servers: {}\nconsole password: {}\n",
        c.hostname
            .as_ref()
            .map_or(unset.to_string(), Fqdn::to_string),
        c.network
            .as_ref()
            .map_or(unset.to_string(), NetworkSettings::to_string),
        match c.ntp_servers.is_empty() {
            true => "none (the clock is left alone)".to_string(),
            false => c.ntp_servers.join(" "),
        },
        if c.console_password.is_some() {
            "set"
        } else {
            "not set (the console runs the first-boot wizard)"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_network_lines_are_checked_once() {
        let gw = Some(Ipv4Addr::new(192, 0, 2, 1));
        let n = network(
            "192.0.2.10/24",
            gw,
            vec![Ipv4Addr::new(192, 0, 2, 53).into()],
            "slaac",
            None,
        )
        .unwrap();
        assert_eq!(
            n.to_string(),
            "static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53; IPv6 SLAAC (router advertisements)"
        );
        assert_eq!(
            network("DHCP", None, vec![], "slaac", None).unwrap().ipv4,
            Ipv4Method::Dhcp
        );
        assert!(matches!(
            network(
                "192.0.2.10/24",
                Some(Ipv4Addr::new(10, 0, 0, 1)),
                vec![],
                "slaac",
                None
            ),
            Err(SettingError::GatewayOutside { .. })
        ));
        assert!(network("192.0.2.10", gw, vec![], "slaac", None).is_err());
        let v6 = network(
            "dhcp",
            None,
            vec![],
            "2001:db8::10/64",
            "fe80::1".parse().ok(),
        )
        .unwrap();
        assert_eq!(
            v6.to_string(),
            "DHCP, DNS from DHCP; IPv6 static 2001:db8::10/64 gateway fe80::1"
        );
        assert_eq!(
            network("dhcp", None, vec![], "slaac", "fe80::1".parse().ok()),
            Err(SettingError::Ipv6GatewayWithoutAddress)
        );
        assert!(network("dhcp", None, vec![], "fe80::5/64", None).is_err());
    }

    #[test]
    fn ntp_servers_are_names_or_addresses() {
        let w = |s: &str| vec![s.to_string()];
        assert_eq!(
            ntp_servers(&w("Pool.NTP.org, 192.0.2.123 2001:db8::123")).unwrap(),
            ["pool.ntp.org", "192.0.2.123", "2001:db8::123"]
        );
        assert_eq!(ntp_servers(&w("none")).unwrap(), Vec::<String>::new());
        assert!(matches!(
            ntp_servers(&w("ntp_1.example")),
            Err(NtpServerError::NotAHost(_))
        ));
        assert!(matches!(
            ntp_servers(&w("a b c d e")),
            Err(NtpServerError::TooMany(5))
        ));
    }
}
