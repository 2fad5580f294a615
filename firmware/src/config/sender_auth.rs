//! Settings of sender authentication (`policy::auth`): SPF at RCPT, DKIM verification and DMARC at
//! the end of data. Zimbra has no attributes for them (its MTA leaves them to add-ons: policyd-spf,
//! OpenDKIM, OpenDMARC), so they are `postern...` names that say what those add-ons' settings say,
//! and every check is off until the admin turns it on.

use super::attr::{AttrError, boolean, invalid, show_bool, single};

/// `off`, `record` or `reject`: what an SPF `fail` does (policyd-spf's `Mail_From_reject`).
pub const SPF_ACTION: &str = "posternSpfAction";
/// TRUE: check DKIM signatures of received mail (OpenDKIM `Mode v`).
pub const DKIM_VERIFY: &str = "posternDkimVerify";
/// TRUE: evaluate the sender's DMARC policy and record it (OpenDMARC, `RejectFailures false`).
pub const DMARC_VERIFY: &str = "posternDmarcVerify";
/// TRUE: act on DMARC `p=reject` and `p=quarantine` (OpenDMARC `RejectFailures true`).
pub const DMARC_ENFORCE: &str = "posternDmarcEnforce";

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// `posternSpfAction`.
    pub spf: SpfAction,
    /// `posternDkimVerify`.
    pub dkim_verify: bool,
    /// `posternDmarcVerify`.
    pub dmarc_verify: bool,
    /// `posternDmarcEnforce`.
    pub dmarc_enforce: bool,
}

impl AuthConfig {
    pub const ATTRS: &'static [&'static str] =
        &[SPF_ACTION, DKIM_VERIFY, DMARC_VERIFY, DMARC_ENFORCE];

    pub fn owns(attr: &str) -> bool {
        Self::ATTRS.contains(&attr)
    }

    /// Whether the SPF result is needed: for itself, or for DMARC.
    pub fn checks_spf(&self) -> bool {
        self.spf != SpfAction::Off || self.checks_dmarc()
    }

    /// Whether DKIM signatures are verified: for themselves, or for DMARC.
    pub fn checks_dkim(&self) -> bool {
        self.dkim_verify || self.checks_dmarc()
    }

    /// Enforcing DMARC evaluates it too.
    pub fn checks_dmarc(&self) -> bool {
        self.dmarc_verify || self.dmarc_enforce
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
            _ => show_bool(self.dmarc_enforce),
        }]
    }

    /// Sets `attr`; no value restores its default.
    pub fn set(&mut self, attr: &'static str, values: &[String]) -> Result<(), AttrError> {
        let Some(v) = single(attr, values)? else {
            self.copy_from(attr, &AuthConfig::default());
            return Ok(());
        };
        match attr {
            SPF_ACTION => self.spf = SpfAction::parse(attr, v)?,
            DKIM_VERIFY => self.dkim_verify = boolean(attr, v)?,
            DMARC_VERIFY => self.dmarc_verify = boolean(attr, v)?,
            _ => self.dmarc_enforce = boolean(attr, v)?,
        }
        Ok(())
    }

    /// Restores `attr` to `other`'s value.
    pub fn copy_from(&mut self, attr: &str, other: &AuthConfig) {
        match attr {
            SPF_ACTION => self.spf = other.spf,
            DKIM_VERIFY => self.dkim_verify = other.dkim_verify,
            DMARC_VERIFY => self.dmarc_verify = other.dmarc_verify,
            _ => self.dmarc_enforce = other.dmarc_enforce,
        }
    }
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
}
