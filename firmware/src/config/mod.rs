//! Typed settings with defaults, validation and Zimbra attribute names.
//!
//! [`MtaConfig`] is the global MTA configuration (`zmprov gacf` / `mcf`): relay host, DNS lookups,
//! trusted networks, restrictions, limits and queue times. Where Zimbra has no attribute the
//! Postfix parameter name is used (`smtpd_recipient_limit`, `hopcount_limit`,
//! `virtual_transport`). Values are read and written as strings through [`MtaConfig::values`] and
//! [`MtaConfig::set`], which validate them, so a bad value is refused when it is set. A value
//! the box would store but not act on (a restriction the policy stage does not apply yet) is
//! refused too; one already on flash from an older firmware is loaded aside by
//! [`MtaConfig::load`], shown as ignored, and never applied.
//!
//! Values are shown back as the admin typed them (`mcf zimbraMtaRelayHost mail.example.com` shows
//! `mail.example.com`, not the parsed `smtp:mail.example.com`): the parsed value is what the box
//! acts on, the typed text is what `gacf` prints and what goes to flash, where it parses again to
//! the same value.

pub mod attr;
pub mod box_ipv6;
pub mod box_settings;
pub mod content;
pub mod dnsbl;
pub mod duration;
pub mod hosts;
pub mod localconfig;
pub mod network;
pub mod restriction;
pub mod restriction_names;
pub mod rspamd_url;
pub mod sender_auth;
pub mod stored;

use std::sync::Arc;
use std::time::Duration;

pub use attr::AttrError;
pub use content::{ContentConfig, ScannerAddress, SpamScanner};
pub use dnsbl::Dnsbl;
pub use duration::Unit;
pub use hosts::{BadHostEntry, HostsTable};
pub use network::{BadNetwork, Cidr, NetworkList};
pub use restriction::{BadRestriction, Restriction};
pub use sender_auth::AuthConfig;

use crate::mail::Transport;
use attr::{boolean, canonical, invalid, show_bool, single};

/// The global MTA settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtaConfig {
    /// `zimbraMtaRelayHost`: every message to another domain goes here (Postfix `relayhost`).
    pub relay_host: Option<Transport>,
    /// `zimbraMtaDnsLookupsEnabled`, or `zimbraMtaSmtpDnsSupportLevel` (the newer Zimbra name,
    /// `enabled`/`disabled`): whether delivery looks up MX records. Off, every next hop is found
    /// by its address records or in [`MtaConfig::hosts`] (Postfix `disable_dns_lookups`).
    pub dns_lookups_enabled: bool,
    /// `posternHostsTable`: `name=address` values answering address lookups before DNS.
    pub hosts: HostsTable,
    /// `zimbraMtaMyNetworks`: clients that may relay without AUTH.
    pub my_networks: NetworkList,
    /// `zimbraMtaRestriction`.
    pub restrictions: Vec<Restriction>,
    /// `zimbraMtaRestrictionRBLs`: `reject_rbl_client` for each list (Zimbra's list form).
    pub rbls: Vec<Dnsbl>,
    /// `zimbraMtaRestrictionRHSBLCs`: `reject_rhsbl_client` for each list.
    pub rhsbl_clients: Vec<Dnsbl>,
    /// `zimbraMtaRestrictionRHSBLSs`: `reject_rhsbl_sender` for each list.
    pub rhsbl_senders: Vec<Dnsbl>,
    /// `zimbraMtaMaxMessageSize` in bytes; 0 means no limit (Postfix `message_size_limit`).
    pub max_message_size: u64,
    /// `smtpd_recipient_limit`: RCPT TO commands accepted per message.
    pub recipient_limit: u32,
    /// `smtpd_client_connection_rate_limit`: connections per client per minute; 0 no limit.
    pub connection_rate_limit: u32,
    /// `smtpd_client_message_rate_limit`: messages per client per minute; 0 no limit.
    pub message_rate_limit: u32,
    /// `smtpd_client_auth_rate_limit`: AUTH commands per client per minute; 0 no limit.
    pub auth_rate_limit: u32,
    /// `default_process_limit`: SMTP sessions served at once, all listeners together (100).
    /// An idle session costs a few kilobytes here, so a backup MX can raise it to thousands.
    pub connection_limit: u32,
    /// `smtpd_client_connection_count_limit`: sessions at once from one client address (50).
    pub client_connection_limit: u32,
    /// `smtpd_timeout`: how long a client may take to send a command (300 s); then
    /// `421 4.4.2 ... Error: timeout exceeded` and the session is closed.
    pub smtpd_timeout: Duration,
    /// `postscreen_greet_action`: `drop` hangs up on a client that talks before the greeting
    /// is complete; `ignore` (Postfix's default) greets at once.
    pub greet_action_drop: bool,
    /// `postscreen_greet_wait`: how long the greeting is held when the action is `drop` (6 s).
    pub greet_wait: Duration,
    /// `hopcount_limit`: Received headers a message may carry before it bounces as a loop.
    pub hopcount_limit: u32,
    /// `zimbraMtaQueueRunDelay`.
    pub queue_run_delay: Duration,
    /// `zimbraMtaMinimalBackoffTime`.
    pub minimal_backoff_time: Duration,
    /// `zimbraMtaMaximalBackoffTime`.
    pub maximal_backoff_time: Duration,
    /// `zimbraMtaMaximalQueueLifetime`: how long a deferred message is retried before it bounces.
    pub maximal_queue_lifetime: Duration,
    /// `zimbraMtaBounceQueueLifetime`: the same for bounces.
    pub bounce_queue_lifetime: Duration,
    /// `zimbraMtaDelayWarningTime`: when to tell the sender a message is delayed; 0 never.
    pub delay_warning_time: Duration,
    /// `zimbraMtaMyHostname` (Postfix `myhostname`): the domain of a bare `postmaster`. The
    /// greeting and Received headers still use the daemon's `--hostname`.
    pub my_hostname: String,
    /// `posternPostmasterAddress`: where mail to `postmaster@` and `abuse@` of the box's own
    /// name goes (Postfix's `postmaster: root` alias). Unset, such mail is refused at RCPT.
    pub postmaster_address: Option<String>,
    /// `posternSyslogTarget`: a remote syslog that gets every log line too (RFC 5424;
    /// `udp:ADDRESS:PORT`, `tcp:ADDRESS:PORT`, or an address for UDP port 514).
    pub syslog_target: Option<crate::log::remote::SyslogTarget>,
    /// `virtual_transport`: next hop of a local account when neither the account nor its domain
    /// has a `zimbraMailTransport`. Unset, such mail is accepted and stays deferred.
    pub virtual_transport: Option<Transport>,
    /// The content stage's settings (attachments, virus and spam scanners). Shared: every
    /// message's scan holds them, and their extension lists are dozens of strings.
    pub content: Arc<ContentConfig>,
    /// Sender authentication: SPF, DKIM verification, DMARC (all off by default).
    pub auth: AuthConfig,
    /// Values read from flash that this firmware refuses to set (see [`MtaConfig::load`]):
    /// attribute and value, kept so the next write does not lose them, never applied.
    unenforced: Vec<(&'static str, String)>,
    /// The values of each attribute set explicitly, as typed: what `gacf` shows and flash keeps.
    typed: Vec<(&'static str, Vec<String>)>,
}

const RELAY_HOST: &str = "zimbraMtaRelayHost";
const DNS: &str = "zimbraMtaDnsLookupsEnabled";
const DNS_LEVEL: &str = "zimbraMtaSmtpDnsSupportLevel";
const HOSTS: &str = "posternHostsTable";
const MY_NETWORKS: &str = "zimbraMtaMyNetworks";
const RESTRICTION: &str = "zimbraMtaRestriction";
const RBLS: &str = "zimbraMtaRestrictionRBLs";
const RHSBLCS: &str = "zimbraMtaRestrictionRHSBLCs";
const RHSBLSS: &str = "zimbraMtaRestrictionRHSBLSs";
/// The multi-valued attributes.
const MULTI: [&str; 5] = [RESTRICTION, RBLS, RHSBLCS, RHSBLSS, HOSTS];
const MAX_SIZE: &str = "zimbraMtaMaxMessageSize";
const RCPT_LIMIT: &str = "smtpd_recipient_limit";
const HOPS: &str = "hopcount_limit";
const GREET_ACTION: &str = "postscreen_greet_action";
const GREET_WAIT: &str = "postscreen_greet_wait";
const CONN_RATE: &str = "smtpd_client_connection_rate_limit";
const MSG_RATE: &str = "smtpd_client_message_rate_limit";
const AUTH_RATE: &str = "smtpd_client_auth_rate_limit";
const PROCESS_LIMIT: &str = "default_process_limit";
const CONN_COUNT: &str = "smtpd_client_connection_count_limit";
const SMTPD_TIMEOUT: &str = "smtpd_timeout";
const RUN_DELAY: &str = "zimbraMtaQueueRunDelay";
const MIN_BACKOFF: &str = "zimbraMtaMinimalBackoffTime";
const MAX_BACKOFF: &str = "zimbraMtaMaximalBackoffTime";
const QUEUE_LIFETIME: &str = "zimbraMtaMaximalQueueLifetime";
const BOUNCE_LIFETIME: &str = "zimbraMtaBounceQueueLifetime";
const DELAY_WARNING: &str = "zimbraMtaDelayWarningTime";
const MY_HOSTNAME: &str = "zimbraMtaMyHostname";
const POSTMASTER: &str = "posternPostmasterAddress";
const SYSLOG: &str = "posternSyslogTarget";
const VIRTUAL_TRANSPORT: &str = "virtual_transport";
/// Not a setting: the mail log's ring sits between the directory slots and the spool, so a new
/// size moves where the spool starts, which only a format may do (the superblock is written once,
/// and moving acknowledged mail to make room is a risk no log is worth). An admin who looks for
/// the setting is told where the size is chosen.
const MAIL_LOG_SIZE: &str = "posternMailLogSize";

/// Time settings: attribute, default unit of a bare number.
const TIMES: [(&str, Unit); 8] = [
    (GREET_WAIT, Unit::Seconds),
    (SMTPD_TIMEOUT, Unit::Seconds),
    (RUN_DELAY, Unit::Seconds),
    (MIN_BACKOFF, Unit::Seconds),
    (MAX_BACKOFF, Unit::Seconds),
    (QUEUE_LIFETIME, Unit::Days),
    (BOUNCE_LIFETIME, Unit::Days),
    (DELAY_WARNING, Unit::Hours),
];

impl Default for MtaConfig {
    fn default() -> MtaConfig {
        MtaConfig {
            relay_host: None,
            dns_lookups_enabled: true,
            hosts: HostsTable::default(),
            my_networks: NetworkList::loopback(),
            restrictions: Vec::new(),
            rbls: Vec::new(),
            rhsbl_clients: Vec::new(),
            rhsbl_senders: Vec::new(),
            max_message_size: 10_240_000,
            recipient_limit: 1000,
            hopcount_limit: 50,
            connection_rate_limit: 0,
            message_rate_limit: 0,
            auth_rate_limit: 0,
            connection_limit: 100,
            client_connection_limit: 50,
            smtpd_timeout: Duration::from_secs(300),
            greet_action_drop: false,
            greet_wait: Duration::from_secs(6),
            queue_run_delay: Duration::from_secs(300),
            minimal_backoff_time: Duration::from_secs(300),
            maximal_backoff_time: Duration::from_secs(4000),
            maximal_queue_lifetime: Duration::from_secs(5 * 86_400),
            bounce_queue_lifetime: Duration::from_secs(5 * 86_400),
            delay_warning_time: Duration::ZERO,
            my_hostname: "localhost".to_string(),
            postmaster_address: None,
            syslog_target: None,
            virtual_transport: None,
            content: Arc::default(),
            auth: AuthConfig::default(),
            unenforced: Vec::new(),
            typed: Vec::new(),
        }
    }
}

impl MtaConfig {
    /// Every attribute, in the order `gacf` prints them.
    pub const ATTRS: &'static [&'static str] = &[
        RELAY_HOST,
        DNS,
        DNS_LEVEL,
        HOSTS,
        MY_NETWORKS,
        RESTRICTION,
        RBLS,
        RHSBLCS,
        RHSBLSS,
        MAX_SIZE,
        RCPT_LIMIT,
        HOPS,
        CONN_RATE,
        MSG_RATE,
        AUTH_RATE,
        PROCESS_LIMIT,
        CONN_COUNT,
        SMTPD_TIMEOUT,
        GREET_ACTION,
        GREET_WAIT,
        RUN_DELAY,
        MIN_BACKOFF,
        MAX_BACKOFF,
        QUEUE_LIFETIME,
        BOUNCE_LIFETIME,
        DELAY_WARNING,
        MY_HOSTNAME,
        POSTMASTER,
        SYSLOG,
        VIRTUAL_TRANSPORT,
        content::BLOCKED_EXT,
        content::COMMON_BLOCKED_EXT,
        content::BLOCK_ENCRYPTED,
        content::SCAN_LIMIT,
        content::OVERSIZE,
        content::ARCHIVE_DEPTH,
        content::ARCHIVE_UNPACKED,
        content::VIRUS_CHECK,
        content::CLAMD,
        content::CLAMD_TIMEOUT,
        content::CLAMD_STREAM_MAX,
        content::CLAMD_FAIL,
        content::SPAMD,
        content::RSPAMD,
        content::RSPAMD_PASSWORD,
        content::SPAMD_TIMEOUT,
        content::SPAMD_MAX_SIZE,
        content::SPAMD_FAIL,
        content::SPAM_KILL,
        content::SPAM_TAG,
        content::SPAM_SUBJECT_TAG,
        content::SPAM_ACCOUNT,
        content::HAM_ACCOUNT,
        content::TRAINING_DELIVER,
        content::VIRUS_WARN_ADMIN,
        content::VIRUS_WARN_RECIPIENT,
        content::VIRUS_ADMIN,
        content::BLOCKED_WARN_RECIPIENT,
        sender_auth::SPF_ACTION,
        sender_auth::DKIM_VERIFY,
        sender_auth::DMARC_VERIFY,
        sender_auth::DMARC_ENFORCE,
        sender_auth::ARC_TRUSTED_SEALERS,
        sender_auth::DMARC_REPORT,
        sender_auth::DMARC_REPORT_ADDRESS,
        sender_auth::DMARC_REPORT_INTERVAL,
    ];

    /// The canonical spelling of `attr`, or an error naming it.
    pub fn attr_name(attr: &str) -> Result<&'static str, AttrError> {
        if attr.eq_ignore_ascii_case(MAIL_LOG_SIZE) {
            return Err(AttrError::ReadOnly {
                attr: MAIL_LOG_SIZE,
                hint: "the mail log's size is chosen when the flash is formatted: \
                       `postern flash format --log-size SIZE` (erases the flash, queue included); \
                       `postern flash info` shows the size in use",
            });
        }
        canonical(Self::ATTRS, attr, "config")
    }

    /// Whether `attr` holds several values (`+attr`/`-attr` apply to it).
    pub fn is_multi(attr: &str) -> bool {
        MULTI.iter().any(|m| m.eq_ignore_ascii_case(attr))
            || ContentConfig::is_multi(attr)
            || AuthConfig::is_multi(attr)
    }

    /// The values of `attr` as `gacf` shows them; empty when unset.
    pub fn values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let attr = Self::attr_name(attr)?;
        if let Some((_, typed)) = self.typed.iter().find(|(a, _)| *a == attr) {
            return Ok(typed.clone());
        }
        let one = |s: String| vec![s];
        Ok(match attr {
            a if ContentConfig::owns(a) => self.content.values(a),
            a if AuthConfig::owns(a) => self.auth.values(a),
            RELAY_HOST => self.relay_host.iter().map(|t| t.to_string()).collect(),
            DNS => one(show_bool(self.dns_lookups_enabled)),
            DNS_LEVEL => one(dns_level(self.dns_lookups_enabled).to_string()),
            HOSTS => Vec::new(),
            MY_NETWORKS => one(self.my_networks.to_string()),
            RESTRICTION => self.restrictions.iter().map(|r| r.to_string()).collect(),
            RBLS => self.rbls.iter().map(|l| l.to_string()).collect(),
            RHSBLCS => self.rhsbl_clients.iter().map(|l| l.to_string()).collect(),
            RHSBLSS => self.rhsbl_senders.iter().map(|l| l.to_string()).collect(),
            MAX_SIZE => one(self.max_message_size.to_string()),
            RCPT_LIMIT => one(self.recipient_limit.to_string()),
            HOPS => one(self.hopcount_limit.to_string()),
            CONN_RATE => one(self.connection_rate_limit.to_string()),
            MSG_RATE => one(self.message_rate_limit.to_string()),
            AUTH_RATE => one(self.auth_rate_limit.to_string()),
            PROCESS_LIMIT => one(self.connection_limit.to_string()),
            CONN_COUNT => one(self.client_connection_limit.to_string()),
            GREET_ACTION => one(if self.greet_action_drop {
                "drop"
            } else {
                "ignore"
            }
            .into()),
            MY_HOSTNAME => one(self.my_hostname.clone()),
            POSTMASTER => self.postmaster_address.iter().cloned().collect(),
            SYSLOG => self.syslog_target.iter().map(|t| t.to_string()).collect(),
            VIRTUAL_TRANSPORT => self
                .virtual_transport
                .iter()
                .map(|t| t.to_string())
                .collect(),
            time => {
                let unit = time_unit(time);
                one(duration::show(*self.time(time), unit))
            }
        })
    }

    /// Replaces the values of `attr`; no values (or one empty value) restores the default.
    /// The whole config is checked afterwards; on error `self` is unchanged.
    pub fn set(&mut self, attr: &str, values: &[String]) -> Result<(), AttrError> {
        let attr = Self::attr_name(attr)?;
        let mut next = self.clone();
        next.set_unchecked(attr, values)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Replaces the values of several attributes at once, checking the result as a whole (so
    /// `mcf zimbraMtaMinimalBackoffTime 2h zimbraMtaMaximalBackoffTime 4h` works in one go). On
    /// error `self` is unchanged.
    pub fn set_all(&mut self, changes: &[(String, Vec<String>)]) -> Result<(), AttrError> {
        let mut next = self.clone();
        for (attr, values) in changes {
            next.set_unchecked(Self::attr_name(attr)?, values)?;
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Sets `attr` as [`MtaConfig::set`] does, for values read back from flash: a restriction the
    /// policy stage does not apply is put aside (see [`MtaConfig::unenforced`]) instead of
    /// refused, so a flash written by an older firmware still loads.
    pub fn load(&mut self, attr: &str, values: &[String]) -> Result<(), AttrError> {
        let attr = Self::attr_name(attr)?;
        if attr != RESTRICTION {
            return self.set(attr, values);
        }
        let mut applied = Vec::new();
        let mut aside = Vec::new();
        for v in values.iter().filter(|v| !v.is_empty()) {
            let r: Restriction = v.parse().map_err(|e| invalid(attr, v, e))?;
            if r.is_enforced() {
                applied.push(v.clone());
            } else {
                aside.push((attr, r.to_string()));
            }
        }
        self.set(attr, &applied)?;
        self.unenforced.extend(aside);
        Ok(())
    }

    /// Whether `a` and `b` are two spellings of one value of `attr` (`mail.example.com` and
    /// `smtp:mail.example.com`): equal but for case, or setting either gives the same setting.
    pub fn same_value(attr: &str, a: &str, b: &str) -> bool {
        if a.eq_ignore_ascii_case(b) {
            return true;
        }
        let parsed = |v: &str| {
            let mut c = MtaConfig::default();
            c.set(attr, &[v.to_string()]).ok()?;
            c.typed.clear();
            Some(c)
        };
        matches!((parsed(a), parsed(b)), (Some(x), Some(y)) if x == y)
    }

    /// Values on flash this firmware does not apply: `(attribute, value)`, for `gacf` and
    /// `postern status` to show as ignored. Setting the attribute again drops them.
    pub fn unenforced(&self) -> &[(&'static str, String)] {
        &self.unenforced
    }

    /// The values of `attr` to write to flash: as typed, and those put aside; none for an
    /// attribute never set, which reads back as its default (in this firmware or another).
    pub fn stored_values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let attr = Self::attr_name(attr)?;
        let mut values = match self.typed.iter().find(|(a, _)| *a == attr) {
            Some((_, typed)) => typed.clone(),
            None => Vec::new(),
        };
        let aside = self.unenforced.iter().filter(|(a, _)| *a == attr);
        values.extend(aside.map(|(_, v)| v.clone()));
        Ok(values)
    }

    fn set_unchecked(&mut self, attr: &'static str, values: &[String]) -> Result<(), AttrError> {
        let defaults = MtaConfig::default();
        // An explicit change of the attribute settles what an older firmware left on flash.
        self.unenforced.retain(|(a, _)| *a != attr);
        // The two DNS attributes are one setting: the one set last is shown as typed.
        let twin = match attr {
            DNS => DNS_LEVEL,
            DNS_LEVEL => DNS,
            other => other,
        };
        self.typed.retain(|(a, _)| *a != attr && *a != twin);
        let typed: Vec<String> = values.iter().filter(|v| !v.is_empty()).cloned().collect();
        if !typed.is_empty() {
            self.typed.push((attr, typed));
        }
        if ContentConfig::owns(attr) {
            return Arc::make_mut(&mut self.content).set(attr, values);
        }
        if AuthConfig::owns(attr) {
            return self.auth.set(attr, values);
        }
        if attr == RESTRICTION {
            self.restrictions = values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| restriction(attr, v))
                .collect::<Result<_, _>>()?;
            return Ok(());
        }
        if attr == HOSTS {
            let mut table = HostsTable::default();
            for v in values.iter().filter(|v| !v.is_empty()) {
                table.add(v).map_err(|e| invalid(attr, v, e))?;
            }
            self.hosts = table;
            return Ok(());
        }
        if let Some(lists) = self.lists_mut(attr) {
            *lists = values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.parse().map_err(|e| invalid(attr, v, e)))
                .collect::<Result<_, _>>()?;
            return Ok(());
        }
        let Some(v) = single(attr, values)? else {
            let mut reset = self.clone();
            reset.copy_from(attr, &defaults);
            *self = reset;
            return Ok(());
        };
        match attr {
            RELAY_HOST => self.relay_host = Some(v.parse().map_err(|e| invalid(attr, v, e))?),
            VIRTUAL_TRANSPORT => {
                self.virtual_transport = Some(v.parse().map_err(|e| invalid(attr, v, e))?)
            }
            DNS => self.dns_lookups_enabled = boolean(attr, v)?,
            DNS_LEVEL => self.dns_lookups_enabled = dns_support_level(attr, v)?,
            MY_NETWORKS => self.my_networks = v.parse().map_err(|e| invalid(attr, v, e))?,
            MAX_SIZE => self.max_message_size = number(attr, v)?,
            RCPT_LIMIT => self.recipient_limit = number(attr, v)?,
            HOPS => self.hopcount_limit = number(attr, v)?,
            CONN_RATE => self.connection_rate_limit = number(attr, v)?,
            MSG_RATE => self.message_rate_limit = number(attr, v)?,
            AUTH_RATE => self.auth_rate_limit = number(attr, v)?,
            PROCESS_LIMIT => self.connection_limit = number(attr, v)?,
            CONN_COUNT => self.client_connection_limit = number(attr, v)?,
            GREET_ACTION => {
                self.greet_action_drop = match v.to_ascii_lowercase().as_str() {
                    "drop" => true,
                    "ignore" => false,
                    // enforce: postscreen's dummy SMTP dialogue, not built.
                    "enforce" => {
                        return Err(AttrError::NotSupported {
                            attr: attr.to_string(),
                            value: Some(v.to_string()),
                        });
                    }
                    _ => return Err(invalid(attr, v, "use ignore or drop")),
                }
            }
            MY_HOSTNAME => self.my_hostname = hostname(attr, v)?,
            POSTMASTER => self.postmaster_address = Some(mailbox(attr, v)?),
            SYSLOG => self.syslog_target = Some(v.parse().map_err(|e| invalid(attr, v, e))?),
            time => {
                let d = duration::parse(v, time_unit(time)).map_err(|e| invalid(attr, v, e))?;
                *self.time_mut(time) = d;
            }
        }
        Ok(())
    }

    /// The blocklists of Zimbra's list attributes.
    fn lists_mut(&mut self, attr: &str) -> Option<&mut Vec<Dnsbl>> {
        match attr {
            RBLS => Some(&mut self.rbls),
            RHSBLCS => Some(&mut self.rhsbl_clients),
            RHSBLSS => Some(&mut self.rhsbl_senders),
            _ => None,
        }
    }

    fn copy_from(&mut self, attr: &'static str, other: &MtaConfig) {
        match attr {
            a if ContentConfig::owns(a) => {
                Arc::make_mut(&mut self.content).copy_from(a, &other.content)
            }
            a if AuthConfig::owns(a) => self.auth.copy_from(a, &other.auth),
            RELAY_HOST => self.relay_host = other.relay_host.clone(),
            VIRTUAL_TRANSPORT => self.virtual_transport = other.virtual_transport.clone(),
            DNS | DNS_LEVEL => self.dns_lookups_enabled = other.dns_lookups_enabled,
            HOSTS => self.hosts = other.hosts.clone(),
            MY_NETWORKS => self.my_networks = other.my_networks.clone(),
            RESTRICTION => self.restrictions = other.restrictions.clone(),
            RBLS => self.rbls = other.rbls.clone(),
            RHSBLCS => self.rhsbl_clients = other.rhsbl_clients.clone(),
            RHSBLSS => self.rhsbl_senders = other.rhsbl_senders.clone(),
            MAX_SIZE => self.max_message_size = other.max_message_size,
            RCPT_LIMIT => self.recipient_limit = other.recipient_limit,
            HOPS => self.hopcount_limit = other.hopcount_limit,
            CONN_RATE => self.connection_rate_limit = other.connection_rate_limit,
            MSG_RATE => self.message_rate_limit = other.message_rate_limit,
            AUTH_RATE => self.auth_rate_limit = other.auth_rate_limit,
            PROCESS_LIMIT => self.connection_limit = other.connection_limit,
            CONN_COUNT => self.client_connection_limit = other.client_connection_limit,
            GREET_ACTION => self.greet_action_drop = other.greet_action_drop,
            MY_HOSTNAME => self.my_hostname = other.my_hostname.clone(),
            POSTMASTER => self.postmaster_address = other.postmaster_address.clone(),
            SYSLOG => self.syslog_target = other.syslog_target,
            time => *self.time_mut(time) = *other.time(time),
        }
    }

    fn time(&self, attr: &str) -> &Duration {
        match attr {
            GREET_WAIT => &self.greet_wait,
            SMTPD_TIMEOUT => &self.smtpd_timeout,
            RUN_DELAY => &self.queue_run_delay,
            MIN_BACKOFF => &self.minimal_backoff_time,
            MAX_BACKOFF => &self.maximal_backoff_time,
            QUEUE_LIFETIME => &self.maximal_queue_lifetime,
            BOUNCE_LIFETIME => &self.bounce_queue_lifetime,
            _ => &self.delay_warning_time,
        }
    }

    fn time_mut(&mut self, attr: &str) -> &mut Duration {
        match attr {
            GREET_WAIT => &mut self.greet_wait,
            SMTPD_TIMEOUT => &mut self.smtpd_timeout,
            RUN_DELAY => &mut self.queue_run_delay,
            MIN_BACKOFF => &mut self.minimal_backoff_time,
            MAX_BACKOFF => &mut self.maximal_backoff_time,
            QUEUE_LIFETIME => &mut self.maximal_queue_lifetime,
            BOUNCE_LIFETIME => &mut self.bounce_queue_lifetime,
            _ => &mut self.delay_warning_time,
        }
    }

    /// Checks the rules that tie settings together.
    pub fn validate(&self) -> Result<(), AttrError> {
        let show = |d: Duration, a| duration::show(d, time_unit(a));
        if self.minimal_backoff_time > self.maximal_backoff_time {
            return Err(invalid(
                MIN_BACKOFF,
                &show(self.minimal_backoff_time, MIN_BACKOFF),
                format_args!(
                    "must not exceed {MAX_BACKOFF} ({})",
                    show(self.maximal_backoff_time, MAX_BACKOFF)
                ),
            ));
        }
        if self.hopcount_limit == 0 {
            return Err(invalid(HOPS, "0", "must be at least 1"));
        }
        if self.recipient_limit == 0 {
            return Err(invalid(RCPT_LIMIT, "0", "must be at least 1"));
        }
        if self.connection_limit == 0 {
            return Err(invalid(PROCESS_LIMIT, "0", "must be at least 1"));
        }
        if self.client_connection_limit == 0 {
            return Err(invalid(CONN_COUNT, "0", "must be at least 1"));
        }
        if self.smtpd_timeout.is_zero() {
            return Err(invalid(SMTPD_TIMEOUT, "0s", "must be at least 1s"));
        }
        if self.queue_run_delay.is_zero() {
            return Err(invalid(RUN_DELAY, "0s", "must be at least 1s"));
        }
        hostname(MY_HOSTNAME, &self.my_hostname)?;
        if self.content.virus_warn_admin && self.virus_admin().is_none() {
            return Err(invalid(
                content::VIRUS_WARN_ADMIN,
                "TRUE",
                format_args!("set {} or {POSTMASTER} first", content::VIRUS_ADMIN),
            ));
        }
        self.content.validate()
    }

    /// Where the admin's virus warnings go: `posternVirusAdminAddress`, else the postmaster.
    pub fn virus_admin(&self) -> Option<&str> {
        self.content
            .virus_admin
            .as_deref()
            .or(self.postmaster_address.as_deref())
    }

    /// Every attribute with its values, as `gacf` prints them (`attr: value` per value).
    pub fn all_values(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for attr in Self::ATTRS {
            for v in self.values(attr).unwrap_or_default() {
                out.push((*attr, v));
            }
        }
        out
    }
}

fn time_unit(attr: &str) -> Unit {
    TIMES
        .iter()
        .find(|(a, _)| *a == attr)
        .map_or(Unit::Seconds, |(_, u)| *u)
}

/// A restriction the policy stage applies; one it does not is refused as not supported yet, and
/// so is one Postfix has that the box cannot even parse yet.
fn restriction(attr: &'static str, v: &str) -> Result<Restriction, AttrError> {
    let r: Restriction = match v.parse() {
        Ok(r) => r,
        Err(BadRestriction::Unknown(_)) if restriction_names::is_postfix_restriction(v) => {
            return Err(AttrError::NotSupported {
                attr: attr.to_string(),
                value: Some(v.to_string()),
            });
        }
        Err(e) => return Err(invalid(attr, v, e)),
    };
    if !r.is_enforced() {
        return Err(AttrError::NotSupported {
            attr: attr.to_string(),
            value: Some(r.to_string()),
        });
    }
    Ok(r)
}

/// `zimbraMtaSmtpDnsSupportLevel` (Postfix `smtp_dns_support_level`): `disabled` or `enabled`.
/// `dnssec` needs a validating resolver the box does not have yet, so it is refused rather than
/// kept and ignored.
fn dns_support_level(attr: &'static str, v: &str) -> Result<bool, AttrError> {
    match v.to_ascii_lowercase().as_str() {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        "dnssec" => Err(AttrError::NotSupported {
            attr: attr.to_string(),
            value: Some(v.to_string()),
        }),
        _ => Err(invalid(attr, v, "use disabled or enabled")),
    }
}

fn dns_level(enabled: bool) -> &'static str {
    if enabled { "enabled" } else { "disabled" }
}

fn number<T: std::str::FromStr>(attr: &'static str, v: &str) -> Result<T, AttrError> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(attr, v, "not a whole number"));
    }
    v.parse()
        .map_err(|_| invalid(attr, v, "not a whole number in range"))
}

/// `user@domain.example`, lower-cased.
pub(super) fn mailbox(attr: &'static str, v: &str) -> Result<String, AttrError> {
    match v.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !local
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>') =>
        {
            let domain = hostname(attr, domain)?;
            Ok(format!("{local}@{domain}").to_ascii_lowercase())
        }
        _ => Err(invalid(attr, v, "not an address (user@domain)")),
    }
}

fn hostname(attr: &'static str, v: &str) -> Result<String, AttrError> {
    match Transport::mx(v) {
        Ok(t) => Ok(t.host.to_string()),
        Err(e) => Err(invalid(attr, v, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(c: &MtaConfig, a: &str) -> Vec<String> {
        c.values(a).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn zimbra_defaults() {
        let c = MtaConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(vals(&c, "zimbraMtaMyNetworks"), ["127.0.0.0/8 [::1]/128"]);
        assert_eq!(vals(&c, "zimbraMtaDnsLookupsEnabled"), ["TRUE"]);
        assert_eq!(vals(&c, "zimbraMtaMaxMessageSize"), ["10240000"]);
        assert_eq!(vals(&c, "zimbraMtaMaximalQueueLifetime"), ["5d"]);
        assert_eq!(vals(&c, "zimbraMtaMaximalBackoffTime"), ["4000s"]);
        assert_eq!(vals(&c, "zimbraMtaQueueRunDelay"), ["300s"]);
        assert_eq!(vals(&c, "zimbraMtaDelayWarningTime"), ["0h"]);
        assert_eq!(vals(&c, "hopcount_limit"), ["50"]);
        assert_eq!(vals(&c, "smtpd_recipient_limit"), ["1000"]);
        assert!(vals(&c, "zimbraMtaRelayHost").is_empty());
        let mut shown: Vec<_> = c.all_values().into_iter().map(|(a, _)| a).collect();
        shown.dedup();
        assert_eq!(shown.len(), MtaConfig::ATTRS.len() - 20);
        assert_eq!(vals(&c, "zimbraMtaCommonBlockedExtension").len(), 27);
    }

    #[test]
    fn set_parses_validates_and_resets() {
        let mut c = MtaConfig::default();
        c.set("zimbramtarelayhost", &s(&["[smtp.isp.example]:587"]))
            .unwrap();
        assert_eq!(vals(&c, "zimbraMtaRelayHost"), ["[smtp.isp.example]:587"]);
        assert_eq!(
            c.relay_host,
            Some("smtp:[smtp.isp.example]:587".parse().unwrap())
        );
        c.set("zimbraMtaMaximalQueueLifetime", &s(&["2"])).unwrap();
        assert_eq!(c.maximal_queue_lifetime, Duration::from_secs(2 * 86_400));
        c.set("zimbraMtaMyNetworks", &s(&["10.0.0.0/8 127.0.0.0/8"]))
            .unwrap();
        assert!(c.my_networks.contains("10.1.2.3".parse().unwrap()));
        c.set("zimbraMtaRestriction", &s(&[""])).unwrap();
        assert!(c.restrictions.is_empty());
        c.set("zimbraMtaRelayHost", &s(&[""])).unwrap();
        assert_eq!(c.relay_host, None);
        c.set("zimbraMtaMaximalQueueLifetime", &[]).unwrap();
        assert_eq!(c.maximal_queue_lifetime, Duration::from_secs(5 * 86_400));
    }

    #[test]
    fn bad_values_name_the_attribute_and_change_nothing() {
        let mut c = MtaConfig::default();
        let before = c.clone();
        for (attr, v) in [
            ("zimbraMtaRelayHost", "uucp:host"),
            ("zimbraMtaDnsLookupsEnabled", "yes"),
            ("zimbraMtaMyNetworks", "10.0.0.1/8"),
            ("zimbraMtaRestriction", "reject_everything"),
            ("zimbraMtaMaxMessageSize", "-1"),
            ("hopcount_limit", "0"),
            ("zimbraMtaMinimalBackoffTime", "2h"),
            ("zimbraMtaMaximalQueueLifetime", "5 days"),
            ("zimbraMtaMyHostname", "bad host"),
            ("posternPostmasterAddress", "root"),
            ("posternPostmasterAddress", "<a>@example.com"),
        ] {
            let err = c.set(attr, &s(&[v])).unwrap_err();
            assert!(err.to_string().contains(attr), "{err}");
        }
        assert!(matches!(
            c.set("zimbraMtaNoSuchThing", &s(&["1"])),
            Err(AttrError::Unknown { .. })
        ));
        assert!(matches!(
            c.set("zimbraMtaRelayHost", &s(&["a.example", "b.example"])),
            Err(AttrError::SingleValued(_))
        ));
        assert_eq!(c, before);
    }

    /// Every restriction the policy stage applies is stored, with Zimbra's list attributes
    /// beside them; a typo still reads as a typo and changes nothing.
    #[test]
    fn restrictions_and_lists_are_stored() {
        let mut c = MtaConfig::default();
        let before = c.clone();
        let typo = c.set("zimbraMtaRestriction", &s(&["reject_everything"]));
        assert!(matches!(typo, Err(AttrError::Invalid { .. })), "{typo:?}");
        assert_eq!(c, before);

        let applied = s(&[
            "reject_invalid_hostname",
            "reject_non_fqdn_sender",
            "reject_rbl_client zen.spamhaus.org=127.0.0.[2..11]",
            "check_policy_service inet:127.0.0.1:10023",
            "reject",
        ]);
        c.set("zimbraMtaRestriction", &applied).unwrap();
        assert_eq!(c.restrictions.len(), 5);
        c.set(
            "zimbraMtaRestrictionRBLs",
            &s(&["bl.example", "b2.example"]),
        )
        .unwrap();
        assert_eq!(
            vals(&c, "zimbramtarestrictionrbls"),
            ["bl.example", "b2.example"]
        );
        assert!(MtaConfig::is_multi("zimbraMtaRestrictionRHSBLSs"));
        let bad = c.set("zimbraMtaRestrictionRHSBLCs", &s(&["not a list"]));
        assert!(matches!(bad, Err(AttrError::Invalid { .. })), "{bad:?}");
    }

    /// Restrictions an older firmware stored but did not apply load as applied now.
    #[test]
    fn restrictions_on_flash_load_and_apply() {
        let mut c = MtaConfig::default();
        let stored = s(&[
            "check_policy_service inet:Policy.example:10023",
            "reject_rbl_client Zen.Spamhaus.org",
        ]);
        c.load("zimbraMtaRestriction", &stored).unwrap();
        // Shown as typed, applied as parsed.
        assert_eq!(vals(&c, "zimbraMtaRestriction"), stored);
        let applied: Vec<String> = c.restrictions.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            applied,
            [
                "check_policy_service inet:policy.example:10023",
                "reject_rbl_client zen.spamhaus.org"
            ]
        );
        assert!(c.unenforced().is_empty());
        assert!(c.load("zimbraMtaRestriction", &s(&["reject_all"])).is_err());
    }

    /// `gacf` shows what was typed; the box acts on the parsed value.
    #[test]
    fn values_show_back_as_typed() {
        let mut c = MtaConfig::default();
        for (attr, typed) in [
            ("zimbraMtaRelayHost", "mail.example.com"),
            ("zimbraMtaDnsLookupsEnabled", "false"),
            ("zimbraMtaMaximalQueueLifetime", "2"),
            ("zimbraMtaMyNetworks", "10.0.0.0/8, 127.0.0.0/8"),
            ("zimbraMtaMyHostname", "Zimbra.Example.com"),
        ] {
            c.set(attr, &s(&[typed])).unwrap();
            assert_eq!(vals(&c, attr), [typed], "{attr}");
        }
        assert_eq!(c.relay_host, Some("smtp:mail.example.com".parse().unwrap()));
        assert!(!c.dns_lookups_enabled);
        assert_eq!(c.maximal_queue_lifetime, Duration::from_secs(2 * 86_400));
        assert_eq!(c.my_hostname, "zimbra.example.com");
        // Cleared, the default shows again, in the box's own spelling.
        c.set("zimbraMtaMaximalQueueLifetime", &s(&[""])).unwrap();
        assert_eq!(vals(&c, "zimbraMtaMaximalQueueLifetime"), ["5d"]);
        c.set("zimbraMtaRelayHost", &s(&[""])).unwrap();
        assert!(vals(&c, "zimbraMtaRelayHost").is_empty());
    }

    /// The page's `zimbraMtaDnsLookupsEnabled` and Zimbra's newer `zimbraMtaSmtpDnsSupportLevel`
    /// are one setting; `dnssec` is refused until the box validates DNSSEC.
    #[test]
    fn dns_lookups_under_both_zimbra_names() {
        let mut c = MtaConfig::default();
        assert_eq!(vals(&c, "zimbraMtaSmtpDnsSupportLevel"), ["enabled"]);
        c.set("zimbraMtaDnsLookupsEnabled", &s(&["FALSE"])).unwrap();
        assert!(!c.dns_lookups_enabled);
        assert_eq!(vals(&c, "zimbraMtaSmtpDnsSupportLevel"), ["disabled"]);
        c.set("zimbraMtaSmtpDnsSupportLevel", &s(&["enabled"]))
            .unwrap();
        assert!(c.dns_lookups_enabled);
        assert_eq!(vals(&c, "zimbraMtaDnsLookupsEnabled"), ["TRUE"]);
        c.set("zimbraMtaSmtpDnsSupportLevel", &s(&["disabled"]))
            .unwrap();
        assert!(!c.dns_lookups_enabled);
        let before = c.clone();
        let e = c
            .set("zimbraMtaSmtpDnsSupportLevel", &s(&["dnssec"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "zimbraMtaSmtpDnsSupportLevel dnssec: not supported yet"
        );
        assert!(c.set("zimbraMtaSmtpDnsSupportLevel", &s(&["on"])).is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn hosts_table_is_multi_valued_and_checked() {
        let mut c = MtaConfig::default();
        assert!(MtaConfig::is_multi("posternhoststable"));
        c.set(
            "posternHostsTable",
            &s(&["mail.example.com=127.0.0.2", "zimbra.example.com=127.0.0.3"]),
        )
        .unwrap();
        assert_eq!(
            c.hosts.lookup("mail.example.com"),
            ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        let e = c
            .set("posternHostsTable", &s(&["mail.example.com"]))
            .unwrap_err();
        assert!(e.to_string().contains("posternHostsTable"), "{e}");
        c.set("posternHostsTable", &s(&[""])).unwrap();
        assert!(c.hosts.is_empty());
    }

    #[test]
    fn unknown_and_planned_names_are_told_apart() {
        let mut c = MtaConfig::default();
        let unknown = c.set("zimbraMtaNoSuchThing", &s(&["1"])).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "invalid attr name: zimbraMtaNoSuchThing"
        );
        assert_eq!(unknown.code(), "account.INVALID_ATTR_NAME");
        let planned = c
            .set("zimbraAttachmentsBlocked", &s(&["TRUE"]))
            .unwrap_err();
        assert_eq!(
            planned.to_string(),
            "zimbraAttachmentsBlocked: not supported yet"
        );
    }
}
