//! Name lookups as the MTA settings say, in front of DNS: `zimbraMtaDnsLookupsEnabled FALSE` (or
//! `zimbraMtaSmtpDnsSupportLevel disabled`) means no MX lookup anywhere, so every next hop is
//! found by its own address records, as Postfix's `disable_dns_lookups`; and `posternHostsTable`
//! answers the address lookup of the names it lists before DNS is asked (the appliance has no
//! `/etc/hosts`). [`ConfiguredDns`] wraps any [`Dns`], so [`super::resolve`] keeps its order and
//! error mapping, and the settings are read at each lookup: a change with `mcf` applies to the
//! next delivery without a restart.

use std::net::IpAddr;
use std::sync::Arc;

use super::resolve::{Dns, DnsError, MxAnswer};
use crate::config::{HostsTable, MtaConfig};

/// The settings that shape name lookups, taken from the MTA config when a lookup is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameLookups {
    /// Look up MX records (off: the name itself is the only host, as with no MX records).
    pub mx: bool,
    pub hosts: HostsTable,
}

impl NameLookups {
    pub fn from_config(c: &MtaConfig) -> NameLookups {
        NameLookups {
            mx: c.dns_lookups_enabled,
            hosts: c.hosts.clone(),
        }
    }
}

/// Where the current settings come from (the daemon reads its directory's config).
pub type LookupSettings = Arc<dyn Fn() -> NameLookups + Send + Sync>;

/// A [`Dns`] that obeys [`NameLookups`].
pub struct ConfiguredDns<D> {
    dns: D,
    settings: LookupSettings,
}

impl<D: Dns> ConfiguredDns<D> {
    pub fn new(dns: D, settings: LookupSettings) -> ConfiguredDns<D> {
        ConfiguredDns { dns, settings }
    }
}

impl<D: Dns> Dns for ConfiguredDns<D> {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        if !(self.settings)().mx {
            return Ok(MxAnswer::NoRecords);
        }
        self.dns.mx(domain).await
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let listed = (self.settings)().hosts.lookup(host);
        if !listed.is_empty() {
            return Ok(listed);
        }
        self.dns.ips(host).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::resolve::{Target, targets};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// DNS that knows `example.com` by its MX and every host by one address, and counts MX
    /// questions.
    #[derive(Default)]
    struct CountingDns {
        mx_asked: AtomicUsize,
    }

    impl Dns for CountingDns {
        async fn mx(&self, d: &str) -> Result<MxAnswer, DnsError> {
            self.mx_asked.fetch_add(1, Ordering::SeqCst);
            match d {
                "mail.example.com" => Ok(MxAnswer::Records(vec![(10, "mx.elsewhere.net.".into())])),
                _ => Ok(MxAnswer::NoRecords),
            }
        }
        async fn ips(&self, h: &str) -> Result<Vec<IpAddr>, DnsError> {
            match h.trim_end_matches('.') {
                "mx.elsewhere.net" => Ok(vec!["192.0.2.99".parse().unwrap()]),
                "mail.example.com" => Ok(vec!["192.0.2.25".parse().unwrap()]),
                _ => Err(DnsError::NotFound),
            }
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn settings(mx: bool, hosts: &[&str]) -> Arc<Mutex<NameLookups>> {
        let mut table = HostsTable::default();
        for h in hosts {
            table.add(h).unwrap();
        }
        Arc::new(Mutex::new(NameLookups { mx, hosts: table }))
    }

    fn dns(s: &Arc<Mutex<NameLookups>>) -> ConfiguredDns<CountingDns> {
        let s = Arc::clone(s);
        ConfiguredDns::new(
            CountingDns::default(),
            Arc::new(move || s.lock().unwrap().clone()),
        )
    }

    fn relays(t: Vec<Target>) -> Vec<String> {
        t.iter().map(Target::relay).collect()
    }

    /// The page's secondary: `smtp:mail.example.com` names a mail domain, but with DNS lookups
    /// off its MX is never asked for; the host's own address is used.
    #[test]
    fn dns_lookups_off_means_no_mx_lookup() {
        let hop = "smtp:mail.example.com".parse().unwrap();
        let on = settings(true, &[]);
        let d = dns(&on);
        assert_eq!(
            relays(run(targets(&d, &hop)).unwrap()),
            ["mx.elsewhere.net[192.0.2.99]:25"]
        );
        let off = settings(false, &[]);
        let d = dns(&off);
        assert_eq!(
            relays(run(targets(&d, &hop)).unwrap()),
            ["mail.example.com[192.0.2.25]:25"]
        );
        assert_eq!(d.dns.mx_asked.load(Ordering::SeqCst), 0);
    }

    /// The hosts table answers before DNS, and a change applies to the next lookup.
    #[test]
    fn hosts_table_answers_before_dns() {
        let s = settings(false, &["mail.example.com=127.0.0.2"]);
        let d = dns(&s);
        let hop = "smtp:mail.example.com:25".parse().unwrap();
        assert_eq!(
            relays(run(targets(&d, &hop)).unwrap()),
            ["mail.example.com[127.0.0.2]:25"]
        );
        let lmtp = "lmtp:zimbra.example.com:7025".parse().unwrap();
        assert!(run(targets(&d, &lmtp)).is_err(), "not listed, not in DNS");
        s.lock()
            .unwrap()
            .hosts
            .add("zimbra.example.com=127.0.0.3")
            .unwrap();
        assert_eq!(
            relays(run(targets(&d, &lmtp)).unwrap()),
            ["zimbra.example.com[127.0.0.3]:7025"]
        );
    }
}
