//! Settings of sender authentication (`policy::auth`): SPF at RCPT, DKIM verification and DMARC at
//! the end of data. Zimbra has no attributes for them (its MTA leaves them to add-ons: policyd-spf,
//! OpenDKIM, OpenDMARC), so they are `postern...` names that say what those add-ons' settings say,
//! and every check is off until the admin turns it on.

use std::time::Duration;

use super::attr::{AttrError, boolean, invalid, show_bool, single};
use super::dnsbl::is_domain;
use super::duration::{self, Unit};

/// `off`, `record` or `reject`: what an SPF `fail` does (policyd-spf's `Mail_From_reject`).
pub const SPF_ACTION: &str = "posternSpfAction";
/// TRUE: check DKIM signatures of received mail (OpenDKIM `Mode v`).
pub const DKIM_VERIFY: &str = "posternDkimVerify";
/// TRUE: evaluate the sender's DMARC policy and record it (OpenDMARC, `RejectFailures false`).
pub const DMARC_VERIFY: &str = "posternDmarcVerify";
/// TRUE: act on DMARC `p=reject` and `p=quarantine` (OpenDMARC `RejectFailures true`).
pub const DMARC_ENFORCE: &str = "posternDmarcEnforce";
/// Domains whose ARC seal is trusted (RFC 8617 §7.2): a DMARC failure of a message whose chain
/// they sealed and which passes is delivered as a local policy override (RFC 7489 §6.7).
pub const ARC_TRUSTED_SEALERS: &str = "posternArcTrustedSealers";
/// TRUE: send DMARC aggregate reports (RFC 7489 §7.2) to the `rua` of evaluated domains.
pub const DMARC_REPORT: &str = "posternDmarcReport";
/// The From address of the reports; its domain is the reporting organisation.
pub const DMARC_REPORT_ADDRESS: &str = "posternDmarcReportAddress";
/// How often the aggregate reports go out (OpenDMARC's reports run from cron, daily).
pub const DMARC_REPORT_INTERVAL: &str = "posternDmarcReportInterval";

/// The report interval when none is set: a day, as RFC 7489 §7.2 asks receivers to support.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(86_400);

/// What an SPF check does with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpfAction {
    /// Not checked (the default: Zimbra's MTA does not check SPF without an add-on).
    #[default]
    Off,
    /// Checked and recorded in `Authentication-Results`; nothing refused.
    Record,
    /// `fail` refused at RCPT with `550 5.7.23`, `temperror` deferred with `451 4.7.24`.
    Reject,
}

impl SpfAction {
    fn parse(attr: &'static str, v: &str) -> Result<SpfAction, AttrError> {
        match v.to_ascii_lowercase().as_str() {
            "off" => Ok(SpfAction::Off),
            "record" => Ok(SpfAction::Record),
            "reject" => Ok(SpfAction::Reject),
            _ => Err(invalid(attr, v, "use off, record or reject")),
        }
    }

    fn show(self) -> String {
        match self {
            SpfAction::Off => "off",
            SpfAction::Record => "record",
            SpfAction::Reject => "reject",
        }
        .to_string()
    }
}

/// The sender authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `posternSpfAction`.
    pub spf: SpfAction,
    /// `posternDkimVerify`.
    pub dkim_verify: bool,
    /// `posternDmarcVerify`.
    pub dmarc_verify: bool,
    /// `posternDmarcEnforce`.
    pub dmarc_enforce: bool,
    /// `posternArcTrustedSealers`, lower case; empty: no sealer is trusted.
    pub arc_trusted_sealers: Vec<String>,
    /// `posternDmarcReport`.
    pub dmarc_report: bool,
    /// `posternDmarcReportAddress`; `None`: `postmaster@` the box's host name.
    pub dmarc_report_address: Option<String>,
    /// `posternDmarcReportInterval`.
    pub dmarc_report_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            spf: SpfAction::Off,
            dkim_verify: false,
            dmarc_verify: false,
            dmarc_enforce: false,
            arc_trusted_sealers: Vec::new(),
            dmarc_report: false,
            dmarc_report_address: None,
            dmarc_report_interval: DEFAULT_REPORT_INTERVAL,
        }
    }
}

impl AuthConfig {
    pub const ATTRS: &'static [&'static str] = &[
        SPF_ACTION,
        DKIM_VERIFY,
        DMARC_VERIFY,
        DMARC_ENFORCE,
        ARC_TRUSTED_SEALERS,
        DMARC_REPORT,
        DMARC_REPORT_ADDRESS,
        DMARC_REPORT_INTERVAL,
    ];

    pub fn owns(attr: &str) -> bool {
        Self::ATTRS.contains(&attr)
    }

    pub fn is_multi(attr: &str) -> bool {
        attr.eq_ignore_ascii_case(ARC_TRUSTED_SEALERS)
    }

    /// Whether the SPF result is needed: for itself, or for DMARC.
    pub fn checks_spf(&self) -> bool {
        self.spf != SpfAction::Off || self.checks_dmarc()
    }

    /// Whether DKIM signatures are verified: for themselves, or for DMARC.
    pub fn checks_dkim(&self) -> bool {
        self.dkim_verify || self.checks_dmarc()
    }

    /// Enforcing or reporting DMARC evaluates it too.
    pub fn checks_dmarc(&self) -> bool {
        self.dmarc_verify || self.dmarc_enforce || self.dmarc_report
    }

    /// ARC chains are verified with DKIM signatures (as OpenARC runs beside OpenDKIM). Trusted
    /// sealers act on DMARC failures, so they do nothing until DMARC is evaluated.
    pub fn checks_arc(&self) -> bool {
        self.checks_dkim()
    }

    /// Whether `domain` (an ARC seal's `d=`) is a trusted sealer.
    pub fn trusts_sealer(&self, domain: &str) -> bool {
        self.arc_trusted_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(domain.trim_end_matches('.')))
    }

    /// Whether anything is checked at the end of data.
    pub fn checks_message(&self) -> bool {
        self.checks_spf() || self.checks_dkim()
    }

    pub fn values(&self, attr: &str) -> Vec<String> {
        vec![match attr {
            SPF_ACTION => self.spf.show(),
            DKIM_VERIFY => show_bool(self.dkim_verify),
            DMARC_VERIFY => show_bool(self.dmarc_verify),
            ARC_TRUSTED_SEALERS => return self.arc_trusted_sealers.clone(),
            DMARC_REPORT => show_bool(self.dmarc_report),
            DMARC_REPORT_ADDRESS => return self.dmarc_report_address.iter().cloned().collect(),
            DMARC_REPORT_INTERVAL => duration::show(self.dmarc_report_interval, Unit::Hours),
            _ => show_bool(self.dmarc_enforce),
        }]
    }

    /// Sets `attr`; no value restores its default.
    pub fn set(&mut self, attr: &'static str, values: &[String]) -> Result<(), AttrError> {
        if attr == ARC_TRUSTED_SEALERS {
            return self.set_sealers(values);
        }
        let Some(v) = single(attr, values)? else {
            self.copy_from(attr, &AuthConfig::default());
            return Ok(());
        };
        match attr {
            SPF_ACTION => self.spf = SpfAction::parse(attr, v)?,
            DKIM_VERIFY => self.dkim_verify = boolean(attr, v)?,
            DMARC_VERIFY => self.dmarc_verify = boolean(attr, v)?,
            DMARC_REPORT => self.dmarc_report = boolean(attr, v)?,
            DMARC_REPORT_ADDRESS => self.dmarc_report_address = Some(super::mailbox(attr, v)?),
            DMARC_REPORT_INTERVAL => self.dmarc_report_interval = report_interval(attr, v)?,
            _ => self.dmarc_enforce = boolean(attr, v)?,
        }
        Ok(())
    }

    fn set_sealers(&mut self, values: &[String]) -> Result<(), AttrError> {
        let mut sealers = Vec::with_capacity(values.len());
        for v in values.iter().filter(|v| !v.is_empty()) {
            if !is_domain(v) {
                return Err(invalid(ARC_TRUSTED_SEALERS, v, "not a domain name"));
            }
            let domain = v.trim_end_matches('.').to_ascii_lowercase();
            if !sealers.contains(&domain) {
                sealers.push(domain);
            }
        }
        self.arc_trusted_sealers = sealers;
        Ok(())
    }

    /// Restores `attr` to `other`'s value.
    pub fn copy_from(&mut self, attr: &str, other: &AuthConfig) {
        match attr {
            SPF_ACTION => self.spf = other.spf,
            DKIM_VERIFY => self.dkim_verify = other.dkim_verify,
            DMARC_VERIFY => self.dmarc_verify = other.dmarc_verify,
            ARC_TRUSTED_SEALERS => self.arc_trusted_sealers = other.arc_trusted_sealers.clone(),
            DMARC_REPORT => self.dmarc_report = other.dmarc_report,
            DMARC_REPORT_ADDRESS => self.dmarc_report_address = other.dmarc_report_address.clone(),
            DMARC_REPORT_INTERVAL => self.dmarc_report_interval = other.dmarc_report_interval,
            _ => self.dmarc_enforce = other.dmarc_enforce,
        }
    }
}

/// At least ten seconds (short intervals are for trying it out: every interval with traffic
/// mails each `rua` a report), at most a week (RFC 7489 §7.2 expects a report at least daily).
fn report_interval(attr: &'static str, v: &str) -> Result<Duration, AttrError> {
    let d = duration::parse(v, Unit::Hours).map_err(|e| invalid(attr, v, e))?;
    if d < Duration::from_secs(10) || d > Duration::from_secs(7 * 86_400) {
        return Err(invalid(attr, v, "use a time from 10s to 7d"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_enforcing_dmarc_checks_all_it_needs() {
        let mut c = AuthConfig::default();
        assert!(!c.checks_message());
        c.set(DMARC_ENFORCE, &["TRUE".into()]).unwrap();
        assert!(c.checks_spf() && c.checks_dkim() && c.checks_dmarc());
        assert_eq!(c.spf, SpfAction::Off, "SPF itself still refuses nothing");
        c.set(SPF_ACTION, &["Reject".into()]).unwrap();
        assert_eq!(c.values(SPF_ACTION), ["reject"]);
        assert!(c.set(SPF_ACTION, &["hardfail".into()]).is_err());
        c.set(SPF_ACTION, &[]).unwrap();
        assert_eq!(c.spf, SpfAction::Off);
    }

    #[test]
    fn sealers_are_domains_and_report_settings_are_checked() {
        let mut c = AuthConfig::default();
        assert!(!c.checks_arc() && !c.trusts_sealer("fwd.example"));
        c.set(
            ARC_TRUSTED_SEALERS,
            &[
                "Fwd.Example.".into(),
                "lists.example".into(),
                "fwd.example".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            c.values(ARC_TRUSTED_SEALERS),
            ["fwd.example", "lists.example"]
        );
        assert!(c.trusts_sealer("FWD.example"));
        assert!(!c.trusts_sealer("evil-fwd.example"));
        assert!(
            c.set(ARC_TRUSTED_SEALERS, &["not a domain".into()])
                .is_err()
        );
        c.set(ARC_TRUSTED_SEALERS, &[]).unwrap();
        assert!(c.arc_trusted_sealers.is_empty());

        assert_eq!(c.values(DMARC_REPORT_INTERVAL), ["1d"]);
        c.set(DMARC_REPORT, &["TRUE".into()]).unwrap();
        assert!(
            c.checks_dmarc() && c.checks_spf(),
            "a report needs the evaluation"
        );
        c.set(DMARC_REPORT_INTERVAL, &["6".into()]).unwrap();
        assert_eq!(c.dmarc_report_interval, Duration::from_secs(6 * 3600));
        assert!(c.set(DMARC_REPORT_INTERVAL, &["9s".into()]).is_err());
        assert!(c.set(DMARC_REPORT_INTERVAL, &["8d".into()]).is_err());
        c.set(DMARC_REPORT_ADDRESS, &["DMARC@Example.com".into()])
            .unwrap();
        assert_eq!(c.values(DMARC_REPORT_ADDRESS), ["dmarc@example.com"]);
        assert!(c.set(DMARC_REPORT_ADDRESS, &["nobody".into()]).is_err());
        c.set(DMARC_REPORT_ADDRESS, &[]).unwrap();
        assert_eq!(c.dmarc_report_address, None);
    }
}
