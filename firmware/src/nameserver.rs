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
