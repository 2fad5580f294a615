//! DKIM signing of the box's outbound mail, as OpenDKIM signs beside the Zimbra MTA: mail from
//! `$mynetworks` or an authenticated client whose `From:` domain has a key is signed with it
//! (`rsa-sha256` or `ed25519-sha256`, relaxed/relaxed, OpenDKIM's set of header fields) by
//! `mail-auth`. The keys are made by `postern dkim keygen` ([`keys`]) and kept in the box config
//! slot on flash ([`store`]); the running services hold them in a [`KeyRing`] that the admin
//! commands refresh, so a new key signs from the next message. A domain without such a key is
//! signed with the key the directory holds for it (Zimbra's, from LDAP: see
//! [`crate::directory::domain_dkim`]); a key made on the box comes first.
//!
//! The signature covers the header section as it is stored (after the content stage's edits)
//! and the body, hashed as the content stage reads it back from the spool a piece at a time
//! ([`KeyRing::signer_for`], then [`field`]): a message of any size is signed without being held.

pub mod keys;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, DkimSigningStream, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::stored::DkimKeyRecord;
use crate::directory::Directory;
use crate::directory::domain_dkim::DomainDkim;
use keys::{Algorithm, KeyError};

/// The header fields signed when present (OpenDKIM's default `SignHeaders`, less the rarely
/// used ones); `From` is always signed.
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
];

pub type Signer = DkimSigner<DkimKey, Done>;

/// Signers made from directory-held keys, by domain, with the settings each was made from.
type DirectorySigners = HashMap<String, (DomainDkim, Arc<Signer>)>;

/// The signing keys in use, by domain. Cheap to clone; all clones see a [`KeyRing::replace`].
#[derive(Clone, Default)]
pub struct KeyRing {
    signers: Arc<RwLock<HashMap<String, Arc<Signer>>>>,
    /// Signers made from the directory's keys, by domain, with the settings they were made
    /// from: made again only when those change.
    from_directory: Arc<RwLock<DirectorySigners>>,
}

/// Why a message whose domain has a key was not signed.
#[derive(Debug)]
pub enum SignError {
    /// The directory's key for the domain could not be loaded.
    DirectoryKey {
        domain: String,
        error: KeyError,
    },
    Sign(mail_auth::Error),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::DirectoryKey { domain, error } => {
                write!(f, "the directory's DKIM key for {domain}: {error}")
            }
            SignError::Sign(e) => write!(f, "{e}"),
        }
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Puts `records` in use instead of the keys before; the ones that do not load are named.
    pub fn replace(&self, records: &[DkimKeyRecord]) -> Vec<(String, KeyError)> {
        let mut signers = HashMap::new();
        let mut failed = Vec::new();
        // The newest key of a domain signs (a new selector replaces the old one at once).
        let mut newest: Vec<&DkimKeyRecord> = records.iter().collect();
        newest.sort_by_key(|r| r.created);
        for r in newest {
            match signer(r) {
                Ok(s) => {
                    signers.insert(r.domain.clone(), Arc::new(s));
                }
                Err(e) => failed.push((r.domain.clone(), e)),
            }
        }
        if let Ok(mut held) = self.signers.write() {
            *held = signers;
        }
        failed
    }

    /// Whether any key is loaded (nothing to sign otherwise).
    pub fn is_empty(&self) -> bool {
        self.signers.read().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// The `DKIM-Signature:` field (no line end) for a message whose header section will be
    /// `head` (ending in its empty line) and whose body is `body`, when `head`'s From domain has
    /// a key here or in `dir`; `Ok(None)` when it has none.
    #[cfg(test)]
    pub fn sign(
        &self,
        head: &[u8],
        body: &[u8],
        dir: Option<&Directory>,
    ) -> Result<Option<String>, SignError> {
        let Some(signer) = self.signer_for(head, dir)? else {
            return Ok(None);
        };
        let mut stream = signer.sign_streaming();
        stream.write(head);
        stream.write(body);
        field(stream).map(Some)
    }

    /// The signer for a message whose header section will be `head`: its From domain's key,
    /// here or in `dir`; `Ok(None)` when it has none. Feed it the head, then the body.
    pub fn signer_for(
        &self,
        head: &[u8],
        dir: Option<&Directory>,
    ) -> Result<Option<Arc<Signer>>, SignError> {
        let Some(domain) = from_domain(head) else {
            return Ok(None);
        };
        let signer = match self.signers.read() {
            Ok(s) => s.get(&domain).cloned(),
            Err(_) => None,
        };
        let signer = match (signer, dir) {
            (Some(s), _) => s,
            (None, Some(dir)) => match self.directory_signer(&domain, dir)? {
                Some(s) => s,
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(signer))
    }
}

/// The `DKIM-Signature:` field (no line end) once the whole message went into `stream`.
pub fn field(stream: DkimSigningStream<'_, DkimKey>) -> Result<String, SignError> {
    let signature = stream.finish().map_err(SignError::Sign)?;
    let mut field = signature.to_header();
    while field.ends_with(['\r', '\n']) {
        field.pop();
    }
    Ok(field)
}

impl KeyRing {
    /// The signer for `domain`'s key in `dir`, made once per key.
    fn directory_signer(
        &self,
        domain: &str,
        dir: &Directory,
    ) -> Result<Option<Arc<Signer>>, SignError> {
        let Some(dkim) = dir.domain(domain).and_then(|d| d.dkim()) else {
            return Ok(None);
        };
        if let Ok(made) = self.from_directory.read()
            && let Some((from, signer)) = made.get(domain)
            && from == dkim
        {
            return Ok(Some(signer.clone()));
        }
        let signer = match directory_signer(domain, dkim) {
            None => return Ok(None),
            Some(Ok(s)) => Arc::new(s),
            Some(Err(error)) => {
                return Err(SignError::DirectoryKey {
                    domain: domain.to_string(),
                    error,
                });
            }
        };
        if let Ok(mut made) = self.from_directory.write() {
            made.insert(domain.to_string(), (dkim.clone(), signer.clone()));
        }
        Ok(Some(signer))
    }
}

/// A signer for `domain`'s directory-held key; `None` while its selector or key is missing.
fn directory_signer(domain: &str, dkim: &DomainDkim) -> Option<Result<Signer, KeyError>> {
    let (selector, key) = dkim.signing()?;
    let der = key.der();
    let key = match der.as_ref() {
        PrivateKeyDer::Pkcs8(k) => RsaKey::<Sha256>::from_key_der(der.clone_key())
            .map(DkimKey::Rsa)
            .or_else(|_| Ed25519Key::from_pkcs8_der(k.secret_pkcs8_der()).map(DkimKey::Ed25519)),
        _ => RsaKey::<Sha256>::from_key_der(der.clone_key()).map(DkimKey::Rsa),
    };
    let Ok(key) = key else {
        return Some(Err(KeyError::Crypto));
    };
    let signer = DkimSigner::from_key(key)
        .domain(dkim.signing_domain().unwrap_or(domain))
        .selector(selector)
        .headers(SIGNED_FIELDS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    Some(Ok(match dkim.identity() {
        Some(i) => signer.agent_user_identifier(i),
        None => signer,
    }))
}

fn signer(r: &DkimKeyRecord) -> Result<Signer, KeyError> {
    let key = match Algorithm::parse(&r.algorithm)? {
        Algorithm::Rsa => DkimKey::Rsa(
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                r.pkcs8.as_slice(),
            )))
            .map_err(|_| KeyError::Crypto)?,
        ),
        Algorithm::Ed25519 => {
            DkimKey::Ed25519(Ed25519Key::from_pkcs8_der(&r.pkcs8).map_err(|_| KeyError::Crypto)?)
        }
    };
    Ok(DkimSigner::from_key(key)
        .domain(r.domain.clone())
        .selector(r.selector.clone())
        .headers(SIGNED_FIELDS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed))
}

/// The domain of the first `From:` address of a header section, lower case.
fn from_domain(head: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(head)?;
    let from = parsed.from()?.first()?.address()?;
    let (_, domain) = from.rsplit_once('@')?;
    Some(domain.trim_end_matches('>').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A domain with no key on the box is signed with the directory's key for it (Zimbra's, from
    /// LDAP), `d=`/`i=` as set there; a key made on the box comes first.
    #[test]
    fn the_directorys_key_signs_a_domain_the_box_has_no_key_for() {
        let pem = crate::directory::domain_dkim::tests::ed25519_pem();
        let mut dir = Directory::default();
        for line in [
            "cd example.com".to_string(),
            format!(
                "md example.com zimbraDKIMSelector zimbra1 zimbraDKIMIdentity @example.com zimbraDKIMPrivateKey {pem}"
            ),
        ] {
            let args: Vec<String> = match line.split_once(" zimbraDKIMPrivateKey ") {
                Some((head, key)) => head
                    .split(' ')
                    .map(str::to_string)
                    .chain(["zimbraDKIMPrivateKey".into(), key.to_string()])
                    .collect(),
                None => line.split(' ').map(str::to_string).collect(),
            };
            dir = crate::directory::prov::execute(&dir, &args)
                .unwrap()
                .directory
                .unwrap();
        }
        let ring = KeyRing::default();
        let head = b"From: ann@example.com\r\nSubject: hi\r\n\r\n";
        assert_eq!(ring.sign(head, b"hi\r\n", None).unwrap(), None);
        let field = ring.sign(head, b"hi\r\n", Some(&dir)).unwrap().unwrap();
        let unfolded = field.replace("\r\n\t", "");
        for part in [
            "a=ed25519-sha256",
            "d=example.com",
            "s=zimbra1",
            "i=@example.com",
        ] {
            assert!(unfolded.contains(part), "{part} in {field}");
        }
        // Made once: the same signer serves the next message.
        ring.sign(head, b"again\r\n", Some(&dir)).unwrap().unwrap();
        assert_eq!(ring.from_directory.read().unwrap().len(), 1);
        // The box's own key wins.
        let own = keys::generate("example.com", "box1", Algorithm::Ed25519, 1).unwrap();
        assert!(ring.replace(&[own]).is_empty());
        let field = ring.sign(head, b"hi\r\n", Some(&dir)).unwrap().unwrap();
        assert!(field.contains("s=box1"), "{field}");
    }

    #[test]
    fn only_a_domain_with_a_key_is_signed() {
        let ring = KeyRing::default();
        assert!(ring.is_empty());
        let key = keys::generate("example.com", "s1", Algorithm::Ed25519, 1).unwrap();
        assert!(ring.replace(&[key]).is_empty());
        let head = b"From: Ann <ann@Example.com>\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n";
        let field = ring.sign(head, b"body\r\n", None).unwrap().unwrap();
        assert!(
            field.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{field}"
        );
        assert!(
            field.contains("d=example.com") && field.contains("s=s1"),
            "{field}"
        );
        assert!(!field.ends_with('\n'));
        // The body hash is of the body: relaxed `Line one` has a known SHA-256.
        let field = ring
            .sign(head, b"Line one\r\n.dot-stuffed line\r\n", None)
            .unwrap()
            .unwrap();
        let unfolded = field.replace("\r\n\t", "");
        assert!(
            unfolded.contains("bh=l7oZWaPX8pmzCo2K6tM/RBpC+oZcm9ueO2zocSzX9Fo="),
            "{field}"
        );
        let other = b"From: x@example.net\r\n\r\n";
        assert_eq!(ring.sign(other, b"body\r\n", None).unwrap(), None);
        assert_eq!(
            ring.sign(b"Subject: no from\r\n\r\n", b"", None).unwrap(),
            None
        );
    }
}
