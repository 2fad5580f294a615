//! A mail domain the box accepts mail for, with its Zimbra routing attributes.

use std::sync::Arc;

use super::address;
use super::domain_auth::{self, DomainAuth};
use super::domain_dkim::{self, DomainDkim};
use super::source::Source;
use crate::config::AttrError;
use crate::config::attr::{Typed, boolean, canonical, invalid, show_bool, single};
use crate::mail::Transport;

/// A local domain.
///
/// - Primary (authoritative, no catch-all forwarding): every address of the domain is an account
///   or alias here; anything else is rejected at RCPT TO.
/// - Secondary (catch-all forwarding set): unknown addresses are accepted and sent to
///   `zimbraMailCatchAllForwardingAddress` through the domain's `zimbraMailTransport`.
/// - Not authoritative (`posternAuthoritative FALSE`, Postfix `relay_domains`, a backup MX): every
///   address is accepted; unknown ones go to the domain's transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    name: Box<str>,
    /// As typed: it can only be `@` and the domain's name, so nothing acts on it but `gd`.
    catch_all_address: Option<Box<str>>,
    catch_all_forwarding: Option<Typed<Box<str>>>,
    pub(crate) transport: Option<Arc<Typed<Transport>>>,
    authoritative: bool,
    source: Source,
    /// `zimbraAuthMech` and its LDAP bind settings; `None` is the default (`zimbra`).
    auth: Option<Box<DomainAuth>>,
    /// Its DKIM signing key, when the directory holds one.
    dkim: Option<Box<DomainDkim>>,
}

pub(crate) const NAME: &str = "zimbraDomainName";
pub(crate) const CATCH_ALL: &str = "zimbraMailCatchAllAddress";
pub(crate) const CATCH_ALL_FORWARD: &str = "zimbraMailCatchAllForwardingAddress";
pub(crate) const TRANSPORT: &str = "zimbraMailTransport";
pub(crate) const AUTHORITATIVE: &str = "posternAuthoritative";

impl Domain {
    /// Attributes in the order `gd` prints them.
    pub const ATTRS: &'static [&'static str] = &[
        NAME,
        AUTHORITATIVE,
        CATCH_ALL,
        CATCH_ALL_FORWARD,
        TRANSPORT,
        domain_auth::MECH,
        domain_auth::URL,
        domain_auth::BIND_DN,
        domain_dkim::SELECTOR,
        domain_dkim::PRIVATE_KEY,
        domain_dkim::SIGNING_DOMAIN,
        domain_dkim::IDENTITY,
    ];

    /// A new authoritative domain with nothing set.
    pub fn new(name: &str) -> Result<Domain, address::BadAddress> {
        Ok(Domain {
            name: address::domain(name)?,
            catch_all_address: None,
            catch_all_forwarding: None,
            transport: None,
            authoritative: true,
            source: Source::Local,
            auth: None,
            dkim: None,
        })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub(crate) fn set_source(&mut self, source: Source) {
        self.source = source;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `zimbraMailCatchAllForwardingAddress`: `@domain` or an address.
    pub fn catch_all_forwarding(&self) -> Option<&str> {
        self.catch_all_forwarding.as_ref().map(|f| &**f.value())
    }

    /// `zimbraMailTransport` of the domain.
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_deref().map(Typed::value)
    }

    /// How its users authenticate (`zimbraAuthMech`).
    pub fn auth(&self) -> Option<&DomainAuth> {
        self.auth.as_deref()
    }

    /// Its DKIM settings (`zimbraDKIMSelector`, `zimbraDKIMPrivateKey`, ...).
    pub fn dkim(&self) -> Option<&DomainDkim> {
        self.dkim.as_deref()
    }

    pub fn authoritative(&self) -> bool {
        self.authoritative
    }

    /// `primary`, `secondary` or `relay`, as `gd` summarises the role.
    pub fn role(&self) -> &'static str {
        match (self.authoritative, self.catch_all_forwarding.is_some()) {
            (false, _) => "relay",
            (true, true) => "secondary",
            (true, false) => "primary",
        }
    }

    /// The values of `attr`, as `gd` shows them.
    pub fn values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let attr = canonical(Self::ATTRS, attr, "domain")?;
        let opt = |v: &Option<Box<str>>| v.iter().map(|s| s.to_string()).collect();
        Ok(match attr {
            NAME => vec![self.name.to_string()],
            AUTHORITATIVE => vec![show_bool(self.authoritative)],
            CATCH_ALL => opt(&self.catch_all_address),
            domain_auth::MECH | domain_auth::URL | domain_auth::BIND_DN => {
                match (&self.auth, attr) {
                    (Some(a), _) => a.values(attr),
                    (None, domain_auth::MECH) => vec!["zimbra".to_string()],
                    (None, _) => vec![],
                }
            }
            CATCH_ALL_FORWARD => self
                .catch_all_forwarding
                .iter()
                .map(|f| f.text().to_string())
                .collect(),
            a if DomainDkim::owns(a) => self.dkim.as_ref().map_or(vec![], |d| d.values(a)),
            _ => self
                .transport
                .iter()
                .map(|t| t.text().to_string())
                .collect(),
        })
    }

    /// Replaces the values of `attr` (none clears it).
    pub fn set(&mut self, attr: &str, values: &[String]) -> Result<(), AttrError> {
        let attr = canonical(Self::ATTRS, attr, "domain")?;
        let v = single(attr, values)?;
        match attr {
            NAME => {
                return Err(AttrError::ReadOnly {
                    attr: NAME,
                    hint: "create a new domain with cd",
                });
            }
            AUTHORITATIVE => self.authoritative = v.map_or(Ok(true), |v| boolean(attr, v))?,
            domain_auth::MECH | domain_auth::URL | domain_auth::BIND_DN => {
                let mut auth = self.auth.as_deref().cloned().unwrap_or_default();
                auth.set(attr, v)?;
                self.auth = (auth != DomainAuth::default()).then(|| Box::new(auth));
            }
            a if DomainDkim::owns(a) => {
                let mut dkim = self.dkim.as_deref().cloned().unwrap_or_default();
                dkim.set(a, v)?;
                self.dkim = (!dkim.is_empty()).then(|| Box::new(dkim));
            }
            CATCH_ALL => {
                self.catch_all_address = match v {
                    None => None,
                    Some(v) => {
                        let want = format!("@{}", self.name);
                        if !v.eq_ignore_ascii_case(&want) {
                            return Err(invalid(attr, v, format_args!("use {want}")));
                        }
                        Some(v.into())
                    }
                }
            }
            CATCH_ALL_FORWARD => {
                self.catch_all_forwarding = v
                    .map(|v| match address::forward_target(v) {
                        Ok(f) => Ok(Typed::new(f, v)),
                        Err(e) => Err(invalid(attr, v, e.reason)),
                    })
                    .transpose()?
            }
            _ => {
                self.transport = v
                    .map(|v| match v.parse() {
                        Ok(t) => Ok(Arc::new(Typed::new(t, v))),
                        Err(e) => Err(invalid(attr, v, e)),
                    })
                    .transpose()?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<String> {
        vec![v.to_string()]
    }

    #[test]
    fn secondary_setup_from_the_zimbra_page() {
        let mut d = Domain::new("Example.com").unwrap();
        assert_eq!(d.role(), "primary");
        d.set("zimbraMailCatchAllAddress", &s("@example.com"))
            .unwrap();
        d.set("zimbraMailCatchAllForwardingAddress", &s("@example.com"))
            .unwrap();
        d.set("zimbraMailTransport", &s("smtp:mail.example.com:25"))
            .unwrap();
        assert_eq!(d.role(), "secondary");
        assert_eq!(
            d.values("zimbramailtransport").unwrap(),
            ["smtp:mail.example.com:25"]
        );
        assert_eq!(
            d.transport(),
            Some(&"smtp:mail.example.com".parse().unwrap())
        );
        assert_eq!(d.catch_all_forwarding(), Some("@example.com"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_attribute() {
        let mut d = Domain::new("example.com").unwrap();
        let before = d.clone();
        for (a, v) in [
            ("zimbraMailCatchAllAddress", "@other.com"),
            ("zimbraMailCatchAllForwardingAddress", "not an address"),
            ("zimbraMailTransport", "smtp:"),
            ("posternAuthoritative", "maybe"),
            ("zimbraDomainName", "other.com"),
        ] {
            let e = d.set(a, &s(v)).unwrap_err();
            assert!(e.to_string().contains(a), "{e}");
        }
        assert!(matches!(
            d.set("zimbraFoo", &s("x")),
            Err(AttrError::Unknown { .. })
        ));
        assert_eq!(d, before);
    }
}
