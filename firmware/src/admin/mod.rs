//! Administration: the command line, the control socket a running daemon answers on, and the
//! commands both they and the serial console carry out.

pub mod cli;
pub mod commands;
pub mod control;
mod status;
pub mod words;

use std::sync::Arc;

pub use commands::AdminCommand;
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

    /// [`Admin::execute`] for callers outside the runtime, like the serial console's thread.
    pub fn execute_blocking(&self, command: AdminCommand) -> Reply {
        self.runtime.block_on(self.execute(command))
    }

    /// Carries out one command and says how it went.
    pub async fn execute(&self, command: AdminCommand) -> Reply {
        match command {
            AdminCommand::Status => Reply::ok(status::render(&self.state)),
        }
    }
}
