//! The services both running modes start: the flash and its spool, the directory, the listeners,
//! the control socket. Host mode (`postern run`) and appliance mode (PID 1) differ only in what
//! they do around this.

mod control;
mod error;
pub mod flash;
mod listeners;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use error::DaemonError;
pub use flash::FlashSpec;
pub use listeners::ListenerKind;

use crate::admin::Admin;
use crate::directory::{Directory, SharedDirectory};
use crate::spool::{Region, SpoolHandle, SpoolSettings};

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub flash: FlashSpec,
    /// Port 25 style listeners: mail from anywhere, relay only as policy allows.
    pub smtp: Vec<SocketAddr>,
    /// Port 587 style listeners: AUTH required before MAIL.
    pub submission: Vec<SocketAddr>,
    /// Port 465 style listeners: TLS from the first byte.
    pub smtps: Vec<SocketAddr>,
    /// Where the control socket listens.
    pub control: PathBuf,
    /// The name the box greets with and writes in Received headers.
    pub hostname: String,
}

/// What admin commands and sessions share.
#[derive(Debug)]
pub struct State {
    pub started: Instant,
    pub hostname: String,
    pub flash_path: PathBuf,
    pub flash_size: u64,
    pub spool: SpoolHandle,
    /// Accounts, aliases, domains and MTA settings, as sessions see them.
    pub directory: SharedDirectory,
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// `None` when running offline on a flash (`postern prov --flash FILE`).
    pub control: Option<PathBuf>,
}

/// A running daemon. Dropping it stops nothing: call [`Daemon::shutdown`].
pub struct Daemon {
    state: Arc<State>,
    admin: Admin,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Opens the flash, binds every listener and the control socket, and starts serving.
    /// Must be called inside a tokio runtime. Nothing is served unless everything could be bound.
    pub async fn start(opts: Options) -> Result<Daemon, DaemonError> {
        let mut bound = Vec::new();
        for (kind, addrs) in [
            (ListenerKind::Smtp, &opts.smtp),
            (ListenerKind::Submission, &opts.submission),
            (ListenerKind::Smtps, &opts.smtps),
        ] {
            for addr in addrs {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| DaemonError::Listen(kind, *addr, e))?;
                let local = listener.local_addr().map_err(|e| DaemonError::Listen(kind, *addr, e))?;
                bound.push((kind, local, listener));
            }
        }
        let control = control::bind(&opts.control)?;
        let listeners = bound.iter().map(|(k, a, _)| (*k, *a)).collect();
        let state = open_state(&opts.flash, opts.hostname.clone(), listeners, Some(opts.control.clone())).await?;
        let admin = Admin::new(state.clone());
        let mut tasks = Vec::new();
        for (kind, addr, listener) in bound {
            eprintln!("postern: {kind} listening on {addr}");
            tasks.push(tokio::spawn(listeners::serve(kind, listener, state.clone())));
        }
        eprintln!("postern: control socket at {}", opts.control.display());
        tasks.push(tokio::spawn(control::serve(control, admin.clone())));
        Ok(Daemon { state, admin, tasks })
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The admin interface, for the serial console of the appliance.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Stops the listeners and removes the control socket. What was acknowledged is on flash
    /// already (every 250 waited for its sync), so there is nothing to flush.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(control) = &self.state.control {
            let _ = std::fs::remove_file(control);
        }
        eprintln!("postern: stopped");
    }
}

/// Opens the flash for an admin command run without a daemon (`postern prov --flash FILE`):
/// the same state, with no listeners. The flash lock keeps a daemon off it meanwhile.
pub async fn offline(flash: &FlashSpec, hostname: String) -> Result<Admin, DaemonError> {
    let state = open_state(flash, hostname, Vec::new(), None).await?;
    Ok(Admin::new(state))
}

async fn open_state(
    spec: &FlashSpec,
    hostname: String,
    listeners: Vec<(ListenerKind, SocketAddr)>,
    control: Option<PathBuf>,
) -> Result<Arc<State>, DaemonError> {
    let spec2 = spec.clone();
    let mut flash = tokio::task::spawn_blocking(move || flash::open(&spec2, SpoolSettings::default()))
        .await
        .map_err(|e| DaemonError::FlashOpen(spec.path.clone(), std::io::Error::other(e)))??;
    report_recovery(&flash);
    // The writer thread stays detached: every acknowledged record was synced before its answer.
    drop(flash.take_writer());
    let directory = match flash.spool.read_slot(Region::Directory).await {
        Ok(Some(bytes)) => Directory::decode(&bytes).map_err(|e| DaemonError::Directory(spec.path.clone(), e))?,
        Ok(None) => Directory::default(),
        Err(e) => return Err(DaemonError::Spool(spec.path.clone(), e)),
    };
    let (accounts, aliases) = directory.counts();
    eprintln!("postern: directory: {} domains, {accounts} accounts, {aliases} aliases", directory.domains().count());
    Ok(Arc::new(State {
        started: Instant::now(),
        hostname,
        flash_path: flash.path.clone(),
        flash_size: flash.size,
        spool: flash.spool.clone(),
        directory: SharedDirectory::new(directory),
        listeners,
        control,
    }))
}

fn report_recovery(flash: &flash::OpenFlash) {
    let r = &flash.recovery;
    if flash.formatted {
        eprintln!("postern: flash {} was blank: formatted", flash.path.display());
    }
    eprintln!(
        "postern: spool recovered: {} messages queued, {} unfinished dropped, {} damaged records",
        r.messages,
        r.dropped_uncommitted,
        r.damaged.len()
    );
    for lost in &r.lost {
        eprintln!("postern: {}: lost to flash damage: {}", lost.qid, lost.reason);
    }
}
