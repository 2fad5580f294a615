//! Where an `ldap_url`'s server is. ldap3 would look a name up with the C library, which cannot
//! resolve in the static binary (glibc's NSS): names are resolved here with hickory, as delivery
//! resolves next hops (the hosts table first, then the box's DNS servers, else
//! /etc/resolv.conf's), and ldap3 is handed a connected socket while its URL keeps the name, so
//! TLS (ldaps and StartTLS) still checks the server's certificate against that name.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::config::HostsTable;
use crate::config::localconfig::LdapUrl;
use crate::trust;

/// How the names in `ldap_url` are found; the fetch child gets a copy, so it resolves as the
/// daemon would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNames {
    /// The DNS servers the box asks (`run --dns`, the appliance's network settings); empty:
    /// /etc/resolv.conf's.
    pub dns_servers: Vec<SocketAddr>,
    /// What the hosts table (`posternHostsTable`) says of the URLs' names: asked before DNS.
    pub listed: Vec<(String, Vec<IpAddr>)>,
}

/// Why a server name gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocateError {
    /// DNS says the name does not exist or has no address.
    NotFound(String),
    /// DNS gave no answer either way (timeout, SERVFAIL, no resolver configuration).
    Dns { name: String, why: String },
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocateError::NotFound(name) => write!(f, "{name}: no such host"),
            LocateError::Dns { name, why } => write!(f, "{name}: DNS lookup failed: {why}"),
        }
    }
}

impl std::error::Error for LocateError {}

impl ServerNames {
    /// The box's DNS servers and what its hosts table says of the names in `urls`.
    pub fn new(dns_servers: &[SocketAddr], hosts: &HostsTable, urls: &[LdapUrl]) -> ServerNames {
        let listed = urls
            .iter()
            .filter_map(|u| {
                let ips = hosts.lookup(&u.host);
                (!ips.is_empty()).then(|| (u.host.to_ascii_lowercase(), ips))
            })
            .collect();
        ServerNames {
            dns_servers: dns_servers.to_vec(),
            listed,
        }
    }

    /// The addresses of `host`, in the order to try them; DNS gets `deadline`.
    pub async fn addresses(
        &self,
        host: &str,
        port: u16,
        deadline: Duration,
    ) -> Result<Vec<SocketAddr>, LocateError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let bare = host.strip_suffix('.').unwrap_or(host);
        if let Some((_, ips)) = self
            .listed
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(bare))
        {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        let dns = |why: String| LocateError::Dns {
            name: host.to_string(),
            why,
        };
        let resolver = self.resolver(deadline).map_err(dns)?;
        let found = tokio::time::timeout(deadline, resolver.lookup_ip(host))
            .await
            .map_err(|_| dns("no answer in time".into()))?;
        let ips: Vec<SocketAddr> = match found {
            Ok(lookup) => lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(dns(e.to_string())),
        };
        match ips.is_empty() {
            true => Err(LocateError::NotFound(host.to_string())),
            false => Ok(ips),
        }
    }

    fn resolver(&self, deadline: Duration) -> Result<TokioResolver, String> {
        let mut builder = match self.dns_servers.as_slice() {
            [] => TokioResolver::builder_tokio()
                .map_err(|e| e.to_string())?
                .with_tls_config(trust::unused_tls_config()),
            servers => crate::nameserver::builder(servers),
        };
        builder.options_mut().timeout = deadline;
        builder.build().map_err(|e| e.to_string())
    }
}

/// A connection to the first of `addrs` that takes one within `limit` each; the last error
/// otherwise.
pub async fn connect(addrs: &[SocketAddr], limit: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                );
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> LdapUrl {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn literals_and_the_hosts_table_answer_without_dns() {
        let mut hosts = HostsTable::default();
        hosts.add("LDAP.example.com=192.0.2.10").unwrap();
        hosts.add("ldap.example.com=2001:db8::10").unwrap();
        hosts.add("unrelated.example.com=192.0.2.99").unwrap();
        // A DNS server nobody answers on: any question to it would fail the test.
        let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let names = ServerNames::new(
            &[dead],
            &hosts,
            &[url("ldap://ldap.example.com"), url("ldaps://192.0.2.1")],
        );
        assert_eq!(names.listed.len(), 1, "only the URLs' names are carried");
        let t = Duration::from_secs(1);
        assert_eq!(
            names.addresses("ldap.example.com.", 389, t).await,
            Ok(vec![
                "192.0.2.10:389".parse().unwrap(),
                "[2001:db8::10]:389".parse().unwrap()
            ])
        );
        assert_eq!(
            names.addresses("192.0.2.1", 636, t).await,
            Ok(vec!["192.0.2.1:636".parse().unwrap()])
        );
        assert_eq!(
            names.addresses("::1", 389, t).await,
            Ok(vec!["[::1]:389".parse().unwrap()])
        );
    }

    #[tokio::test]
    async fn a_dns_server_that_never_answers_is_an_error_in_time() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let names = ServerNames {
            dns_servers: vec![silent.local_addr().unwrap()],
            listed: Vec::new(),
        };
        let started = std::time::Instant::now();
        let r = names
            .addresses("ldap.example.com", 389, Duration::from_millis(300))
            .await;
        assert!(matches!(r, Err(LocateError::Dns { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn connect_takes_the_first_address_that_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let s = connect(&[closed, open], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(s.peer_addr().unwrap(), open);
        assert!(connect(&[closed], Duration::from_secs(2)).await.is_err());
        assert!(connect(&[], Duration::from_secs(2)).await.is_err());
    }
}
