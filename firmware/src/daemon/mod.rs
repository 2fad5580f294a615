//! The services both running modes start: the flash and its spool, the directory, the queue and
//! its delivery agents, the SMTP listeners, the control socket. Host mode (`postern run`) and
//! appliance mode (PID 1) differ only in what they do around this.

mod control;
mod error;
pub mod flash;
pub mod ldap;
mod seams;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use error::DaemonError;
pub use flash::FlashSpec;

pub use crate::inbound::ListenerKind;

use crate::admin::Admin;
use crate::config::MtaConfig;
use crate::delivery::{Client, ClientSettings, HickoryDns};
use crate::directory::{Directory, SharedDirectory};
use crate::inbound::{self, InboundContext, Limits};
use crate::log::LogSink;
use crate::queue::runner::{self, QueueHandle, RunnerConfig};
use crate::queue::{QueueSettings, QueuedMessage};
use crate::route::{self, ClientFacts, Decision};
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
pub struct State {
    pub started: Instant,
    pub hostname: String,
    pub flash_path: PathBuf,
    pub flash_size: u64,
    pub spool: SpoolHandle,
    /// Accounts, aliases, domains and MTA settings, as sessions see them.
    pub directory: Arc<SharedDirectory>,
    /// `None` when running offline on a flash (`postern prov --flash FILE`).
    pub queue: Option<QueueHandle>,
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// `None` when running offline.
    pub control: Option<PathBuf>,
    /// The LDAP sync (its service only when running).
    pub ldap: crate::admin::ldap::LdapContext,
    /// Held for as long as the state lives: no second postern opens the flash meanwhile.
    _flash_lock: hal::flash::FlashLock,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("hostname", &self.hostname)
            .field("flash", &self.flash_path)
            .finish()
    }
}

/// A running daemon. Dropping it stops nothing: call [`Daemon::shutdown`].
pub struct Daemon {
    state: Arc<State>,
    admin: Admin,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The flash opened and read: spool, directory, TLS identity.
struct Opened {
    flash: flash::OpenFlash,
    directory: Arc<SharedDirectory>,
}

impl Daemon {
    /// Opens the flash, starts the queue, binds every listener and the control socket, and starts
    /// serving. Must be called inside a tokio runtime. Nothing is served unless everything could
    /// be bound.
    pub async fn start(opts: Options) -> Result<Daemon, DaemonError> {
        // The flash first: its lock says whether another postern already runs on it.
        let Opened { flash, directory } = open(&opts.flash).await?;
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
        let spool = flash.spool.clone();
        let identity = tls::identity(&spool, &opts.hostname, &opts.flash.path).await?;
        let tls_config = inbound::tls::server_config(&identity)
            .map_err(|e| DaemonError::Tls(format!("the stored certificate cannot be used: {e}")))?;

        let config = directory.snapshot().config().clone();
        let listeners: Vec<(ListenerKind, SocketAddr)> =
            bound.iter().map(|(k, a, _)| (*k, *a)).collect();
        let own: Vec<SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
        let queue = start_queue(&spool, &directory, &config, &opts.hostname, &own).await?;

        let state = Arc::new(State {
            started: Instant::now(),
            hostname: opts.hostname.clone(),
            flash_path: flash.path.clone(),
            flash_size: flash.size,
            spool: spool.clone(),
            directory: directory.clone(),
            queue: Some(queue.clone()),
            listeners,
            control: Some(opts.control.clone()),
            ldap: ldap::context(&spool, &directory, true).await,
            _flash_lock: flash.into_lock(),
        });
        let ctx = Arc::new(InboundContext::new(
            opts.hostname.clone(),
            limits(&config),
            Some(tls_config),
            seams::Router {
                directory: directory.clone(),
            },
            seams::SpoolStore {
                spool: spool.clone(),
                queue: queue.clone(),
                directory: directory.clone(),
            },
            Some(seams::DirectoryAuth {
                directory: directory.clone(),
            }),
        ));
        let admin = Admin::new(state.clone());
        let mut tasks = Vec::new();
        for (kind, addr, listener) in bound {
            eprintln!("postern: {kind} listening on {addr}");
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = inbound::serve(kind, listener, ctx).await {
                    eprintln!("postern: {kind} listener on {addr} stopped: {e}");
                }
            }));
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

    /// Stops the listeners and the queue and removes the control socket. What was acknowledged
    /// is on flash already (every 250 waited for its sync), so there is nothing to flush.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(queue) = &self.state.queue {
            queue.shutdown().await;
        }
        if let Some(control) = &self.state.control {
            let _ = std::fs::remove_file(control);
        }
        eprintln!("postern: stopped");
    }
}

/// Opens the flash for an admin command run without a daemon (`postern prov --flash FILE`):
/// the same state, with no listeners and no queue. The flash lock keeps a daemon off it meanwhile.
pub async fn offline(spec: &FlashSpec, hostname: String) -> Result<Admin, DaemonError> {
    let Opened { flash, directory } = open(spec).await?;
    let ldap = ldap::context(&flash.spool, &directory, false).await;
    Ok(Admin::new(Arc::new(State {
        started: Instant::now(),
        hostname,
        flash_path: flash.path.clone(),
        flash_size: flash.size,
        spool: flash.spool.clone(),
        directory,
        queue: None,
        listeners: Vec::new(),
        control: None,
        ldap,
        _flash_lock: flash.into_lock(),
    })))
}

async fn open(spec: &FlashSpec) -> Result<Opened, DaemonError> {
    let spec2 = spec.clone();
    let mut flash =
        tokio::task::spawn_blocking(move || flash::open(&spec2, SpoolSettings::default()))
            .await
            .map_err(|e| DaemonError::FlashOpen(spec.path.clone(), std::io::Error::other(e)))??;
    report_recovery(&flash);
    // The writer thread stays detached: every acknowledged record was synced before its answer.
    drop(flash.take_writer());
    let directory = match flash.spool.read_slot(Region::Directory).await {
        Ok(Some(bytes)) => {
            Directory::decode(&bytes).map_err(|e| DaemonError::Directory(spec.path.clone(), e))?
        }
        Ok(None) => Directory::default(),
        Err(e) => return Err(DaemonError::Spool(spec.path.clone(), e)),
    };
    for (attr, value) in directory.config().unenforced() {
        eprintln!("postern: warning: ignoring {attr} {value} on flash: not supported yet");
    }
    let (accounts, aliases) = directory.counts();
    eprintln!(
        "postern: directory: {} domains, {accounts} accounts, {aliases} aliases",
        directory.domains().count()
    );
    Ok(Opened {
        flash,
        directory: Arc::new(SharedDirectory::new(directory)),
    })
}

/// Starts the queue manager with the delivery agents, and hands it every message recovered from
/// the spool.
async fn start_queue(
    spool: &SpoolHandle,
    directory: &Arc<SharedDirectory>,
    config: &MtaConfig,
    hostname: &str,
    own_listeners: &[SocketAddr],
) -> Result<QueueHandle, DaemonError> {
    let dns = match HickoryDns::from_system() {
        Ok(dns) => dns,
        Err(e) => {
            eprintln!("postern: no system resolver ({e}); MX lookups go to 127.0.0.1");
            HickoryDns::with_servers(&[std::net::Ipv4Addr::LOCALHOST.into()])
                .map_err(DaemonError::Dns)?
        }
    };
    // Delivery refuses to hand mail to these: it would loop back to this box.
    let mut settings = ClientSettings::new(hostname);
    settings.own_listeners = own_listeners.to_vec();
    let client = Arc::new(Client::new(settings, dns));
    let dir = directory.clone();
    let bounce_route: runner::BounceRoute = Arc::new(move |addr: &str| {
        let d = dir.snapshot();
        match route::route(addr, &d, d.config(), &ClientFacts::LOCAL) {
            Decision::Accept(targets) => targets.first().next_hop.transport().cloned(),
            Decision::Reject(_) => None,
        }
    });
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: queue_settings(config),
            hostname: hostname.to_string(),
            route: bounce_route,
            log: LogSink::stderr(),
            start_unix: None,
        },
        Arc::new(seams::SpoolQueue {
            spool: spool.clone(),
        }),
        client,
    );
    let recovered = spool
        .list()
        .await
        .map_err(|e| DaemonError::Spool(PathBuf::new(), e))?;
    for m in recovered {
        queue
            .add(QueuedMessage::from_envelope(
                m.qid,
                &m.envelope,
                &m.outcomes,
                m.state,
                m.size,
            ))
            .await;
    }
    Ok(queue)
}

/// The queue's timing from the MTA settings (Postfix's defaults unless changed with `mcf`).
fn queue_settings(c: &MtaConfig) -> QueueSettings {
    QueueSettings {
        queue_run_delay: c.queue_run_delay.as_secs(),
        minimal_backoff_time: c.minimal_backoff_time.as_secs(),
        maximal_backoff_time: c.maximal_backoff_time.as_secs(),
        maximal_queue_lifetime: c.maximal_queue_lifetime.as_secs(),
        bounce_queue_lifetime: c.bounce_queue_lifetime.as_secs(),
        delay_warning_time: c.delay_warning_time.as_secs(),
        ..QueueSettings::default()
    }
}

/// The inbound limits from the MTA settings.
fn limits(c: &MtaConfig) -> Limits {
    Limits {
        message_size_limit: c.max_message_size,
        recipient_limit: c.recipient_limit as usize,
        client_limit_exceptions: c.my_networks.clone(),
        ..Limits::default()
    }
}

fn report_recovery(flash: &flash::OpenFlash) {
    let r = &flash.recovery;
    if flash.formatted {
        eprintln!(
            "postern: flash {} was blank: formatted",
            flash.path.display()
        );
    }
    eprintln!(
        "postern: spool recovered: {} messages queued, {} unfinished dropped, {} damaged records",
        r.messages,
        r.dropped_uncommitted,
        r.damaged.len()
    );
    for lost in &r.lost {
        eprintln!(
            "postern: {}: lost to flash damage: {}",
            lost.qid, lost.reason
        );
    }
}
