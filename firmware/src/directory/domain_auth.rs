//! How a domain's users authenticate (`zimbraAuthMech`): against the password hash in the
//! directory (`zimbra`, the default), or by a simple bind as the user to another LDAP server
//! (`ldap`, `ad`: for directories whose hashes cannot be read, such as Active Directory). The
//! bind always runs over TLS: `ldaps://`, or StartTLS on `ldap://`; a password never crosses
//! the network in clear.

use crate::config::AttrError;
use crate::config::attr::invalid;
use crate::config::localconfig::LdapUrl;

pub(crate) const MECH: &str = "zimbraAuthMech";
pub(crate) const URL: &str = "zimbraAuthLdapURL";
pub(crate) const BIND_DN: &str = "zimbraAuthLdapBindDn";

/// `zimbraAuthMech`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMech {
    #[default]
    Zimbra,
    Ldap,
    ActiveDirectory,
}

/// A domain's AUTH settings beyond the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainAuth {
    pub mech: AuthMech,
    pub url: Option<LdapUrl>,
    /// `%n` user@domain, `%u` the local part, `%d` the domain, `%D` `dc=` parts of the domain.
    pub bind_dn: Option<String>,
}

impl DomainAuth {
    pub(crate) fn values(&self, attr: &str) -> Vec<String> {
        match attr {
            MECH => vec![
                match self.mech {
                    AuthMech::Zimbra => "zimbra",
                    AuthMech::Ldap => "ldap",
                    AuthMech::ActiveDirectory => "ad",
                }
                .to_string(),
            ],
            URL => self.url.iter().map(|u| u.to_string()).collect(),
            _ => self.bind_dn.iter().cloned().collect(),
        }
    }

    pub(crate) fn set(&mut self, attr: &'static str, v: Option<&str>) -> Result<(), AttrError> {
        match attr {
            MECH => {
                self.mech = match v.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("zimbra") => AuthMech::Zimbra,
                    Some("ldap") => AuthMech::Ldap,
                    Some("ad") => AuthMech::ActiveDirectory,
                    Some(_) => {
                        return Err(invalid(attr, v.unwrap_or(""), "use zimbra, ldap or ad"));
                    }
                }
            }
            URL => {
                // Zimbra allows several space-separated URLs; the first is used.
                self.url = v
                    .and_then(|v| v.split_whitespace().next())
                    .map(|u| u.parse::<LdapUrl>().map_err(|e| invalid(attr, u, e)))
                    .transpose()?
            }
            _ => {
                if let Some(dn) = v
                    && !dn.contains('%')
                {
                    return Err(invalid(attr, dn, "name the user with %n, %u, %d or %D"));
                }
                self.bind_dn = v.map(str::to_string)
            }
        }
        Ok(())
    }

    /// The DN to bind as for `address`, or `None` when the domain does not bind (or lacks the
    /// settings to).
    pub fn bind_dn_for(&self, address: &str) -> Option<(LdapUrl, String)> {
        if self.mech == AuthMech::Zimbra {
            return None;
        }
        let (local, domain) = address.rsplit_once('@')?;
        let dcs: Vec<String> = domain.split('.').map(|p| format!("dc={p}")).collect();
        let template = match (&self.bind_dn, self.mech) {
            (Some(t), _) => t.clone(),
            // Active Directory takes the user principal name as the bind DN.
            (None, AuthMech::ActiveDirectory) => "%n".to_string(),
            (None, _) => return None,
        };
        let dn = template
            .replace("%n", address)
            .replace("%u", local)
            .replace("%D", &dcs.join(","))
            .replace("%d", domain);
        Some((self.url.clone()?, dn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_dns_expand_as_zimbra_does() {
        let mut a = DomainAuth::default();
        assert_eq!(a.bind_dn_for("joe@example.com"), None);
        a.set(MECH, Some("LDAP")).unwrap();
        a.set(URL, Some("ldaps://dc1.example.com ldaps://dc2.example.com"))
            .unwrap();
        assert_eq!(a.bind_dn_for("joe@example.com"), None, "no bind DN yet");
        a.set(BIND_DN, Some("uid=%u,ou=people,%D")).unwrap();
        let (url, dn) = a.bind_dn_for("joe@example.com").unwrap();
        assert_eq!(url.to_string(), "ldaps://dc1.example.com");
        assert_eq!(dn, "uid=joe,ou=people,dc=example,dc=com");
        a.set(MECH, Some("ad")).unwrap();
        a.set(BIND_DN, None).unwrap();
        assert_eq!(
            a.bind_dn_for("joe@example.com").unwrap().1,
            "joe@example.com"
        );
        assert!(a.set(MECH, Some("kerberos5")).is_err());
        assert!(a.set(BIND_DN, Some("cn=fixed")).is_err());
        assert!(a.set(URL, Some("http://x")).is_err());
    }
}
