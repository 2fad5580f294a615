//! The services both running modes start: the flash, the listeners, the control socket.
//! Host mode (`postern run`) and appliance mode (PID 1) differ only in what they do around this.

mod control;
mod error;
mod flash;
mod listeners;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use error::DaemonError;
pub use flash::FlashSpec;
pub use listeners::ListenerKind;

use crate::admin::Admin;

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

/// Facts about the running daemon that admin commands report.
#[derive(Debug)]
pub struct State {
    pub started: Instant,
    pub hostname: String,
    pub flash: flash::FlashFacts,
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    pub control: PathBuf,
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
        let flash = flash::open(&opts.flash)?;
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
                let local = listener
                    .local_addr()
                    .map_err(|e| DaemonError::Listen(kind, *addr, e))?;
                bound.push((kind, local, listener));
            }
        }
        let control = control::bind(&opts.control)?;
        let state = Arc::new(State {
            started: Instant::now(),
            hostname: opts.hostname.clone(),
            flash,
            listeners: bound.iter().map(|(k, a, _)| (*k, *a)).collect(),
            control: opts.control.clone(),
        });
        let admin = Admin::new(state.clone());
        let mut tasks = Vec::new();
        for (kind, addr, listener) in bound {
            eprintln!("postern: {kind} listening on {addr}");
            tasks.push(tokio::spawn(listeners::serve(
                kind,
                listener,
                state.clone(),
            )));
        }
        eprintln!("postern: control socket at {}", opts.control.display());
        tasks.push(tokio::spawn(control::serve(control, admin.clone())));
        Ok(Daemon {
            state,
            admin,
            tasks,
        })
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The admin interface, for the serial console of the appliance.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Stops the listeners and removes the control socket.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.state.control);
        eprintln!("postern: stopped");
    }
}
