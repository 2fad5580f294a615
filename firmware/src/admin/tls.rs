//! `postern tls`: install the box's certificate, or show the one in use.

use super::Reply;
use super::commands::TlsCommand;
use crate::daemon::State;
use crate::daemon::tls::box_config;
use crate::inbound::tls::{TlsIdentity, server_config};
use crate::spool::Region;

pub async fn run(state: &State, cmd: TlsCommand) -> Reply {
    match cmd {
        TlsCommand::Show => match box_config(&state.spool, &state.flash_path).await {
            Ok(c) => Reply::ok(
                c.tls_cert_pem
                    .unwrap_or_else(|| "no certificate stored yet\n".into()),
            ),
            Err(e) => Reply::failed(format!("{e}\n")),
        },
        TlsCommand::Install { cert, key } => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}\n", p.display()))
            };
            let identity = match (read(&cert), read(&key)) {
                (Ok(cert_pem), Ok(key_pem)) => TlsIdentity { cert_pem, key_pem },
                (Err(e), _) | (_, Err(e)) => return Reply::failed(e),
            };
            // A chain and key rustls refuses would leave the box without TLS: refuse it here.
            if let Err(e) = server_config(&identity) {
                return Reply::failed(format!("not installed: {e}\n"));
            }
            let mut config = match box_config(&state.spool, &state.flash_path).await {
                Ok(c) => c,
                Err(e) => return Reply::failed(format!("{e}\n")),
            };
            config.tls_cert_pem = Some(identity.cert_pem);
            config.tls_key_pem = Some(identity.key_pem);
            match state
                .spool
                .write_slot(Region::Config, config.encode())
                .await
            {
                Ok(()) => {
                    Reply::ok("certificate installed; the services use it from their next start\n")
                }
                Err(e) => Reply::failed(format!("not installed: {e}\n")),
            }
        }
    }
}
