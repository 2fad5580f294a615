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
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        args: Vec<String>,
    },
    /// The flash: geometry, usage, wear; formatting.
    #[command(subcommand)]
    Flash(FlashCommand),
    /// The mail queue, as postqueue and postsuper handle it.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The certificate STARTTLS and port 465 present.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Show the box's local settings (the LDAP connection), as zmlocalconfig does; `-e
    /// KEY=VALUE...` sets them (`KEY=@FILE` reads the value from a file).
    Localconfig {
        /// Show secrets (zimbra_ldap_password) instead of hiding them.
        #[arg(short = 's')]
        show_secrets: bool,
        /// Set KEY=VALUE pairs instead of showing keys.
        #[arg(short = 'e')]
        edit: bool,
        /// Keys to show, or KEY=VALUE pairs with -e.
        args: Vec<String>,
    },
    /// The directory cache synced from LDAP.
    #[command(subcommand)]
    Ldap(LdapCommand),
}

/// `postern ldap ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum LdapCommand {
    /// Sync now (a full sync, which also finds deletions) and print what changed.
    Sync {
        /// Only what changed since the last sync (as the periodic poll does).
        #[arg(long)]
        incremental: bool,
    },
    /// The last sync (time, kind, entries, duration, error), the entries skipped and why, and
    /// the cache's age.
    Status,
}

/// `postern tls ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum TlsCommand {
    /// Replace the certificate (self-signed at first start) with this chain and key, both PEM.
    /// Checked before it is stored; used from the next start of the services.
    Install {
        /// The certificate chain, PEM, server certificate first.
        cert: std::path::PathBuf,
        /// The private key, PEM.
        key: std::path::PathBuf,
    },
    /// Show the certificate chain in use (PEM).
    Show,
}

/// `postern queue ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum QueueCommand {
    /// List queued mail, like `postqueue -p` (`*` active, `!` on hold); `--json` like `postqueue -j`.
    List {
        /// One JSON object per message and line.
        #[arg(long)]
        json: bool,
    },
    /// One message: envelope, each recipient's state and next hop, next attempt, last reason.
    Show {
        /// The queue id.
        qid: String,
        /// Print the message itself too, like `postcat -b`.
        #[arg(long)]
        body: bool,
    },
    /// Put a message (or ALL) on hold: it is not tried until released (`postsuper -h`).
    Hold { target: String },
    /// Release a held message (or ALL) (`postsuper -H`).
    Release { target: String },
    /// Try a message (or ALL) again now, with the current routing (`postsuper -r`).
    Requeue { target: String },
    /// Delete a message (or ALL) from the queue: its mail is lost (`postsuper -d`).
    Delete {
        target: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Try deferred mail now: all of it, or what waits for one destination (`postqueue -f`, `-s`).
    Flush {
        /// Only mail whose next hop is this host or domain.
        destination: Option<String>,
    },
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
            AdminCommand::Queue(QueueCommand::Delete { yes: false, .. }) => {
                Some("Delete from the queue? The mail is lost, and nobody is told.")
            }
            _ => None,
        }
    }
}
