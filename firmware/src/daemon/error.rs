//! Why the daemon could not start.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use hal::flash::DeviceError;

use super::ListenerKind;

#[derive(Debug)]
pub enum DaemonError {
    /// The flash file or device could not be opened or created.
    FlashOpen(PathBuf, io::Error),
    /// The flash device could not be opened: missing, held by another postern, the wrong size,
    /// or not a flash.
    Device(DeviceError),
    /// The spool on the flash could not be opened (damaged superblock, unknown version, ...).
    Spool(PathBuf, crate::spool::SpoolError),
    /// The directory snapshot on the flash cannot be read.
    Directory(PathBuf, crate::directory::DecodeError),
    /// The box config on the flash cannot be read.
    Config(PathBuf, crate::config::stored::StoredError),
    /// No TLS identity could be made.
    Tls(crate::inbound::tls::TlsError),
    /// The certificate stored on flash is refused by rustls.
    StoredTlsUnusable(crate::inbound::tls::TlsError),
    /// No resolver for MX lookups could be set up.
    Dns(crate::delivery::DnsSetupError),
    /// A listener could not be bound.
    Listen(ListenerKind, SocketAddr, io::Error),
    /// The metrics endpoint could not be bound.
    Metrics(SocketAddr, io::Error),
    /// The control socket could not be set up.
    Control(PathBuf, io::Error),
    /// Another daemon answers on the control socket already.
    AlreadyRunning(PathBuf),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::FlashOpen(p, e) => write!(f, "cannot open flash {}: {e}", p.display()),
            // The way out, in the command line's words.
            DaemonError::Device(e @ DeviceError::Missing(_)) => {
                write!(f, "{e} (give --flash-size to create it)")
            }
            DaemonError::Device(e @ DeviceError::WrongSize { actual, .. }) => {
                write!(f, "{e} (give --flash-size {actual}, or another file)")
            }
            DaemonError::Device(e) => e.fmt(f),
            DaemonError::Spool(p, e) => write!(f, "flash {}: {e}", p.display()),
            DaemonError::Config(p, e) => {
                write!(f, "flash {}: {e}; nothing was changed", p.display())
            }
            DaemonError::Tls(e) => write!(f, "TLS: {e}"),
            DaemonError::StoredTlsUnusable(e) => {
                write!(f, "TLS: the stored certificate cannot be used: {e}")
            }
            DaemonError::Dns(e) => write!(f, "DNS resolver: {e}"),
            DaemonError::Directory(p, e) => write!(
                f,
                "flash {}: the directory snapshot cannot be read ({e}); nothing was changed",
                p.display()
            ),
            DaemonError::Listen(kind, addr, e) => {
                write!(f, "cannot listen for {kind} on {addr}: {e}")
            }
            DaemonError::Metrics(addr, e) => {
                write!(f, "cannot listen for metrics scrapes on {addr}: {e}")
            }
            DaemonError::Control(p, e) => {
                write!(f, "cannot set up the control socket {}: {e}", p.display())
            }
            DaemonError::AlreadyRunning(p) => {
                write!(
                    f,
                    "another postern daemon already answers on {}",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for DaemonError {}
