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

pub mod attr;
pub mod duration;
pub mod localconfig;
pub mod network;
pub mod restriction;
pub mod stored;

use std::time::Duration;

pub use attr::AttrError;
pub use duration::Unit;
pub use network::{BadNetwork, Cidr, NetworkList};
pub use restriction::{BadRestriction, Restriction};

use crate::mail::Transport;
use attr::{boolean, canonical, invalid, show_bool, single};

/// The global MTA settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtaConfig {
    /// `zimbraMtaRelayHost`: every message to another domain goes here (Postfix `relayhost`).
    pub relay_host: Option<Transport>,
    /// `zimbraMtaDnsLookupsEnabled`: MX lookups for other domains (Postfix `disable_dns_lookups`).
    pub dns_lookups_enabled: bool,
    /// `zimbraMtaMyNetworks`: clients that may relay without AUTH.
    pub my_networks: NetworkList,
    /// `zimbraMtaRestriction`.
    pub restrictions: Vec<Restriction>,
    /// `zimbraMtaMaxMessageSize` in bytes; 0 means no limit (Postfix `message_size_limit`).
    pub max_message_size: u64,
    /// `smtpd_recipient_limit`: RCPT TO commands accepted per message.
    pub recipient_limit: u32,
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
    /// `virtual_transport`: next hop of a local account when neither the account nor its domain
    /// has a `zimbraMailTransport`. Unset, such mail is accepted and stays deferred.
    pub virtual_transport: Option<Transport>,
    /// Values read from flash that this firmware refuses to set (see [`MtaConfig::load`]):
    /// attribute and value, kept so the next write does not lose them, never applied.
    unenforced: Vec<(&'static str, String)>,
}

const RELAY_HOST: &str = "zimbraMtaRelayHost";
const DNS: &str = "zimbraMtaDnsLookupsEnabled";
const MY_NETWORKS: &str = "zimbraMtaMyNetworks";
const RESTRICTION: &str = "zimbraMtaRestriction";
const MAX_SIZE: &str = "zimbraMtaMaxMessageSize";
const RCPT_LIMIT: &str = "smtpd_recipient_limit";
const HOPS: &str = "hopcount_limit";
const RUN_DELAY: &str = "zimbraMtaQueueRunDelay";
const MIN_BACKOFF: &str = "zimbraMtaMinimalBackoffTime";
const MAX_BACKOFF: &str = "zimbraMtaMaximalBackoffTime";
const QUEUE_LIFETIME: &str = "zimbraMtaMaximalQueueLifetime";
const BOUNCE_LIFETIME: &str = "zimbraMtaBounceQueueLifetime";
const DELAY_WARNING: &str = "zimbraMtaDelayWarningTime";
const MY_HOSTNAME: &str = "zimbraMtaMyHostname";
const VIRTUAL_TRANSPORT: &str = "virtual_transport";

/// Time settings: attribute, default unit of a bare number.
const TIMES: [(&str, Unit); 6] = [
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
            my_networks: NetworkList::loopback(),
            restrictions: Vec::new(),
            max_message_size: 10_240_000,
            recipient_limit: 1000,
            hopcount_limit: 50,
            queue_run_delay: Duration::from_secs(300),
            minimal_backoff_time: Duration::from_secs(300),
            maximal_backoff_time: Duration::from_secs(4000),
            maximal_queue_lifetime: Duration::from_secs(5 * 86_400),
            bounce_queue_lifetime: Duration::from_secs(5 * 86_400),
            delay_warning_time: Duration::ZERO,
            my_hostname: "localhost".to_string(),
            virtual_transport: None,
            unenforced: Vec::new(),
        }
    }
}

impl MtaConfig {
    /// Every attribute, in the order `gacf` prints them.
    pub const ATTRS: &'static [&'static str] = &[
        RELAY_HOST,
        DNS,
        MY_NETWORKS,
        RESTRICTION,
        MAX_SIZE,
        RCPT_LIMIT,
        HOPS,
        RUN_DELAY,
        MIN_BACKOFF,
        MAX_BACKOFF,
        QUEUE_LIFETIME,
        BOUNCE_LIFETIME,
        DELAY_WARNING,
        MY_HOSTNAME,
        VIRTUAL_TRANSPORT,
    ];

    /// The canonical spelling of `attr`, or an error naming it.
    pub fn attr_name(attr: &str) -> Result<&'static str, AttrError> {
        canonical(Self::ATTRS, attr, "config")
    }

    /// Whether `attr` holds several values (`+attr`/`-attr` apply to it).
    pub fn is_multi(attr: &str) -> bool {
        attr.eq_ignore_ascii_case(RESTRICTION)
    }

    /// The values of `attr` as `gacf` shows them; empty when unset.
    pub fn values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let attr = Self::attr_name(attr)?;
        let one = |s: String| vec![s];
        Ok(match attr {
            RELAY_HOST => self.relay_host.iter().map(|t| t.to_string()).collect(),
            DNS => one(show_bool(self.dns_lookups_enabled)),
            MY_NETWORKS => one(self.my_networks.to_string()),
            RESTRICTION => self.restrictions.iter().map(|r| r.to_string()).collect(),
            MAX_SIZE => one(self.max_message_size.to_string()),
            RCPT_LIMIT => one(self.recipient_limit.to_string()),
            HOPS => one(self.hopcount_limit.to_string()),
            MY_HOSTNAME => one(self.my_hostname.clone()),
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

    /// Values on flash this firmware does not apply: `(attribute, value)`, for `gacf` and
    /// `postern status` to show as ignored. Setting the attribute again drops them.
    pub fn unenforced(&self) -> &[(&'static str, String)] {
        &self.unenforced
    }

    /// The values of `attr` to write to flash: those applied and those put aside.
    pub fn stored_values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let mut values = self.values(attr)?;
        let attr = Self::attr_name(attr)?;
        let aside = self.unenforced.iter().filter(|(a, _)| *a == attr);
        values.extend(aside.map(|(_, v)| v.clone()));
        Ok(values)
    }

    fn set_unchecked(&mut self, attr: &'static str, values: &[String]) -> Result<(), AttrError> {
        let defaults = MtaConfig::default();
        // An explicit change of the attribute settles what an older firmware left on flash.
        self.unenforced.retain(|(a, _)| *a != attr);
        if attr == RESTRICTION {
            self.restrictions = values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| restriction(attr, v))
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
            MY_NETWORKS => self.my_networks = v.parse().map_err(|e| invalid(attr, v, e))?,
            MAX_SIZE => self.max_message_size = number(attr, v)?,
            RCPT_LIMIT => self.recipient_limit = number(attr, v)?,
            HOPS => self.hopcount_limit = number(attr, v)?,
            MY_HOSTNAME => self.my_hostname = hostname(attr, v)?,
            time => {
                let d = duration::parse(v, time_unit(time)).map_err(|e| invalid(attr, v, e))?;
                *self.time_mut(time) = d;
            }
        }
        Ok(())
    }

    fn copy_from(&mut self, attr: &'static str, other: &MtaConfig) {
        match attr {
            RELAY_HOST => self.relay_host = other.relay_host.clone(),
            VIRTUAL_TRANSPORT => self.virtual_transport = other.virtual_transport.clone(),
            DNS => self.dns_lookups_enabled = other.dns_lookups_enabled,
            MY_NETWORKS => self.my_networks = other.my_networks.clone(),
            RESTRICTION => self.restrictions = other.restrictions.clone(),
            MAX_SIZE => self.max_message_size = other.max_message_size,
            RCPT_LIMIT => self.recipient_limit = other.recipient_limit,
            HOPS => self.hopcount_limit = other.hopcount_limit,
            MY_HOSTNAME => self.my_hostname = other.my_hostname.clone(),
            time => *self.time_mut(time) = *other.time(time),
        }
    }

    fn time(&self, attr: &str) -> &Duration {
        match attr {
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
        if self.queue_run_delay.is_zero() {
            return Err(invalid(RUN_DELAY, "0s", "must be at least 1s"));
        }
        hostname(MY_HOSTNAME, &self.my_hostname)?;
        Ok(())
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

/// A restriction the policy stage applies; one it does not is refused as not supported yet.
fn restriction(attr: &'static str, v: &str) -> Result<Restriction, AttrError> {
    let r: Restriction = v.parse().map_err(|e| invalid(attr, v, e))?;
    if !r.is_enforced() {
        return Err(AttrError::NotSupported {
            attr: attr.to_string(),
            value: Some(r.to_string()),
        });
    }
    Ok(r)
}

fn number<T: std::str::FromStr>(attr: &'static str, v: &str) -> Result<T, AttrError> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(attr, v, "not a whole number"));
    }
    v.parse()
        .map_err(|_| invalid(attr, v, "not a whole number in range"))
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
        assert_eq!(c.all_values().len(), MtaConfig::ATTRS.len() - 3);
    }

    #[test]
    fn set_parses_validates_and_resets() {
        let mut c = MtaConfig::default();
        c.set("zimbramtarelayhost", &s(&["[smtp.isp.example]:587"]))
            .unwrap();
        assert_eq!(
            vals(&c, "zimbraMtaRelayHost"),
            ["smtp:[smtp.isp.example]:587"]
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

    /// No restriction is applied yet, so none is stored: the admin learns at once that
    /// `reject_rbl_client` would do nothing, and a typo still reads as a typo.
    #[test]
    fn restrictions_the_policy_stage_does_not_apply_are_refused() {
        let mut c = MtaConfig::default();
        let before = c.clone();
        for v in [
            "reject_non_fqdn_sender",
            "reject_rbl_client zen.spamhaus.org",
        ] {
            let err = c.set("zimbraMtaRestriction", &s(&[v])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("zimbraMtaRestriction {v}: not supported yet")
            );
            assert_eq!(err.code(), "service.UNSUPPORTED");
        }
        let typo = c.set("zimbraMtaRestriction", &s(&["reject_everything"]));
        assert!(matches!(typo, Err(AttrError::Invalid { .. })), "{typo:?}");
        assert_eq!(c, before);
    }

    /// A flash written when restrictions were stored still loads: the values are put aside,
    /// shown as ignored, kept for the next write, and dropped once the admin sets the attribute.
    #[test]
    fn restrictions_already_on_flash_load_aside() {
        let mut c = MtaConfig::default();
        let stored = s(&[
            "reject_rbl_client Zen.Spamhaus.org",
            "reject_non_fqdn_sender",
        ]);
        c.load("zimbraMtaRestriction", &stored).unwrap();
        assert!(c.restrictions.is_empty());
        assert!(vals(&c, "zimbraMtaRestriction").is_empty());
        assert_eq!(
            c.unenforced(),
            [
                (
                    "zimbraMtaRestriction",
                    "reject_rbl_client zen.spamhaus.org".to_string()
                ),
                ("zimbraMtaRestriction", "reject_non_fqdn_sender".to_string()),
            ]
        );
        assert_eq!(
            c.stored_values("zimbraMtaRestriction").unwrap(),
            [
                "reject_rbl_client zen.spamhaus.org",
                "reject_non_fqdn_sender"
            ]
        );
        assert!(c.load("zimbraMtaRestriction", &s(&["reject_all"])).is_err());
        c.load("zimbraMtaRelayHost", &s(&["relay.example.net"]))
            .unwrap();
        assert_eq!(c.unenforced().len(), 2);
        c.set("zimbraMtaRestriction", &[]).unwrap();
        assert!(c.unenforced().is_empty());
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
        let planned = c.set("zimbraspamkillpercent", &s(&["75"])).unwrap_err();
        assert_eq!(
            planned.to_string(),
            "zimbraSpamKillPercent: not supported yet"
        );
    }
}
