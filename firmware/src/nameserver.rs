//! The DNS servers a resolver of the box asks when they are given (the appliance's network
//! settings, `--dns`, a test's server on 127.0.0.1): one setup for the restrictions, delivery and
//! the LDAP client, so all three ask the same way.

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::trust;

/// A resolver builder asking `servers` in order, over UDP and then TCP for long answers, each on
/// its own port.
pub fn builder(servers: &[SocketAddr]) -> ResolverBuilder<TokioRuntimeProvider> {
    let config = ResolverConfig::from_name_servers(
        servers
            .iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect(),
    );
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::new())
        .with_tls_config(trust::unused_tls_config())
}

/// The resolver a DNS client of the box asks: one made for given servers, or the one
/// resolv.conf's servers make now (None while they make none).
pub enum Servers {
    Fixed(TokioResolver),
    System(FollowResolvConf<Option<TokioResolver>>),
}

impl Servers {
    /// The resolver to ask now.
    pub fn current(&self) -> Option<TokioResolver> {
        match self {
            Servers::Fixed(r) => Some(r.clone()),
            Servers::System(follow) => follow.get(),
        }
    }
}

/// Where the system's resolvers are named.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// glibc asks at most three (MAXNS).
const MAX_SERVERS: usize = 3;

/// The servers `text` (resolv.conf's format) names, in order: `nameserver ADDR` lines, at most
/// three as glibc reads them. Comments, other keywords and addresses that do not parse are
/// passed over, and so are link-local IPv6 addresses with a `%scope` (the resolver could not
/// say which interface to ask on). None named: 127.0.0.1, as glibc.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .take(MAX_SERVERS)
        .collect();
    match servers.is_empty() {
        true => vec![SocketAddr::from(([127, 0, 0, 1], 53))],
        false => servers,
    }
}

/// What a resolver is made from at a time, read from resolv.conf: the file's identity and the
/// servers it named.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// Makes a resolver asking these servers.
type MakeResolver<T> = dyn Fn(&[SocketAddr]) -> T + Send + Sync;

/// A resolver made from resolv.conf's servers that is made again whenever the file changes:
/// the appliance rewrites it when a DHCP lease, the console or a router advertisement changes
/// the servers, and a daemon that runs for months must ask the new ones. The file is looked at
/// (one `stat`) at most once per [`RECHECK`], not at every use: a relay asks for its resolver
/// several times per message. A file that went missing leaves the last servers in use.
pub struct FollowResolvConf<T> {
    path: std::path::PathBuf,
    make: Box<MakeResolver<T>>,
    recheck: std::time::Duration,
    current: std::sync::Mutex<Option<Made<T>>>,
}

/// A resolver, the file it was made from, and when the file was last looked at.
struct Made<T> {
    stamp: Option<Stamp>,
    checked: std::time::Instant,
    resolver: T,
}

/// How long a resolver is used before resolv.conf is looked at again: a new lease's servers are
/// asked within a second.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl<T: Clone> FollowResolvConf<T> {
    /// Follows /etc/resolv.conf, making each resolver with `make`.
    pub fn system(make: impl Fn(&[SocketAddr]) -> T + Send + Sync + 'static) -> Self {
        Self::at(RESOLV_CONF, make)
    }

    pub fn at(
        path: impl Into<std::path::PathBuf>,
        make: impl Fn(&[SocketAddr]) -> T + Send + Sync + 'static,
    ) -> Self {
        FollowResolvConf {
            path: path.into(),
            make: Box::new(make),
            recheck: RECHECK,
            current: std::sync::Mutex::new(None),
        }
    }

    /// Looks at the file again after `recheck` instead of [`RECHECK`].
    pub fn rechecking_after(mut self, recheck: std::time::Duration) -> Self {
        self.recheck = recheck;
        self
    }

    /// The resolver for the file as it is now (as it was at most `recheck` ago).
    pub fn get(&self) -> T {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let at = std::time::Instant::now();
        if let Some(made) = current.as_mut() {
            if at.duration_since(made.checked) < self.recheck {
                return made.resolver.clone();
            }
            let now = stamp(&self.path);
            if made.stamp == now || now.is_none() {
                made.checked = at;
                return made.resolver.clone();
            }
        }
        let now = stamp(&self.path);
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let resolver = (self.make)(&parse_resolv_conf(&text));
        *current = Some(Made {
            stamp: now,
            checked: at,
            resolver: resolver.clone(),
        });
        resolver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_names_up_to_three_servers_and_defaults_to_localhost() {
        let text = "# made by postern\nsearch example.com\nnameserver 192.0.2.53\n\
                    nameserver 2001:db8::53\nnameserver fe80::1%eth0\nnameserver bogus\n\
                    options ndots:0\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n";
        let servers: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            servers,
            ["192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:53"]
        );
        assert_eq!(
            parse_resolv_conf("options rotate\n"),
            [SocketAddr::from(([127, 0, 0, 1], 53))]
        );
    }

    #[test]
    fn a_changed_file_makes_a_new_resolver_and_a_missing_one_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = made.clone();
        let follow = FollowResolvConf::at(&path, move |servers: &[SocketAddr]| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            servers.to_vec()
        })
        .rechecking_after(std::time::Duration::ZERO);
        let first = follow.get();
        assert_eq!(first, [SocketAddr::from(([192, 0, 2, 1], 53))]);
        assert_eq!(follow.get(), first);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Rewritten as the appliance does (a new lease's servers): another length, a new file.
        std::fs::write(&path, "nameserver 192.0.2.22\nnameserver 192.0.2.23\n").unwrap();
        assert_eq!(
            follow.get(),
            [
                SocketAddr::from(([192, 0, 2, 22], 53)),
                SocketAddr::from(([192, 0, 2, 23], 53))
            ]
        );
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(follow.get().len(), 2);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn the_file_is_looked_at_again_only_after_the_recheck_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let follow = FollowResolvConf::at(&path, |servers: &[SocketAddr]| servers.to_vec());
        assert_eq!(follow.get(), [SocketAddr::from(([192, 0, 2, 1], 53))]);
        std::fs::write(&path, "nameserver 192.0.2.7\nnameserver 192.0.2.8\n").unwrap();
        assert_eq!(
            follow.get().len(),
            1,
            "within the interval the last servers stay"
        );
        std::thread::sleep(RECHECK + std::time::Duration::from_millis(100));
        assert_eq!(follow.get().len(), 2, "after it the new file is read");
    }
}
