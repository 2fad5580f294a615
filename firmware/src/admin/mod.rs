//! Administration: the commands the command line, the control socket and the serial console carry
//! out, and the control socket's wire format. An operation takes the handles it needs (spool,
//! queue, directory, what the box is running), never the daemon: `daemon` builds an [`Admin`]
//! from its handles, and a command run on a flash without a daemon gets the same handles.

pub mod clock;
pub mod commands;
pub mod control;
pub mod diag;
mod dkim;
pub mod ldap;
pub mod maillog;
pub mod metrics;
pub mod metrics_endpoint;
pub mod metrics_setting;
mod output;
mod prov;
mod queue;
pub mod setup;
mod status;
mod tls;
pub mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use commands::{
    AdminCommand, BulkArgs, DiagCommand, DkimCommand, FilterArgs, FlashCommand, LdapCommand,
    LogArgs, MetricsCommand, QueueCommand, Secret, SetupCommand, TlsCommand,
};
pub use control::Reply;

use crate::directory::SharedDirectory;
use crate::inbound::ListenerKind;
use crate::queue::runner::QueueHandle;
use crate::spool::SpoolHandle;

/// What `postern status` tells of the box besides its spool and queue.
#[derive(Debug, Clone)]
pub struct BoxFacts {
    pub started: Instant,
    pub hostname: String,
    pub flash_path: PathBuf,
    pub flash_size: u64,
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// `None` when running offline on a flash (`postern prov --flash FILE`).
    pub control: Option<PathBuf>,
    /// The DNS servers delivery asks (`run --dns`); empty: /etc/resolv.conf's, as delivery.
    pub dns_servers: Vec<SocketAddr>,
}

/// The handles admin operations work through.
#[derive(Clone)]
pub struct Handles {
    pub spool: SpoolHandle,
    /// Accounts, aliases, domains and MTA settings, as sessions see them.
    pub directory: Arc<SharedDirectory>,
    /// `None` when running offline: the queue runs only in the daemon.
    pub queue: Option<QueueHandle>,
    pub facts: Arc<BoxFacts>,
    /// The LDAP sync: its service (only in the daemon) and where its snapshots go.
    pub ldap: ldap::LdapContext,
    /// The Prometheus endpoint being served (only in the daemon).
    pub metrics: Option<Arc<metrics_endpoint::Endpoint>>,
    /// The DKIM keys the sessions sign with; `postern dkim` changes them here and on flash.
    pub dkim: crate::content::dkim::KeyRing,
    /// The certificate the listeners present (only in the daemon); `postern tls install`
    /// replaces it here and on flash.
    pub tls: Option<Arc<crate::inbound::tls::LiveCert>>,
}

/// Carries out admin commands. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    handles: Handles,
    runtime: tokio::runtime::Handle,
}

impl Admin {
    /// Must be called inside the tokio runtime the handles' tasks run on.
    pub fn new(handles: Handles) -> Admin {
        Admin {
            handles,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// [`Admin::execute`] for callers outside the runtime, like the serial console's thread.
    pub fn execute_blocking(&self, command: AdminCommand) -> Reply {
        self.runtime.block_on(self.execute(command))
    }

    /// [`Admin::execute_in_parts`] for callers outside the runtime, like the serial console's
    /// thread: each part is handed over on the caller's thread.
    pub fn execute_in_parts_blocking(
        &self,
        command: AdminCommand,
        part: impl FnMut(String) -> bool,
    ) -> Reply {
        self.runtime.block_on(self.execute_in_parts(command, part))
    }

    /// [`Admin::execute_to`] with each part handed to `part` as it comes, until it says false
    /// (its reader went away), which ends the listing.
    pub async fn execute_in_parts(
        &self,
        command: AdminCommand,
        mut part: impl FnMut(String) -> bool,
    ) -> Reply {
        // Two parts in flight at most: the listing waits for a slow reader, not RAM.
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let parts = async move {
            while let Some(p) = rx.recv().await {
                if !part(p) {
                    break;
                }
            }
        };
        tokio::join!(self.execute_to(command, tx), parts).0
    }

    /// The box's own settings as stored, for the console's login and first-boot check. Blocking,
    /// like [`Admin::execute_blocking`].
    pub fn box_config_blocking(
        &self,
    ) -> Result<crate::config::stored::BoxConfig, setup::BoxConfigError> {
        self.runtime.block_on(setup::read(&self.handles.spool))
    }

    /// The box's own settings as stored, from inside the runtime.
    pub async fn box_config(
        &self,
    ) -> Result<crate::config::stored::BoxConfig, setup::BoxConfigError> {
        setup::read(&self.handles.spool).await
    }

    /// As [`execute`](Self::execute), but a long listing (`queue list`) goes to `parts` as it
    /// is made; the reply carries the rest. The control socket answers this way.
    pub async fn execute_to(
        &self,
        command: AdminCommand,
        parts: tokio::sync::mpsc::Sender<String>,
    ) -> Reply {
        match (command, &self.handles.queue) {
            (AdminCommand::Queue(QueueCommand::List { json, filter }), Some(q)) => {
                let mut out = output::Output::parts(parts);
                queue::list(&self.handles.spool, q, json, &filter.filter(), &mut out).await
            }
            (command, _) => self.execute(command).await,
        }
    }

    /// Carries out one command and says how it went.
    pub async fn execute(&self, command: AdminCommand) -> Reply {
        let h = &self.handles;
        match command {
            AdminCommand::Status => {
                let info = h.spool.info().await.ok();
                let queue = match &h.queue {
                    Some(q) => Some(q.briefs().await),
                    None => None,
                };
                let directory = h.directory.snapshot();
                let mut text = status::render(
                    &h.facts,
                    directory.config(),
                    info.as_ref(),
                    queue.as_deref(),
                );
                let now = crate::mail::unix_now();
                text.push_str(&ldap::cache_line(&h.directory, now));
                text.push('\n');
                text.push_str(&clock::status_line(std::time::SystemTime::now()));
                text.push('\n');
                Reply::ok(text)
            }
            AdminCommand::Prov { args } => {
                let (directory, spool) = (h.directory.clone(), h.spool.clone());
                let runtime = self.runtime.clone();
                let run = move || prov::run(&directory, &spool, &runtime, &args);
                match tokio::task::spawn_blocking(run).await {
                    Ok(reply) => reply,
                    Err(e) => Reply::failed(format!("prov did not finish: {e}\n")),
                }
            }
            AdminCommand::Flash(FlashCommand::Info) => match h.spool.info().await {
                Ok(info) => Reply::ok(format!("path: {}\n{info}", h.facts.flash_path.display())),
                Err(e) => Reply::failed(format!("flash info: {e}\n")),
            },
            AdminCommand::Queue(cmd) => match &h.queue {
                Some(queue) => queue::run(&h.spool, queue, cmd).await,
                None => {
                    Reply::failed("the queue runs only in the daemon: ask it without --flash\n")
                }
            },
            AdminCommand::Tls(cmd) => {
                let live = h.tls.as_deref();
                tls::run(&h.spool, live, &h.facts.flash_path, &h.facts.hostname, cmd).await
            }
            AdminCommand::Dkim(cmd) => dkim::run(&h.spool, &h.dkim, cmd).await,
            AdminCommand::Localconfig {
                show_secrets,
                edit,
                args,
            } => ldap::localconfig(h, show_secrets, edit, &args).await,
            AdminCommand::Ldap(LdapCommand::Sync { incremental }) => {
                ldap::sync(h, incremental).await
            }
            AdminCommand::Ldap(LdapCommand::Status) => ldap::status(h).await,
            AdminCommand::Ldap(LdapCommand::Test {
                url,
                binddn,
                password,
                ..
            }) => ldap::test(h, url, binddn, password.map(|p| p.0)).await,
            AdminCommand::Log(args) => maillog::log(&h.spool, args).await,
            AdminCommand::Track { target } => {
                maillog::track(&h.spool, h.queue.as_ref(), &target).await
            }
            AdminCommand::Update(cmd) => match crate::update::command::run(cmd).await {
                Ok(text) => Reply::ok(text),
                Err(e) => Reply::failed(format!("{e}\n")),
            },
            AdminCommand::Metrics(MetricsCommand::Scrape) => Reply::ok(metrics::scrape(h).await),
            AdminCommand::Metrics(cmd) => metrics_setting::run(h, cmd).await,
            AdminCommand::Setup(cmd) => setup::run(&h.spool, cmd).await,
            AdminCommand::Diag(cmd) => diag::run(&h.facts, cmd).await,
            AdminCommand::Flash(FlashCommand::Format { .. }) => Reply::failed(format!(
                "the flash is in use by the running services: stop them, then run `postern flash format --flash {}`\n",
                h.facts.flash_path.display()
            )),
        }
    }
}
