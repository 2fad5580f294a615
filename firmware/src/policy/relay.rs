//! Relay control: Postfix's `permit_mynetworks, permit_sasl_authenticated` before
//! `reject_unauth_destination`.

use crate::config::MtaConfig;
use crate::mail::ClientInfo;
use crate::route::Relay;

/// Clients in `zimbraMtaMyNetworks` and clients that authenticated may relay. (Mail the box makes
/// itself, bounces and delay warnings, is routed with [`Relay::Permitted`] without asking.)
pub(super) fn relay_for(client: &ClientInfo, config: &MtaConfig) -> Relay {
    let permitted = client.auth.is_some()
        || client
            .addr
            .is_some_and(|ip| config.my_networks.contains(ip));
    if permitted {
        Relay::Permitted
    } else {
        Relay::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str, auth: Option<&str>) -> ClientInfo {
        ClientInfo {
            addr: Some(addr.parse().unwrap()),
            auth: auth.map(str::to_string),
            ..ClientInfo::default()
        }
    }

    #[test]
    fn mynetworks_and_authenticated_clients_relay_others_do_not() {
        let mut config = MtaConfig::default();
        assert_eq!(
            relay_for(&client("127.0.0.1", None), &config),
            Relay::Permitted
        );
        assert_eq!(
            relay_for(&client("203.0.113.9", None), &config),
            Relay::Denied
        );
        assert_eq!(
            relay_for(&client("203.0.113.9", Some("user@example.com")), &config),
            Relay::Permitted
        );
        assert_eq!(relay_for(&ClientInfo::default(), &config), Relay::Denied);
        config.my_networks = "203.0.113.0/24".parse().unwrap();
        assert_eq!(
            relay_for(&client("203.0.113.9", None), &config),
            Relay::Permitted
        );
        assert_eq!(
            relay_for(&client("127.0.0.1", None), &config),
            Relay::Denied
        );
    }
}
