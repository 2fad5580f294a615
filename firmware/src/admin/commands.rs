//! The admin commands: one tree shared by the command line (sent to the daemon over the control
//! socket) and the serial console prompt, so both accept exactly the same words.

use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// A command a running daemon carries out.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Show version, uptime, flash size and usage, and listeners.
    Status,
    /// Provision accounts, aliases, domains and MTA settings, as zmprov does
    /// (ca, ma, da, ga, gaa, aaa, raa, sp, cd, md, dd, gd, gad, mcf, gacf; `prov help` lists them).
    #[command(disable_help_flag = true)]
    Prov {
        /// The zmprov command and its arguments, e.g. `ca foo@example.com secret zimbraMailTransport smtp:mail.example.com:25`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        args: Vec<String>,
    },
}

impl AdminCommand {
    /// Whether the command changes state and wants a confirmation at a terminal first.
    pub fn confirmation(&self) -> Option<&'static str> {
        match self {
            AdminCommand::Status | AdminCommand::Prov { .. } => None,
        }
    }
}
