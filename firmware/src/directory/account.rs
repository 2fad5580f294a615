//! An account: a mailbox address the box knows, with where its mail goes.

use std::borrow::Cow;
use std::sync::Arc;

use super::address;
use super::ldap::SyncedHash;
use super::source::Source;
use crate::config::AttrError;
use crate::config::attr::{Typed, boolean, canonical, invalid, show_bool, single};
use crate::mail::Transport;

/// `zimbraMailStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStatus {
    Enabled,
    Disabled,
}

/// An account. Small on purpose (the box holds hundreds of thousands): forwarding, which few
/// accounts have, lives behind one pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    address: super::text::Text,
    /// Shared between the accounts that name the same next hop the same way.
    pub(crate) transport: Option<Arc<Typed<Transport>>>,
    password: Option<Password>,
    forwarding: Option<Box<Forwarding>>,
    status: MailStatus,
    source: Source,
}

/// `userPassword`: the hash as text, or, for an account built from the LDAP sync's model, where
/// the model keeps it.
#[derive(Debug, Clone)]
enum Password {
    Text(Arc<str>),
    Synced(SyncedHash),
}

/// The same hash is the same password, wherever it is kept (a poll's accounts hold theirs as
/// text, a full sync's in the model).
impl PartialEq for Password {
    fn eq(&self, other: &Password) -> bool {
        match (self, other) {
            (Password::Text(a), Password::Text(b)) => a == b,
            (Password::Synced(a), Password::Synced(b)) => a == b,
            (Password::Text(t), Password::Synced(s)) | (Password::Synced(s), Password::Text(t)) => {
                s.text().as_deref() == Some(&**t)
            }
        }
    }
}

impl Eq for Password {}

/// Where an account's mail is forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// `zimbraMailForwardingAddress` (set by the admin, many).
    pub addresses: Vec<Box<str>>,
    /// `zimbraPrefMailForwardingAddress` (the user's own).
    pub pref: Option<Box<str>>,
    /// `zimbraPrefMailLocalDeliveryDisabled`: forward only, keep no copy.
    pub local_delivery_disabled: bool,
    /// `addresses` and `pref` as typed, for `ga` and flash.
    typed: Vec<Box<str>>,
    pref_typed: Option<Box<str>>,
}

pub(crate) const ADDRESS: &str = "zimbraMailDeliveryAddress";
pub(crate) const ALIAS: &str = "zimbraMailAlias";
pub(crate) const STATUS: &str = "zimbraMailStatus";
pub(crate) const TRANSPORT: &str = "zimbraMailTransport";
pub(crate) const FORWARD: &str = "zimbraMailForwardingAddress";
pub(crate) const PREF_FORWARD: &str = "zimbraPrefMailForwardingAddress";
pub(crate) const LOCAL_DISABLED: &str = "zimbraPrefMailLocalDeliveryDisabled";
pub(crate) const PASSWORD: &str = "userPassword";

impl Account {
    /// Attributes in the order `ga` prints them.
    pub const ATTRS: &'static [&'static str] = &[
        ADDRESS,
        ALIAS,
        STATUS,
        TRANSPORT,
        FORWARD,
        PREF_FORWARD,
        LOCAL_DISABLED,
        PASSWORD,
    ];

    /// A new enabled account with nothing else set.
    pub fn new(address: &str) -> Result<Account, address::BadAddress> {
        Ok(Account {
            address: address::address(address)?.into(),
            transport: None,
            password: None,
            forwarding: None,
            status: MailStatus::Enabled,
            source: Source::Local,
        })
    }

    /// `zimbraMailDeliveryAddress`, lowercase.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The domain part of the address.
    pub fn domain(&self) -> &str {
        address::split(&self.address).map_or("", |(_, d)| d)
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub(crate) fn set_source(&mut self, source: Source) {
        self.source = source;
    }

    pub fn status(&self) -> MailStatus {
        self.status
    }

    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_deref().map(Typed::value)
    }

    /// `userPassword` as stored (a hash string such as `{SSHA512}...`), for AUTH.
    pub fn password(&self) -> Option<Cow<'_, str>> {
        match self.password.as_ref()? {
            Password::Text(t) => Some(Cow::Borrowed(t)),
            Password::Synced(h) => h.text().map(Cow::Owned),
        }
    }

    /// Sets `userPassword` to an already hashed value (`sp`, `ca`, and the LDAP sync).
    pub fn set_password_hash(&mut self, hash: Option<String>) {
        self.password = hash.map(|h| Password::Text(Arc::from(h)));
    }

    /// The same, with a hash another holder keeps too.
    pub(crate) fn share_password_hash(&mut self, hash: Option<Arc<str>>) {
        self.password = hash.map(Password::Text);
    }

    /// The hash is the one the LDAP sync's model keeps for the entry this account was built
    /// from.
    pub(crate) fn use_synced_password(&mut self, hash: SyncedHash) {
        self.password = Some(Password::Synced(hash));
    }

    pub fn forwarding(&self) -> Option<&Forwarding> {
        self.forwarding.as_deref()
    }

    /// The addresses this account's mail is forwarded to, admin's first.
    pub fn forward_targets(&self) -> impl Iterator<Item = &str> {
        self.forwarding
            .iter()
            .flat_map(|f| f.addresses.iter().chain(f.pref.iter()))
            .map(|s| &**s)
    }

    /// Whether a copy stays with the account itself when it forwards.
    pub fn delivers_locally(&self) -> bool {
        self.forwarding.as_ref().is_none_or(|f| {
            !f.local_delivery_disabled || f.addresses.is_empty() && f.pref.is_none()
        })
    }

    /// The values of `attr` as `ga` shows them. Aliases are kept by the directory, not here.
    pub fn values(&self, attr: &str) -> Result<Vec<String>, AttrError> {
        let attr = canonical(Self::ATTRS, attr, "account")?;
        let fwd = self.forwarding.as_deref();
        Ok(match attr {
            ADDRESS => vec![self.address.to_string()],
            STATUS => vec![
                match self.status {
                    MailStatus::Enabled => "enabled",
                    MailStatus::Disabled => "disabled",
                }
                .to_string(),
            ],
            TRANSPORT => self
                .transport
                .iter()
                .map(|t| t.text().to_string())
                .collect(),
            FORWARD => fwd.map_or(vec![], |f| f.typed.iter().map(|a| a.to_string()).collect()),
            PREF_FORWARD => fwd
                .and_then(|f| f.pref_typed.as_ref())
                .map(|a| a.to_string())
                .into_iter()
                .collect(),
            LOCAL_DISABLED => match fwd {
                Some(f) if f.local_delivery_disabled => vec![show_bool(true)],
                _ => vec![],
            },
            PASSWORD => self.password().map(Cow::into_owned).into_iter().collect(),
            _ => vec![],
        })
    }

    /// Replaces the values of `attr` (none clears it). On error the account is unchanged.
    pub fn set(&mut self, attr: &str, values: &[String]) -> Result<(), AttrError> {
        let attr = canonical(Self::ATTRS, attr, "account")?;
        let read_only = |hint| Err(AttrError::ReadOnly { attr, hint });
        match attr {
            ADDRESS => return read_only("delete the account and create it under the new name"),
            ALIAS => return read_only("use aaa/raa (addAccountAlias, removeAccountAlias)"),
            PASSWORD => return read_only("use sp (setPassword)"),
            FORWARD => {
                let typed: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
                let list = typed
                    .iter()
                    .map(|v| address::address(v).map_err(|e| invalid(attr, v, e.reason)))
                    .collect::<Result<Vec<_>, _>>()?;
                let f = self.forwarding_mut();
                f.addresses = list;
                f.typed = typed.iter().map(|v| v.as_str().into()).collect();
            }
            _ => {
                let v = single(attr, values)?;
                match attr {
                    STATUS => {
                        self.status = match v.map(str::to_ascii_lowercase).as_deref() {
                            None | Some("enabled") => MailStatus::Enabled,
                            Some("disabled") => MailStatus::Disabled,
                            Some(_) => {
                                return Err(invalid(
                                    attr,
                                    v.unwrap_or(""),
                                    "use enabled or disabled",
                                ));
                            }
                        }
                    }
                    TRANSPORT => {
                        self.transport = v
                            .map(|v| match v.parse() {
                                Ok(t) => Ok(Arc::new(Typed::new(t, v))),
                                Err(e) => Err(invalid(attr, v, e)),
                            })
                            .transpose()?
                    }
                    PREF_FORWARD => {
                        let a = v
                            .map(|v| address::address(v).map_err(|e| invalid(attr, v, e.reason)))
                            .transpose()?;
                        let f = self.forwarding_mut();
                        f.pref = a;
                        f.pref_typed = v.map(Into::into);
                    }
                    _ => {
                        let b = v.map_or(Ok(false), |v| boolean(attr, v))?;
                        self.forwarding_mut().local_delivery_disabled = b;
                    }
                }
            }
        }
        if self.forwarding.as_deref() == Some(&Forwarding::default()) {
            self.forwarding = None;
        }
        Ok(())
    }

    fn forwarding_mut(&mut self) -> &mut Forwarding {
        self.forwarding.get_or_insert_with(Box::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<String> {
        vec![v.to_string()]
    }

    #[test]
    fn attributes_round_trip() {
        let mut a = Account::new("Bar@Example.com").unwrap();
        assert_eq!(a.address(), "bar@example.com");
        assert_eq!(a.domain(), "example.com");
        a.set("zimbraMailTransport", &s("smtp:mail.example.com:25"))
            .unwrap();
        assert_eq!(
            a.values("zimbraMailTransport").unwrap(),
            ["smtp:mail.example.com:25"]
        );
        assert_eq!(
            a.transport(),
            Some(&"smtp:mail.example.com".parse().unwrap())
        );
        a.set("zimbraMailStatus", &s("disabled")).unwrap();
        assert_eq!(a.status(), MailStatus::Disabled);
        a.set(
            "zimbraMailForwardingAddress",
            &["x@other.org".to_string(), "Y@other.org".to_string()],
        )
        .unwrap();
        a.set("zimbraPrefMailLocalDeliveryDisabled", &s("TRUE"))
            .unwrap();
        assert_eq!(
            a.forward_targets().collect::<Vec<_>>(),
            ["x@other.org", "y@other.org"]
        );
        assert_eq!(
            a.values("zimbraMailForwardingAddress").unwrap(),
            ["x@other.org", "Y@other.org"],
            "shown as typed"
        );
        assert!(!a.delivers_locally());
        a.set("zimbraMailForwardingAddress", &[]).unwrap();
        a.set("zimbraPrefMailLocalDeliveryDisabled", &[]).unwrap();
        assert!(a.forwarding().is_none() && a.delivers_locally());
    }

    #[test]
    fn refused_values_name_the_attribute() {
        let mut a = Account::new("bar@example.com").unwrap();
        let before = a.clone();
        for (attr, v) in [
            ("zimbraMailTransport", "lmtp:zimbra.example.com"),
            ("zimbraMailStatus", "active"),
            ("zimbraMailForwardingAddress", "nobody"),
            ("zimbraPrefMailForwardingAddress", "a@b"),
            ("userPassword", "secret"),
            ("zimbraMailAlias", "x@example.com"),
        ] {
            let e = a.set(attr, &s(v)).unwrap_err();
            assert!(e.to_string().contains(attr), "{e}");
        }
        assert!(matches!(
            a.set("zimbraMailQuota", &s("1")),
            Err(AttrError::Unknown { .. })
        ));
        assert_eq!(a, before);
    }
}
