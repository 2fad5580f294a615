//! `postern diag dns NAME`: the addresses and mail exchangers of a name, as `host` prints them,
//! asked of the resolver delivery uses (the `--dns` servers, else /etc/resolv.conf's, which the
//! appliance writes from its network settings or DHCP lease).

use std::net::{IpAddr, SocketAddr};

use super::DEADLINE;
use crate::admin::Reply;
use crate::delivery::{Dns, DnsError, HickoryDns, MxAnswer};

/// The resolver delivery builds from the same settings.
pub fn resolver(servers: &[SocketAddr]) -> Result<(HickoryDns, String), String> {
    let (dns, which) = match servers {
        [] => (HickoryDns::from_system(), "/etc/resolv.conf".to_string()),
        s => (
            HickoryDns::with_servers_on(s),
            s.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    };
    dns.map(|d| (d, which))
        .map_err(|e| format!("no resolver: {e}"))
}

/// A name a lookup may be asked for: letters, digits, `-`, `_` and dots, at most 253.
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub async fn run(servers: &[SocketAddr], name: &str) -> Reply {
    if name.parse::<IpAddr>().is_ok() {
        return Reply::failed(format!("{name} is an address, not a name\n"));
    }
    if !valid_name(name) {
        return Reply::failed(format!("{name:?} is not a host or domain name\n"));
    }
    let (dns, which) = match resolver(servers) {
        Ok(r) => r,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    match tokio::time::timeout(DEADLINE, lookup(&dns, name)).await {
        Ok((true, text)) => Reply::ok(format!("resolver: {which}\n{text}")),
        Ok((false, text)) => Reply::failed(format!("resolver: {which}\n{text}")),
        Err(_) => Reply::failed(format!(
            "resolver: {which}\n{name}: no answer within {} s\n",
            DEADLINE.as_secs()
        )),
    }
}

/// Addresses then mail exchangers, one line each; whether the name was found.
pub async fn lookup(dns: &impl Dns, name: &str) -> (bool, String) {
    let mut text = String::new();
    let ips = dns.ips(name).await;
    match &ips {
        Ok(ips) => {
            for ip in ips {
                let kind = match ip {
                    IpAddr::V4(_) => "address",
                    IpAddr::V6(_) => "IPv6 address",
                };
                text += &format!("{name} has {kind} {ip}\n");
            }
        }
        Err(DnsError::NotFound) => {
            return (false, format!("Host {name} not found: 3(NXDOMAIN)\n"));
        }
        Err(DnsError::Temporary(why)) => text += &format!("{name} A/AAAA: {why}\n"),
    }
    let mx = dns.mx(name).await;
    match &mx {
        Ok(MxAnswer::Records(records)) => {
            let mut records = records.clone();
            records.sort();
            for (preference, exchange) in records {
                text += &format!("{name} mail is handled by {preference} {exchange}\n");
            }
        }
        Ok(MxAnswer::NoRecords) => {}
        Err(DnsError::NotFound) => {}
        Err(DnsError::Temporary(why)) => text += &format!("{name} MX: {why}\n"),
    }
    let found = matches!(&ips, Ok(v) if !v.is_empty())
        || matches!(&mx, Ok(MxAnswer::Records(r)) if !r.is_empty());
    if !found && ips.is_ok() && mx.is_ok() {
        text += &format!("{name} has no address and no MX record\n");
    }
    (found, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zone;

    impl Dns for Zone {
        async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
            match domain {
                "example.com" => Ok(MxAnswer::Records(vec![
                    (20, "mx2.example.com.".into()),
                    (10, "mx1.example.com.".into()),
                ])),
                "flaky.example" => Err(DnsError::Temporary("SERVFAIL".into())),
                _ => Ok(MxAnswer::NoRecords),
            }
        }
        async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
            match host {
                "example.com" => Ok(vec![
                    "192.0.2.1".parse().unwrap(),
                    "2001:db8::1".parse().unwrap(),
                ]),
                "empty.example" | "flaky.example" => Ok(vec![]),
                _ => Err(DnsError::NotFound),
            }
        }
    }

    #[tokio::test]
    async fn addresses_and_mail_exchangers_as_host_prints_them() {
        let (found, text) = lookup(&Zone, "example.com").await;
        assert!(found);
        assert_eq!(
            text,
            "example.com has address 192.0.2.1\n\
             example.com has IPv6 address 2001:db8::1\n\
             example.com mail is handled by 10 mx1.example.com.\n\
             example.com mail is handled by 20 mx2.example.com.\n"
        );
        assert_eq!(
            lookup(&Zone, "nope.example").await,
            (false, "Host nope.example not found: 3(NXDOMAIN)\n".into())
        );
        let (found, text) = lookup(&Zone, "empty.example").await;
        assert!(!found);
        assert!(text.contains("no address and no MX record"), "{text}");
        let (found, text) = lookup(&Zone, "flaky.example").await;
        assert!(!found);
        assert!(text.contains("flaky.example MX: SERVFAIL"), "{text}");
    }

    #[tokio::test]
    async fn names_that_are_not_names_are_refused_before_asking() {
        let servers = ["127.0.0.1:9".parse().unwrap()];
        for bad in ["192.0.2.1", "exa mple.com", "", "a..b", &"x".repeat(300)] {
            assert_eq!(run(&servers, bad).await.exit, 1, "{bad}");
        }
        assert!(valid_name("_dmarc.example.com."));
    }
}
