//! A domain's DKIM signing key as the directory holds it (Zimbra keeps it on the domain entry in
//! LDAP, where `zmdkimkeyutil` puts it for OpenDKIM): the selector, the private key (PEM, PKCS#1
//! as `opendkim-genkey` writes it, or PKCS#8), and optionally the signing domain (`d=`) and
//! identity (`i=`). The content stage signs with it as with a key made on the box.
//!
//! The key is checked when it is set, so a bad one is refused for its domain at the sync, and it
//! is never shown (`gd` and debug output say only that there is one).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::Ed25519KeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::config::AttrError;
use crate::config::attr::invalid;

pub(crate) const SELECTOR: &str = "zimbraDKIMSelector";
pub(crate) const PRIVATE_KEY: &str = "zimbraDKIMPrivateKey";
pub(crate) const SIGNING_DOMAIN: &str = "zimbraDKIMDomain";
pub(crate) const IDENTITY: &str = "zimbraDKIMIdentity";

/// What `gd` shows for a private key.
pub const HIDDEN_KEY: &str = "(private key, not shown)";

/// The DKIM settings of one domain.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DomainDkim {
    selector: Option<Box<str>>,
    key: Option<DkimPrivateKey>,
    signing_domain: Option<Box<str>>,
    identity: Option<Box<str>>,
}

/// A checked private key: the PEM as given (stored and compared) and its DER.
#[derive(Clone)]
pub struct DkimPrivateKey {
    pem: Arc<str>,
    der: Arc<PrivateKeyDer<'static>>,
}

impl PartialEq for DkimPrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl Eq for DkimPrivateKey {}

impl DkimPrivateKey {
    /// The key, for the signer.
    pub fn der(&self) -> &Arc<PrivateKeyDer<'static>> {
        &self.der
    }
}

impl fmt::Debug for DomainDkim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("DomainDkim")
            .field("selector", &self.selector)
            .field("key", &self.key.as_ref().map(|_| HIDDEN_KEY))
            .field("signing_domain", &self.signing_domain)
            .field("identity", &self.identity)
            .finish()
    }
}

impl DomainDkim {
    pub fn owns(attr: &str) -> bool {
        [SELECTOR, PRIVATE_KEY, SIGNING_DOMAIN, IDENTITY].contains(&attr)
    }

    /// The selector and key, when both are set: then the domain's mail can be signed.
    pub fn signing(&self) -> Option<(&str, &DkimPrivateKey)> {
        Some((self.selector.as_deref()?, self.key.as_ref()?))
    }

    /// `d=`, when it is not the domain's own name.
    pub fn signing_domain(&self) -> Option<&str> {
        self.signing_domain.as_deref()
    }

    /// `i=`, when set.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        *self == DomainDkim::default()
    }

    /// The stored values of `attr` (the key's PEM included: this is what the snapshot keeps).
    pub(crate) fn values(&self, attr: &str) -> Vec<String> {
        let v = match attr {
            SELECTOR => self.selector.as_deref(),
            PRIVATE_KEY => self.key.as_ref().map(|k| &*k.pem),
            SIGNING_DOMAIN => self.signing_domain.as_deref(),
            _ => self.identity.as_deref(),
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    pub(crate) fn set(&mut self, attr: &'static str, v: Option<&str>) -> Result<(), AttrError> {
        match attr {
            SELECTOR => self.selector = v.map(|s| selector(attr, s)).transpose()?,
            PRIVATE_KEY => self.key = v.map(|pem| private_key(attr, pem)).transpose()?,
            SIGNING_DOMAIN => self.signing_domain = v.map(|d| domain(attr, d)).transpose()?,
            _ => self.identity = v.map(|i| identity(attr, i)).transpose()?,
        }
        Ok(())
    }
}

fn selector(attr: &'static str, s: &str) -> Result<Box<str>, AttrError> {
    let label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if s.len() > 253 || !s.split('.').all(label) {
        return Err(invalid(
            attr,
            s,
            "letters, digits and hyphens, like mail2026",
        ));
    }
    Ok(s.into())
}

fn domain(attr: &'static str, d: &str) -> Result<Box<str>, AttrError> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label) {
        return Err(invalid(attr, &d, "a domain name like example.com"));
    }
    Ok(d.into())
}

/// `i=`: `[local]@domain` (RFC 6376 3.5).
fn identity(attr: &'static str, i: &str) -> Result<Box<str>, AttrError> {
    let ok = i.split_once('@').is_some_and(|(local, dom)| {
        !dom.is_empty()
            && !local.contains(['@', ';'])
            && !i.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !ok {
        return Err(invalid(
            attr,
            i,
            "an identity like @example.com or user@example.com",
        ));
    }
    Ok(i.into())
}

/// A PEM RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key the crypto library loads. The
/// error never repeats the value.
fn private_key(attr: &'static str, pem: &str) -> Result<DkimPrivateKey, AttrError> {
    let refused = |why: &str| invalid(attr, "(not shown)", why);
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| refused("not a PEM private key"))?;
    let loads = match &der {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()).is_ok(),
        PrivateKeyDer::Pkcs8(k) => {
            let bytes = k.secret_pkcs8_der();
            RsaKeyPair::from_pkcs8(bytes).is_ok() || Ed25519KeyPair::from_pkcs8(bytes).is_ok()
        }
        _ => false,
    };
    if !loads {
        return Err(refused("not an RSA or Ed25519 private key"));
    }
    Ok(DkimPrivateKey {
        pem: pem.into(),
        der: Arc::new(der),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Ed25519 key in PKCS#8 PEM, as a test's LDAP entry holds it.
    pub(crate) fn ed25519_pem() -> String {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pkcs8.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    #[test]
    fn a_key_is_checked_and_never_shown() {
        let mut d = DomainDkim::default();
        let pem = ed25519_pem();
        d.set(SELECTOR, Some("zimbra2026")).unwrap();
        assert!(d.signing().is_none(), "no key yet");
        d.set(PRIVATE_KEY, Some(&pem)).unwrap();
        assert_eq!(d.signing().map(|(s, _)| s), Some("zimbra2026"));
        assert_eq!(d.values(PRIVATE_KEY), std::slice::from_ref(&pem));
        assert!(!format!("{d:?}").contains("PRIVATE KEY"), "{d:?}");
        let secretish = "-----BEGIN PRIVATE KEY-----\nAAAAsecret\n-----END PRIVATE KEY-----\n";
        let bad = d.set(PRIVATE_KEY, Some(secretish)).unwrap_err().to_string();
        assert!(
            bad.contains(PRIVATE_KEY) && !bad.contains("secret"),
            "{bad}"
        );
        let garbage = d.set(PRIVATE_KEY, Some("hello")).unwrap_err().to_string();
        assert!(garbage.contains("not a PEM private key"), "{garbage}");
        assert!(d.set(SELECTOR, Some("bad selector")).is_err());
        assert!(d.set(IDENTITY, Some("no-at-sign")).is_err());
        d.set(IDENTITY, Some("@example.com")).unwrap();
        d.set(SIGNING_DOMAIN, Some("Example.COM.")).unwrap();
        assert_eq!(d.signing_domain(), Some("example.com"));
        d.set(PRIVATE_KEY, None).unwrap();
        assert!(d.signing().is_none());
    }
}
