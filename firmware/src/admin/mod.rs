//! Administration: the command line, the control socket a running daemon answers on, and the
//! commands both they and the serial console carry out.

pub mod cli;
pub mod commands;
pub mod control;
pub mod ldap;
mod prov;
mod queue;
mod status;
mod tls;
pub mod words;

use std::sync::Arc;

pub use commands::{AdminCommand, FlashCommand, LdapCommand, QueueCommand, TlsCommand};
pub use control::Reply;

use crate::daemon::State;

/// Carries out admin commands against a running daemon. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    state: Arc<State>,
    runtime: tokio::runtime::Handle,
}

impl Admin {
    /// Must be called inside the daemon's tokio runtime.
    pub fn new(state: Arc<State>) -> Admin {
        Admin {
            state,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// [`Admin::execute`] for callers outside the runtime, like the serial console's thread.
    pub fn execute_blocking(&self, command: AdminCommand) -> Reply {
        self.runtime.block_on(self.execute(command))
    }

    /// Carries out one command and says how it went.
    pub async fn execute(&self, command: AdminCommand) -> Reply {
        match command {
            AdminCommand::Status => {
                let info = self.state.spool.info().await.ok();
                let queue = match &self.state.queue {
                    Some(q) => Some(q.list().await),
                    None => None,
                };
                Reply::ok(status::render(&self.state, info.as_ref(), queue.as_deref()))
            }
            AdminCommand::Prov { args } => {
                let (state, runtime) = (self.state.clone(), self.runtime.clone());
                match tokio::task::spawn_blocking(move || prov::run(&state, &runtime, &args)).await
                {
                    Ok(reply) => reply,
                    Err(e) => Reply::failed(format!("prov did not finish: {e}\n")),
                }
            }
            AdminCommand::Flash(FlashCommand::Info) => match self.state.spool.info().await {
                Ok(info) => Reply::ok(format!("path: {}\n{info}", self.state.flash_path.display())),
                Err(e) => Reply::failed(format!("flash info: {e}\n")),
            },
            AdminCommand::Queue(cmd) => queue::run(&self.state, cmd).await,
            AdminCommand::Tls(cmd) => tls::run(&self.state, cmd).await,
            AdminCommand::Localconfig {
                show_secrets,
                edit,
                args,
            } => ldap::localconfig(&self.state.ldap, show_secrets, edit, &args).await,
            AdminCommand::Ldap(LdapCommand::Sync { incremental }) => {
                ldap::sync(&self.state.ldap, incremental).await
            }
            AdminCommand::Ldap(LdapCommand::Status) => ldap::status(&self.state.ldap).await,
            AdminCommand::Flash(FlashCommand::Format { .. }) => Reply::failed(format!(
                "the flash is in use by the running services: stop them, then run `postern flash format --flash {}`\n",
                self.state.flash_path.display()
            )),
        }
    }
}
