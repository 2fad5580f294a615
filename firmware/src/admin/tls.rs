//! `postern tls`: install the box's certificate, or show the one in use. The identity itself
//! (making, checking, storing) is `inbound::tls`'s.

use std::path::Path;

use super::Reply;
use super::commands::TlsCommand;
use crate::inbound::tls::{self, TlsError, TlsIdentity};
use crate::spool::SpoolHandle;

pub async fn run(spool: &SpoolHandle, flash: &Path, cmd: TlsCommand) -> Reply {
    match cmd {
        TlsCommand::Show => match tls::stored(spool).await {
            Ok(Some(identity)) => Reply::ok(identity.cert_pem),
            Ok(None) => Reply::ok("no certificate stored yet\n"),
            Err(e) => Reply::failed(format!("{}\n", on_flash(flash, &e))),
        },
        TlsCommand::Install { cert, key } => {
            let read = |p: &Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}\n", p.display()))
            };
            let identity = match (read(&cert), read(&key)) {
                (Ok(cert_pem), Ok(key_pem)) => TlsIdentity { cert_pem, key_pem },
                (Err(e), _) | (_, Err(e)) => return Reply::failed(e),
            };
            match tls::install(spool, identity).await {
                Ok(()) => {
                    Reply::ok("certificate installed; the services use it from their next start\n")
                }
                Err(e @ TlsError::Stored(_)) => Reply::failed(format!("{}\n", on_flash(flash, &e))),
                Err(e) => Reply::failed(format!("not installed: {e}\n")),
            }
        }
    }
}

/// `flash /path: box config unreadable: ...; nothing was changed`, as the daemon says it at start.
fn on_flash(flash: &Path, e: &TlsError) -> String {
    match e {
        TlsError::Stored(_) => format!("flash {}: {e}; nothing was changed", flash.display()),
        _ => format!("flash {}: {e}", flash.display()),
    }
}
