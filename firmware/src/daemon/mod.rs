//! The services both running modes start: the flash and its spool, the directory, the queue and
//! its delivery agents, the SMTP listeners, the control socket. Host mode (`postern run`) and
//! appliance mode (PID 1) differ only in what they do around this.

pub mod control;
mod dmarc_report;
mod error;
pub mod flash;
pub mod ldap;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use error::DaemonError;
pub use flash::FlashSpec;

pub use crate::inbound::ListenerKind;

use crate::admin::{Admin, BoxFacts, Handles};
use crate::config::MtaConfig;
use crate::content::dkim::KeyRing;
use crate::delivery::{Client, ClientSettings, ConfiguredDns, HickoryDns, NameLookups};
use crate::directory::{Directory, SharedDirectory};
use crate::inbound::tls::{self, TlsError};
use crate::inbound::{self, InboundContext, Recipients, SpoolStore};
use crate::log::{LogSink, Program};
use crate::policy::dns::HickoryResolve;
use crate::policy::{Dns, Policy};
use crate::queue::runner::{self, QueueHandle, RunnerConfig};
use crate::route::{self, Decision, Relay};
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
    /// DNS servers for the restrictions and delivery; empty: the system's resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// How long one DNS lookup of the restrictions may take.
    pub dns_timeout: std::time::Duration,
    /// The Prometheus endpoint, if any.
    pub metrics: Option<MetricsEndpoint>,
}

/// Where `GET /metrics` is answered, and for whom.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    pub addr: SocketAddr,
    /// Clients outside these networks get no answer.
    pub allow: crate::config::NetworkList,
}

/// A running daemon. Dropping it stops nothing: call [`Daemon::shutdown`].
pub struct Daemon {
    admin: Admin,
    queue: QueueHandle,
    /// DMARC aggregate reports: the interval in progress is reported at a clean stop.
    reporter: Arc<dmarc_report::Reporter>,
    control: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held while the daemon runs: no second postern opens the flash meanwhile.
    _flash_lock: hal::flash::FlashLock,
}

/// The handles of a flash opened for admin commands without a daemon (`postern prov --flash
/// FILE`): no listeners and no queue. The flash lock keeps a daemon off it for as long as this
/// lives.
pub struct Offline {
    admin: Admin,
    /// Holds the flash's lock, and hands the opened spool to [`Daemon::start_from`].
    opened: Opened,
}

impl Offline {
    pub fn admin(&self) -> &Admin {
        &self.admin
    }
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
        let opened = open(&opts.flash).await?;
        Daemon::serve(opts, opened).await
    }

    /// [`Daemon::start`] on the flash an admin had open without the services (the appliance's
    /// first-boot wizard, its stored settings): the spool is not scanned a second time, which
    /// with a backlog of 100 000 messages under QEMU took seconds.
    pub async fn start_from(opts: Options, offline: Offline) -> Result<Daemon, DaemonError> {
        let Offline { admin, opened } = offline;
        drop(admin);
        Daemon::serve(opts, opened).await
    }

    async fn serve(opts: Options, opened: Opened) -> Result<Daemon, DaemonError> {
        let Opened { flash, directory } = opened;
        settings::raise_open_files(directory.snapshot().config());
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
        // `--metrics` wins over the stored setting (the appliance's way to set it).
        let pinned = opts.metrics.is_some();
        let endpoint = match opts.metrics.clone() {
            Some(m) => Some(m),
            None => match crate::admin::metrics_setting::stored(&flash.spool).await {
                Ok(stored) => stored.map(|(addr, allow)| MetricsEndpoint { addr, allow }),
                Err(e) => {
                    master(&format!(
                        "warning: metrics setting unreadable, no endpoint: {e}"
                    ));
                    None
                }
            },
        };
        let metrics = match endpoint {
            Some(m) => Some((
                tokio::net::TcpListener::bind(m.addr)
                    .await
                    .map_err(|e| DaemonError::Metrics(m.addr, e))?,
                m,
            )),
            None => None,
        };
        let control = control::bind(&opts.control)?;
        let spool = flash.spool.clone();
        let (tls_config, live_cert) = tls_config(&spool, &opts.hostname, &opts.flash.path).await?;

        let config = directory.snapshot().config().clone();
        // Watched from the settings the services are built with: no change after them is missed.
        let changes = directory.settings_changes();
        crate::log::remote::set_target(config.syslog_target, &opts.hostname);
        let listeners: Vec<(ListenerKind, SocketAddr)> =
            bound.iter().map(|(k, a, _)| (*k, *a)).collect();
        let own: Vec<SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
        let queue = start_queue(&spool, &directory, &config, &opts, &own).await?;

        let dkim = dkim_keys(&spool).await;
        let ctx = inbound_context(
            &opts, &config, tls_config, &directory, &spool, &queue, &dkim,
        );
        // From here on an `mcf` or an LDAP sync's new settings reach the services as they run.
        let follower = tokio::spawn(settings::follow(
            settings::Following {
                directory: directory.clone(),
                changes,
                applied: config.clone(),
            },
            ctx.clone(),
            queue.clone(),
            opts.hostname.clone(),
        ));
        // LDAP server names are looked up where delivery looks names up.
        directory.set_dns_servers(&opts.dns_servers);
        let ldap = ldap::context(&spool, &directory, &opts.hostname, true).await;
        let endpoint = Arc::new(crate::admin::metrics_endpoint::Endpoint::default());
        let handles = Handles {
            spool,
            directory,
            queue: Some(queue.clone()),
            ldap,
            metrics: Some(endpoint.clone()),
            dkim,
            tls: Some(live_cert),
            facts: Arc::new(BoxFacts {
                started: Instant::now(),
                hostname: opts.hostname.clone(),
                flash_path: flash.path.clone(),
                flash_size: flash.size,
                listeners,
                control: Some(opts.control.clone()),
                dns_servers: opts.dns_servers.clone(),
            }),
        };
        let admin = Admin::new(handles.clone());
        let (admin_directory, admin_spool) = (handles.directory.clone(), handles.spool.clone());
        // From here on the mail log is also kept in the ring on flash.
        let keeper = handles.spool.clone();
        crate::log::keep::keep_in(&opts.hostname, Arc::new(move |l| keeper.log_line(l)));
        let mut tasks = vec![follower];
        if let Some((listener, m)) = metrics {
            let addr = listener.local_addr().unwrap_or(m.addr);
            master(&format!("metrics at http://{addr}/metrics for {}", m.allow));
            endpoint.start(listener, m.allow, pinned, handles).await;
        }
        for (kind, addr, listener) in bound {
            master(&format!("{kind} listening on {addr}"));
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = inbound::serve(kind, listener, ctx).await {
                    master(&format!("{kind} listener on {addr} stopped: {e}"));
                }
            }));
        }
        let reporter = Arc::new(dmarc_report::Reporter {
            auth: ctx.policy.sender_auth().clone(),
            directory: admin_directory,
            spool: admin_spool,
            queue: queue.clone(),
            hostname: opts.hostname.clone(),
            log: LogSink::stderr(),
            serial: Default::default(),
            stopping: Default::default(),
        });
        tasks.push(tokio::spawn(reporter.clone().run()));
        master(&format!("control socket at {}", opts.control.display()));
        tasks.push(tokio::spawn(control::serve(control, admin.clone())));
        Ok(Daemon {
            admin,
            queue,
            reporter,
            control: opts.control,
            tasks,
            _flash_lock: flash.into_lock(),
        })
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
        // The listeners are closed: nothing more is counted. Bounded: DNS may be down.
        let limit = std::time::Duration::from_secs(15);
        if tokio::time::timeout(limit, self.reporter.report_at_stop())
            .await
            .is_err()
        {
            master("warning: DMARC reports of the last interval not queued in time");
        }
        self.queue.shutdown().await;
        let _ = std::fs::remove_file(&self.control);
        master("stopped");
        crate::log::keep::keep_nowhere();
    }
}

/// A line of the services' own (start, stop, recovery), as Postfix's master writes them.
pub(crate) fn master(line: &str) {
    LogSink::stderr().line(Program::Master, line);
}

/// Opens the flash for an admin command run without a daemon (`postern prov --flash FILE`).
pub async fn offline(spec: &FlashSpec, hostname: String) -> Result<Offline, DaemonError> {
    let opened = open(spec).await?;
    let (flash, directory) = (&opened.flash, opened.directory.clone());
    let ldap = ldap::context(&flash.spool, &directory, &hostname, false).await;
    let admin = Admin::new(Handles {
        spool: flash.spool.clone(),
        directory,
        queue: None,
        ldap,
        metrics: None,
        // Offline nothing signs: the services load the stored keys when they start.
        dkim: KeyRing::default(),
        // Nor serves TLS: the services read the stored certificate when they start.
        tls: None,
        facts: Arc::new(BoxFacts {
            started: Instant::now(),
            hostname,
            flash_path: flash.path.clone(),
            flash_size: flash.size,
            listeners: Vec::new(),
            control: None,
            dns_servers: Vec::new(),
        }),
    });
    Ok(Offline { admin, opened })
}

/// The listeners' context as the daemon builds it.
type Inbound = InboundContext<Recipients, SpoolStore, Arc<SharedDirectory>>;

/// What every session asks: the policy stage, the router over the live directory, the content
/// checks, the spool and the queue, AUTH against the directory.
fn inbound_context(
    opts: &Options,
    config: &MtaConfig,
    tls: Arc<rustls::ServerConfig>,
    directory: &Arc<SharedDirectory>,
    spool: &SpoolHandle,
    queue: &QueueHandle,
    dkim: &KeyRing,
) -> Arc<Inbound> {
    let policy = Policy::with_dns(
        settings::connection_limits(config),
        policy_dns(opts),
        &opts.hostname,
        LogSink::stderr(),
    );
    Arc::new(InboundContext {
        hostname: opts.hostname.clone(),
        limits: settings::limits(config).into(),
        tls: Some(tls),
        policy: policy.clone(),
        recipients: Recipients {
            directory: directory.clone(),
            policy: policy.clone(),
            log: LogSink::stderr(),
        },
        store: SpoolStore {
            spool: spool.clone(),
            queue: queue.clone(),
            directory: directory.clone(),
            log: LogSink::stderr(),
            policy,
            dkim: dkim.clone(),
        },
        auth: Some(directory.clone()),
        log: LogSink::stderr(),
    })
}

/// The DKIM signing keys stored on flash, in use from now on; a key that does not load is named.
async fn dkim_keys(spool: &SpoolHandle) -> KeyRing {
    let ring = KeyRing::default();
    match crate::content::dkim::store::load(spool).await {
        Ok(records) => {
            for (domain, e) in ring.replace(&records) {
                master(&format!("warning: DKIM key of {domain} not used: {e}"));
            }
        }
        Err(e) => master(&format!(
            "warning: DKIM keys not read: {e}; nothing is signed"
        )),
    }
    ring
}

/// The restrictions' resolver: the servers given, else the system's; without either, lookups
/// fail for now and the restrictions that need them defer.
fn policy_dns(opts: &Options) -> Dns {
    let resolver = if opts.dns_servers.is_empty() {
        HickoryResolve::from_system(opts.dns_timeout)
    } else {
        HickoryResolve::with_servers(&opts.dns_servers, opts.dns_timeout)
    };
    match resolver {
        Ok(r) => Dns::hickory(r, opts.dns_timeout),
        Err(e) => {
            master(&format!(
                "warning: {e}: restrictions that need DNS will defer"
            ));
            Dns::none()
        }
    }
}

/// The listeners' TLS: the box's identity (made and stored at first start), checked by rustls,
/// and the holder `postern tls install` replaces it in.
async fn tls_config(
    spool: &SpoolHandle,
    hostname: &str,
    flash: &std::path::Path,
) -> Result<(Arc<rustls::ServerConfig>, Arc<tls::LiveCert>), DaemonError> {
    let on_flash = |e| match e {
        TlsError::Stored(e) => DaemonError::Config(flash.to_path_buf(), e),
        TlsError::Flash(e) => DaemonError::Spool(flash.to_path_buf(), e),
        e => DaemonError::Tls(e),
    };
    let (identity, origin) = tls::load_or_make(spool, hostname).await.map_err(on_flash)?;
    if origin == tls::Origin::MadeSelfSigned {
        master(&format!(
            "made a self-signed TLS certificate for {hostname}"
        ));
    }
    let live = tls::LiveCert::new(&identity).map_err(DaemonError::StoredTlsUnusable)?;
    let config = tls::server_config_with(live.clone()).map_err(DaemonError::StoredTlsUnusable)?;
    Ok((config, live))
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
    let directory = match flash.spool.read_slot_journaled(Region::Directory).await {
        Ok(Some(slot)) => {
            let (directory, replayed) = Directory::decode_journaled(&slot.data, &slot.journal)
                .map_err(|e| DaemonError::Directory(spec.path.clone(), e))?;
            if let Some(e) = &replayed.error {
                master(&format!(
                    "warning: directory journal: {} of {} records applied, then: {e}; the \
                     directory is as it was before that record, and the first LDAP sync is a \
                     full one",
                    replayed.applied, replayed.records
                ));
            }
            directory
        }
        Ok(None) => Directory::default(),
        Err(e) => return Err(DaemonError::Spool(spec.path.clone(), e)),
    };
    for (attr, value) in directory.config().unenforced() {
        master(&format!(
            "warning: ignoring {attr} {value} on flash: not supported yet"
        ));
    }
    let (accounts, aliases) = directory.counts();
    master(&format!(
        "directory: {} domains, {accounts} accounts, {aliases} aliases",
        directory.domains().count()
    ));
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
    opts: &Options,
    own_listeners: &[SocketAddr],
) -> Result<QueueHandle, DaemonError> {
    let hostname = opts.hostname.as_str();
    let system = || match opts.dns_servers.as_slice() {
        [] => HickoryDns::from_system(),
        servers => HickoryDns::with_servers_on(servers),
    };
    let dns = match system() {
        Ok(dns) => dns,
        Err(e) if !opts.dns_servers.is_empty() => return Err(DaemonError::Dns(e)),
        Err(e) => {
            master(&format!(
                "no system resolver ({e}); MX lookups go to 127.0.0.1"
            ));
            HickoryDns::with_servers(&[std::net::Ipv4Addr::LOCALHOST.into()])
                .map_err(DaemonError::Dns)?
        }
    };
    // DNS lookups on or off and the hosts table, as the directory's config says at each lookup.
    let dir = directory.clone();
    let dns = ConfiguredDns::new(
        dns,
        Arc::new(move || NameLookups::from_config(dir.snapshot().config())),
    );
    // Delivery refuses to hand mail to these: it would loop back to this box.
    let mut settings = ClientSettings::new(hostname);
    settings.own_listeners = own_listeners.to_vec();
    let client = Arc::new(Client::new(settings, dns));
    let dir = directory.clone();
    // Bounces and delay warnings are the box's own mail: they may go anywhere.
    let bounce_route: runner::BounceRoute = Arc::new(move |addr: &str| {
        let d = dir.snapshot();
        match route::route(addr, &d, d.config(), Relay::Permitted) {
            Decision::Accept(targets) => targets.first().next_hop.transport().cloned(),
            Decision::Reject(_) => None,
        }
    });
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: settings::queue_settings(config),
            hostname: hostname.to_string(),
            route: bounce_route,
            log: LogSink::stderr(),
            start_unix: None,
        },
        Arc::new(spool.clone()),
        client,
    );
    queue
        .recover(spool)
        .await
        .map_err(|e| DaemonError::Spool(PathBuf::new(), e))?;
    Ok(queue)
}

fn report_recovery(flash: &flash::OpenFlash) {
    let r = &flash.recovery;
    if flash.formatted {
        master(&format!(
            "flash {} was blank: formatted",
            flash.path.display()
        ));
    }
    master(&format!(
        "spool recovered: {} messages queued, {} unfinished dropped, {} damaged records",
        r.messages,
        r.dropped_uncommitted,
        r.damaged.len()
    ));
    for lost in &r.lost {
        master(&format!(
            "{}: lost to flash damage: {}",
            lost.qid, lost.reason
        ));
    }
}
