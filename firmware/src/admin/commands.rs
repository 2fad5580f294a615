//! The admin commands: one tree shared by the command line (sent to the daemon over the control
//! socket, or run on a flash file directly with `--flash`) and the serial console prompt, so
//! both accept exactly the same words.

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
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        args: Vec<String>,
    },
    /// The flash: geometry, usage, wear; formatting.
    #[command(subcommand)]
    Flash(FlashCommand),
}

/// `postern flash ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum FlashCommand {
    /// Geometry, usage per region, segments live and free, erase counts, bytes written since start.
    Info,
    /// Erase the flash and lay out an empty spool: every queued message, account and setting on it
    /// is lost. Only with no daemon running: `postern flash format --flash FILE`.
    Format {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl AdminCommand {
    /// The question to ask at a terminal before the command is carried out, if it destroys data
    /// and the admin did not say `--yes`.
    pub fn confirmation(&self) -> Option<&'static str> {
        match self {
            AdminCommand::Flash(FlashCommand::Format { yes: false }) => {
                Some("Format the flash? Every queued message, account and setting on it is lost.")
            }
            _ => None,
        }
    }
}
