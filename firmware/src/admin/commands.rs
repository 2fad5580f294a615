//! The admin commands: one tree shared by the command line (sent to the daemon over the control
//! socket) and the serial console prompt, so both accept exactly the same words.

use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// A command a running daemon carries out.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Show version, uptime, flash size and usage, and listeners.
    Status,
}

impl AdminCommand {
    /// Whether the command changes state and wants a confirmation at a terminal first.
    pub fn confirmation(&self) -> Option<&'static str> {
        match self {
            AdminCommand::Status => None,
        }
    }
}
