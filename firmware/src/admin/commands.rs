//! The admin commands: one tree shared by the command line (sent to the daemon over the control
//! socket, or run on a flash file directly with `--flash`) and the serial console prompt, so
//! both accept exactly the same words.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::config::duration::{self, BadDuration, Unit};
use crate::queue::{Filter, QueueName, UnknownQueue};

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
    /// DKIM signing keys: mail from $mynetworks and authenticated clients is signed with the key
    /// of its From domain.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// The mail log kept on the flash (a ring: the newest lines), as mail.log would show it.
    Log(LogArgs),
    /// One message's way through the box from the kept mail log (queue, each delivery attempt
    /// with relay and reason, notifications, removal): by queue id, or every message to or from
    /// an address.
    Track {
        /// A queue id or an address.
        target: String,
    },
    /// Firmware update: the boot slots, checking and installing signed bundles (from a file on
    /// the box or an http:// or https:// URL).
    #[command(subcommand)]
    Update(crate::update::command::UpdateCommand),
    /// The Prometheus endpoint: its stored setting (off by default), or one scrape here.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// The box's own settings: host name, network, the serial console's password.
    #[command(subcommand)]
    Setup(SetupCommand),
    /// Show the box's local settings (the LDAP connection), as zmlocalconfig does; `-e
    /// KEY=VALUE...` sets them (`KEY=@FILE` reads the value from a file, `KEY=@@x` is `@x`).
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
    /// Checks from the box itself: DNS lookup, SMTP conversation, ping.
    #[command(subcommand)]
    Diag(DiagCommand),
}

/// `postern diag ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum DiagCommand {
    /// Look a name up (addresses and MX) with the resolver delivery uses.
    Dns { name: String },
    /// Connect to HOST[:PORT] (25 if none), read the greeting, EHLO, QUIT: the transcript.
    Smtp {
        #[arg(value_name = "HOST[:PORT]")]
        target: String,
    },
    /// Send ICMP echo requests to HOST, one a second, and show the replies.
    Ping {
        host: String,
        /// How many requests (1 to 20).
        #[arg(short = 'c', long, default_value_t = 4)]
        count: u16,
    },
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
    /// Connect and bind to each LDAP server as a sync would, with the stored localconfig or the
    /// values given here (nothing is stored), and say per server: bound, cannot connect, TLS
    /// failed, or invalid credentials.
    Test {
        /// Servers to try instead of the stored ldap_url (`ldap://host[:port]`, space separated).
        #[arg(long, value_name = "URLS")]
        url: Option<String>,
        /// Bind as this DN instead of the stored zimbra_ldap_userdn ("" for an anonymous bind).
        #[arg(long, value_name = "DN")]
        binddn: Option<String>,
        /// Read the bind password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The password read from standard input, or typed at the console.
        #[arg(skip)]
        password: Option<Secret>,
    },
}

/// A password carried in a command: never printed by `Debug` (commands may be logged).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// `postern log ...`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
pub struct LogArgs {
    /// Only lines containing these words (as they are: case matters, as with grep).
    #[arg(long, value_name = "WORDS")]
    pub grep: Option<String>,
    /// Only lines about this queue id.
    #[arg(long, value_name = "QID")]
    pub qid: Option<String>,
    /// At most this many of the newest lines.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub lines: usize,
    /// Keep printing new lines as they are logged (until interrupted).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Lines after this number only, each line preceded by its number (what --follow asks).
    #[arg(long, hide = true)]
    pub after: Option<u64>,
}

/// `postern metrics ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum MetricsCommand {
    /// The stored endpoint setting.
    Show,
    /// Answer `GET /metrics` at ADDR (e.g. 0.0.0.0:9154) for clients in --allow; stored on the
    /// flash and served at once (`postern run --metrics` overrides it while those services run).
    Set {
        listen: std::net::SocketAddr,
        /// Client networks allowed to scrape, as zimbraMtaMyNetworks writes them.
        #[arg(long, value_name = "NETS", default_value = "127.0.0.0/8 ::1/128")]
        allow: String,
    },
    /// Serve no endpoint from the next start of the services.
    Off,
    /// Print what a scrape would get now (the text exposition format).
    Scrape,
}

/// `postern setup ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum SetupCommand {
    /// Show the stored host name and network, and whether the console has a password.
    Show,
    /// Set the host name (fully qualified): the SMTP greeting from the next start.
    Hostname {
        name: crate::config::box_settings::Fqdn,
    },
    /// Set eth0's network: `dhcp`, or `ADDRESS/PREFIX` with `--gateway` inside that network.
    Network {
        /// `dhcp`, or e.g. `192.0.2.10/24`.
        address: String,
        /// The default gateway (static only).
        #[arg(long)]
        gateway: Option<std::net::Ipv4Addr>,
        /// A DNS server delivery asks, IPv4 or IPv6 (up to 3; none means the DHCP lease's and
        /// the routers' advertised ones).
        #[arg(long)]
        dns: Vec<std::net::IpAddr>,
        /// IPv6: `slaac` (router advertisements), `off`, or e.g. `2001:db8::10/64`.
        #[arg(long, default_value = "slaac")]
        ipv6: String,
        /// The IPv6 default gateway (static IPv6 only): link-local or inside the prefix.
        #[arg(long)]
        ipv6_gateway: Option<std::net::Ipv6Addr>,
    },
    /// Set the SNTP servers the appliance sets its clock from, at boot and every 17 minutes
    /// (names or addresses, up to 4); `none` leaves the clock alone.
    Ntp {
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
    },
    /// Set the serial console's admin password, given as its hash (`{SSHA512}...`): the console
    /// asks for the password and hashes it, so it never travels in clear.
    ConsolePasswordHash {
        #[arg(value_name = "HASH")]
        hash: String,
    },
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
    /// Like install, with the chain and the key as one PEM on standard input
    /// (`cat cert.pem key.pem | postern tls install-pem`); the console's paste.
    InstallPem {
        /// The PEM read from standard input, or pasted at the console.
        #[arg(skip)]
        pem: Option<Secret>,
    },
    /// Replace the certificate with a new self-signed one for the box's host name (and a new
    /// key); used from the next start of the services.
    SelfSigned,
}

/// `postern dkim ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum DkimCommand {
    /// Make a signing key for DOMAIN, store it on the flash, and print the DNS TXT record to
    /// publish. It signs from the next message; an older key of the domain is kept (delete it
    /// once the new record is in DNS).
    Keygen {
        domain: String,
        /// The selector: the record's name is SELECTOR._domainkey.DOMAIN.
        #[arg(long, default_value = "postern")]
        selector: String,
        /// `rsa` (2048 bits, understood by every verifier) or `ed25519` (RFC 8463).
        #[arg(long = "type", value_name = "TYPE", default_value = "rsa")]
        key_type: String,
    },
    /// The stored keys: domain, selector, type, and whether it is the one that signs.
    List,
    /// The DNS TXT records of DOMAIN's keys.
    Show { domain: String },
    /// Delete DOMAIN's keys (only the one with --selector, if given): its mail is no longer
    /// signed with them.
    Delete {
        domain: String,
        #[arg(long)]
        selector: Option<String>,
    },
}

/// `postern queue ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum QueueCommand {
    /// List queued mail, like `postqueue -p` (`*` active, `!` on hold); `--json` like `postqueue -j`.
    List {
        /// One JSON object per message and line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Queued mail by domain and age, like qshape: recipient domains (recipients still to
    /// deliver) or, with --sender, sender domains (messages); columns are ages in minutes.
    Shape {
        /// The queues to count (active, deferred, hold; all if none given), as `qshape deferred`.
        #[arg(value_name = "QUEUE", value_parser = parse_queue)]
        names: Vec<QueueName>,
        /// Rows by sender domain instead of recipient domain (`qshape -s`).
        #[arg(long = "by-sender")]
        by_sender: bool,
        /// The table as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One message as postcat shows it: envelope records, each recipient's state and next hop,
    /// the next attempt and last reason, every record with its time (arrival, each recipient's
    /// result with relay and reason, deferrals, holds, releases, requeues), the headers; the
    /// body with --body.
    Show {
        /// The queue id.
        qid: String,
        /// Print the body too, like `postcat -b`.
        #[arg(long)]
        body: bool,
        /// The same as one JSON object (records with Unix times).
        #[arg(long)]
        json: bool,
    },
    /// Put messages on hold: not tried until released (`postsuper -h`).
    Hold(BulkArgs),
    /// Release held messages for delivery now (`postsuper -H`).
    Release(BulkArgs),
    /// Try deferred messages again now, with the current routing (`postsuper -r`).
    Requeue(BulkArgs),
    /// Delete messages from the queue: their mail is lost and nobody is told (`postsuper -d`).
    Delete(BulkArgs),
    /// Try deferred mail now: all of it, what waits for one destination (`postqueue -f`, `-s`),
    /// or what a filter selects.
    Flush {
        /// Only mail whose next hop is this host or domain.
        destination: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Which messages a bulk action is for: queue ids, `ALL`, a filter, or ids narrowed by a filter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Args, Serialize, Deserialize)]
pub struct BulkArgs {
    /// Queue ids, or ALL.
    #[arg(value_name = "QID")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Act on more than one message (without it, a count of what matches is all you get).
    #[arg(long)]
    pub yes: bool,
}

/// The selection `list`, `shape` and the bulk actions share (every option given must hold).
#[derive(Debug, Clone, PartialEq, Eq, Default, Args, Serialize, Deserialize)]
pub struct FilterArgs {
    /// In this queue: active, deferred or hold (may be given more than once).
    #[arg(long = "queue", value_name = "QUEUE", value_parser = parse_queue)]
    pub queues: Vec<QueueName>,
    /// From this sender: an address or a pattern with * (`*@example.com`); `<>` for bounces.
    #[arg(long, value_name = "ADDRESS")]
    pub sender: Option<String>,
    /// To this recipient (one still to deliver): an address or a pattern with *.
    #[arg(long, value_name = "ADDRESS")]
    pub recipient: Option<String>,
    /// For a recipient (still to deliver) in this domain or below it.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// At least this old: 30m, 2h, 5d (a bare number is minutes).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<u64>,
    /// At most this old.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub younger_than: Option<u64>,
    /// Waiting for a reason containing these words (`Connection refused`, `greylist`).
    #[arg(long, value_name = "WORDS")]
    pub reason: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            queues: self.queues.clone(),
            sender: self.sender.clone(),
            recipient: self.recipient.clone(),
            domain: self.domain.clone(),
            older_than: self.older_than,
            younger_than: self.younger_than,
            reason: self.reason.clone(),
        }
    }
}

fn parse_queue(s: &str) -> Result<QueueName, UnknownQueue> {
    s.parse()
}

/// An age that is not a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAge(pub BadDuration);

impl std::fmt::Display for BadAge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BadAge {}

/// An age in seconds, from Postfix's time syntax.
fn parse_age(s: &str) -> Result<u64, BadAge> {
    duration::parse(s, Unit::Minutes)
        .map(|d| d.as_secs())
        .map_err(BadAge)
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
        /// The size of the mail log ring, e.g. 4M (rounded up to erase blocks; at least two, or
        /// 0 for none). Default: 1/64 of the flash. Fixed until the next format.
        #[arg(long, value_name = "SIZE", value_parser = parse_log_size)]
        log_size: Option<u64>,
    },
}

impl AdminCommand {
    /// The question to ask at a terminal before the command is carried out, if it destroys data
    /// and the admin did not say `--yes`.
    pub fn confirmation(&self) -> Option<&'static str> {
        match self {
            AdminCommand::Flash(FlashCommand::Format { yes: false, .. }) => {
                Some("Format the flash? Every queued message, account and setting on it is lost.")
            }
            AdminCommand::Queue(QueueCommand::Delete(BulkArgs { yes: false, .. })) => {
                Some("Delete from the queue? The mail is lost, and nobody is told.")
            }
            _ => None,
        }
    }
}

/// Parses sizes as admins write them: `268435456`, `256M`, `1G`, `64K` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (use K, M, G or T)")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 256M)"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

/// A log size: like [`parse_size`], and 0 for no log.
fn parse_log_size(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_size(s)
}
