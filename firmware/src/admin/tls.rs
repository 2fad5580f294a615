//! `postern tls`: install the box's certificate (from files, or one PEM pasted at the console),
//! make a new self-signed one, or show the one in use. The identity itself (making, checking,
//! storing) is `inbound::tls`'s.

use std::path::Path;

use super::Reply;
use super::commands::TlsCommand;
use crate::inbound::tls::{self, LiveCert, TlsError, TlsIdentity};
use crate::spool::SpoolHandle;

/// Most bytes of a pasted PEM (a chain of a few certificates and a key is ~10 KB).
const MAX_PEM: usize = 64 << 10;

/// Why a pasted PEM is not a certificate chain and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    TooLong,
    NoCertificate,
    NoKey,
    TwoKeys,
    /// A BEGIN without its END, or an END without its BEGIN.
    Unfinished(String),
    /// A block that is neither a certificate nor a private key (a CSR, say).
    Unexpected(String),
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemError::TooLong => write!(f, "more than {MAX_PEM} bytes of PEM"),
            PemError::NoCertificate => f.write_str("no CERTIFICATE block"),
            PemError::NoKey => f.write_str("no PRIVATE KEY block: paste the key after the chain"),
            PemError::TwoKeys => f.write_str("more than one private key"),
            PemError::Unfinished(label) => write!(f, "the {label} block is not complete"),
            PemError::Unexpected(label) => {
                write!(
                    f,
                    "a {label} block: only certificates and a private key belong here"
                )
            }
        }
    }
}

/// Splits one PEM text into the certificate chain (in the order given) and the private key.
pub fn split_pem(text: &str) -> Result<TlsIdentity, PemError> {
    if text.len() > MAX_PEM {
        return Err(PemError::TooLong);
    }
    let (mut certs, mut keys) = (String::new(), Vec::new());
    let mut open: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some((label, _)) = open {
                return Err(PemError::Unfinished(label));
            }
            open = Some((label.to_string(), format!("{line}\n")));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let Some((begun, mut block)) = open.take().filter(|(b, _)| b == label) else {
                return Err(PemError::Unfinished(label.to_string()));
            };
            block += &format!("{line}\n");
            match begun.as_str() {
                "CERTIFICATE" => certs += &block,
                l if l.ends_with("PRIVATE KEY") => keys.push(block),
                other => return Err(PemError::Unexpected(other.to_string())),
            }
        } else if let Some((_, block)) = &mut open {
            *block += &format!("{line}\n");
        }
    }
    if let Some((label, _)) = open {
        return Err(PemError::Unfinished(label));
    }
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    match keys.len() {
        0 => Err(PemError::NoKey),
        1 => Ok(TlsIdentity {
            cert_pem: certs,
            key_pem: keys.remove(0),
        }),
        _ => Err(PemError::TwoKeys),
    }
}

/// Where an identity goes: the flash, and the running listeners when there are some.
struct Target<'a> {
    spool: &'a SpoolHandle,
    live: Option<&'a LiveCert>,
    flash: &'a Path,
}

/// Stores an identity once rustls takes it, and presents it from the next handshake on when
/// the services run; a key of another certificate is named as such.
async fn install(to: &Target<'_>, identity: TlsIdentity, what: &str) -> Reply {
    let flash = to.flash;
    match tls::install(to.spool, identity.clone()).await {
        Ok(()) => match to.live.map(|live| live.replace(&identity)) {
            None => Reply::ok(format!(
                "{what} installed; the services use it from their next start\n"
            )),
            Some(Ok(())) => Reply::ok(format!(
                "{what} installed; new sessions use it, sessions under way keep the old one\n"
            )),
            // Checked by rustls before it was stored: not expected, but never hidden.
            Some(Err(e)) => Reply::failed(format!(
                "{what} stored, but the listeners still present the old one ({e}); they use the new one from their next start\n"
            )),
        },
        Err(e @ TlsError::Stored(_)) => Reply::failed(format!("{}\n", on_flash(flash, &e))),
        Err(TlsError::Rustls(rustls::Error::InconsistentKeys(_))) => Reply::failed(
            "not installed: the private key does not belong to the certificate; nothing changed\n",
        ),
        Err(e) => Reply::failed(format!("not installed: {e}; nothing changed\n")),
    }
}

pub async fn run(
    spool: &SpoolHandle,
    live: Option<&LiveCert>,
    flash: &Path,
    hostname: &str,
    cmd: TlsCommand,
) -> Reply {
    let to = Target { spool, live, flash };
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
            install(&to, identity, "certificate").await
        }
        TlsCommand::InstallPem { pem } => {
            match split_pem(pem.as_ref().map_or("", |p| p.0.as_str())) {
                Ok(identity) => install(&to, identity, "certificate").await,
                Err(e) => Reply::failed(format!("not installed: {e}; nothing changed\n")),
            }
        }
        TlsCommand::SelfSigned => {
            // The name stored last (the console may just have changed it), else the running one.
            let name = match super::setup::read(spool).await {
                Ok(c) => c.hostname.map_or(hostname.to_string(), |h| h.to_string()),
                Err(_) => hostname.to_string(),
            };
            match tls::self_signed(&name) {
                Ok(identity) => {
                    install(
                        &to,
                        identity,
                        &format!("self-signed certificate for {name}"),
                    )
                    .await
                }
                Err(e) => Reply::failed(format!("{e}\n")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["mx.example.com".into()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn a_pasted_chain_and_key_are_told_apart() {
        let (cert, key) = pem();
        let (ca, _) = pem();
        let pasted = format!("  {cert}{ca}\n{key}");
        let id = split_pem(&pasted).unwrap();
        assert_eq!(id.cert_pem, format!("{cert}{ca}"));
        assert_eq!(id.key_pem, key);
        // The key pasted first is as good.
        assert_eq!(split_pem(&format!("{key}{cert}")).unwrap().key_pem, key);
    }

    #[test]
    fn what_is_not_a_chain_and_one_key_is_refused() {
        let (cert, key) = pem();
        assert_eq!(split_pem(&cert), Err(PemError::NoKey));
        assert_eq!(split_pem(&key), Err(PemError::NoCertificate));
        assert_eq!(
            split_pem(&format!("{cert}{key}{key}")),
            Err(PemError::TwoKeys)
        );
        let cut = &cert[..cert.len() - 30];
        assert!(matches!(
            split_pem(&format!("{cut}\n{key}")),
            Err(PemError::Unfinished(_))
        ));
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            split_pem(&format!("{csr}{cert}{key}")),
            Err(PemError::Unexpected("CERTIFICATE REQUEST".into()))
        );
        assert_eq!(split_pem(&"x".repeat(MAX_PEM + 1)), Err(PemError::TooLong));
        assert_eq!(split_pem(""), Err(PemError::NoCertificate));
    }
}
