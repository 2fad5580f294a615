//! DKIM signing of the box's outbound mail, as OpenDKIM signs beside the Zimbra MTA: mail from
//! `$mynetworks` or an authenticated client whose `From:` domain has a key is signed with it
//! (`rsa-sha256` or `ed25519-sha256`, relaxed/relaxed, OpenDKIM's set of header fields) by
//! `mail-auth`. The keys are made by `postern dkim keygen` ([`keys`]) and kept in the box config
//! slot on flash ([`store`]); the running services hold them in a [`KeyRing`] that the admin
//! commands refresh, so a new key signs from the next message.
//!
//! The signature covers the header section as it is stored (after the content stage's edits)
//! and the body from the content stage's copy: a message bigger than `posternContentScanLimit`
//! is not in RAM and goes unsigned, with a warning in the log.

pub mod keys;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::stored::DkimKeyRecord;
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

type Signer = DkimSigner<DkimKey, Done>;

/// The signing keys in use, by domain. Cheap to clone; all clones see a [`KeyRing::replace`].
#[derive(Clone, Default)]
pub struct KeyRing {
    signers: Arc<RwLock<HashMap<String, Arc<Signer>>>>,
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
    /// a key; `Ok(None)` when it has none.
    pub fn sign(&self, head: &[u8], body: &[u8]) -> Result<Option<String>, mail_auth::Error> {
        let Some(domain) = from_domain(head) else {
            return Ok(None);
        };
        let signer = match self.signers.read() {
            Ok(s) => s.get(&domain).cloned(),
            Err(_) => None,
        };
        let Some(signer) = signer else {
            return Ok(None);
        };
        // Streamed: the head and the body are hashed where they lie, never joined in a copy.
        let mut stream = signer.sign_streaming();
        stream.write(head);
        stream.write(body);
        let signature = stream.finish()?;
        let mut field = signature.to_header();
        while field.ends_with(['\r', '\n']) {
            field.pop();
        }
        Ok(Some(field))
    }
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

    #[test]
    fn only_a_domain_with_a_key_is_signed() {
        let ring = KeyRing::default();
        assert!(ring.is_empty());
        let key = keys::generate("example.com", "s1", Algorithm::Ed25519, 1).unwrap();
        assert!(ring.replace(&[key]).is_empty());
        let head = b"From: Ann <ann@Example.com>\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n";
        let field = ring.sign(head, b"body\r\n").unwrap().unwrap();
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
            .sign(head, b"Line one\r\n.dot-stuffed line\r\n")
            .unwrap()
            .unwrap();
        let unfolded = field.replace("\r\n\t", "");
        assert!(
            unfolded.contains("bh=l7oZWaPX8pmzCo2K6tM/RBpC+oZcm9ueO2zocSzX9Fo="),
            "{field}"
        );
        let other = b"From: x@example.net\r\n\r\n";
        assert_eq!(ring.sign(other, b"body\r\n").unwrap(), None);
        assert_eq!(ring.sign(b"Subject: no from\r\n\r\n", b"").unwrap(), None);
    }
}
