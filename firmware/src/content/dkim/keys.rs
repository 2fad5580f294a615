//! DKIM signing keys: made with aws-lc-rs (the crypto rustls already links), kept as PKCS#8 in the
//! box config slot, published as the TXT record `opendkim-genkey` would print.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::stored::DkimKeyRecord;

/// The two key types DKIM signers use today (RFC 6376 `rsa-sha256`, RFC 8463 `ed25519-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// `k=` in the DNS record, and the name stored.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Result<Algorithm, KeyError> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Ok(Algorithm::Rsa),
            "ed25519" => Ok(Algorithm::Ed25519),
            _ => Err(KeyError::UnknownAlgorithm(s.to_string())),
        }
    }
}

/// Why a key could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    UnknownAlgorithm(String),
    /// Not a domain name DKIM can sign for.
    BadDomain(String),
    /// Not a selector (letters, digits, hyphens, dots between labels).
    BadSelector(String),
    /// The crypto library refused to make or load the key.
    Crypto,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnknownAlgorithm(a) => {
                write!(f, "unknown key type {a:?}: use rsa or ed25519")
            }
            KeyError::BadDomain(d) => write!(f, "{d:?} is not a domain name like example.com"),
            KeyError::BadSelector(s) => write!(
                f,
                "{s:?} is not a selector: letters, digits and hyphens, like mail2026"
            ),
            KeyError::Crypto => f.write_str("the key could not be made or read"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A new key for `domain` under `selector`, not yet stored.
pub fn generate(
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
    now: u64,
) -> Result<DkimKeyRecord, KeyError> {
    let domain = checked_domain(domain)?;
    let selector = checked_selector(selector)?;
    let pkcs8 = match algorithm {
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| KeyError::Crypto)?
            .as_ref()
            .to_vec(),
        // 2048 bits: what DNS TXT records carry without trouble, and what OpenDKIM makes.
        Algorithm::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Crypto)?;
            let der: Pkcs8V1Der = pair.as_der().map_err(|_| KeyError::Crypto)?;
            der.as_ref().to_vec()
        }
    };
    Ok(DkimKeyRecord {
        domain,
        selector,
        algorithm: algorithm.name().to_string(),
        pkcs8,
        created: now,
    })
}

/// The public half as DKIM's `p=` carries it: the SubjectPublicKeyInfo for RSA (as `openssl rsa
/// -pubout` writes it), the bare 32 bytes for Ed25519 (RFC 8463).
pub fn public_key(key: &DkimKeyRecord) -> Result<Vec<u8>, KeyError> {
    match Algorithm::parse(&key.algorithm)? {
        Algorithm::Ed25519 => Ok(Ed25519KeyPair::from_pkcs8(&key.pkcs8)
            .map_err(|_| KeyError::Crypto)?
            .public_key()
            .as_ref()
            .to_vec()),
        Algorithm::Rsa => {
            let pair = RsaKeyPair::from_pkcs8(&key.pkcs8).map_err(|_| KeyError::Crypto)?;
            let der: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| KeyError::Crypto)?;
            Ok(der.as_ref().to_vec())
        }
    }
}

/// The record to publish, in zone-file form with the value split into 255-byte strings:
/// `SELECTOR._domainkey.DOMAIN. IN TXT ( "v=DKIM1; k=rsa; " "p=..." )`.
pub fn dns_record(key: &DkimKeyRecord) -> Result<String, KeyError> {
    let value = txt_value(key)?;
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    Ok(format!(
        "{}._domainkey.{}. IN TXT ( {} )",
        key.selector,
        key.domain,
        strings.join(" ")
    ))
}

/// The TXT record's text, joined: `v=DKIM1; k=ed25519; p=...`.
pub fn txt_value(key: &DkimKeyRecord) -> Result<String, KeyError> {
    Ok(format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm,
        STANDARD.encode(public_key(key)?)
    ))
}

fn checked_domain(d: &str) -> Result<String, KeyError> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').count() >= 2
        && d.len() <= 253
        && d.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if labels_ok {
        Ok(d)
    } else {
        Err(KeyError::BadDomain(d))
    }
}

fn checked_selector(s: &str) -> Result<String, KeyError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(KeyError::BadSelector(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_key_types_publish_a_record_their_key_matches() {
        let ed = generate("Example.COM", "s1", Algorithm::Ed25519, 0).unwrap();
        assert_eq!(
            (ed.domain.as_str(), ed.selector.as_str()),
            ("example.com", "s1")
        );
        assert_eq!(public_key(&ed).unwrap().len(), 32);
        let record = dns_record(&ed).unwrap();
        assert!(
            record.starts_with("s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; p="),
            "{record}"
        );
        let rsa = generate("example.com", "r1", Algorithm::Rsa, 0).unwrap();
        let spki = public_key(&rsa).unwrap();
        // A 2048-bit SubjectPublicKeyInfo is 294 bytes (`MIIBIjAN...` in base64).
        assert_eq!(spki.len(), 294);
        assert!(txt_value(&rsa).unwrap().contains("p=MIIBIjAN"));
        // Past 255 bytes the record is split into several strings.
        assert!(dns_record(&rsa).unwrap().matches('"').count() >= 4);
    }

    #[test]
    fn names_dns_cannot_carry_are_refused() {
        for d in ["localhost", "a..example", "-a.example", "exa mple.com"] {
            assert!(matches!(
                generate(d, "s", Algorithm::Ed25519, 0),
                Err(KeyError::BadDomain(_))
            ));
        }
        assert!(matches!(
            generate("example.com", "s;x", Algorithm::Ed25519, 0),
            Err(KeyError::BadSelector(_))
        ));
        assert!(Algorithm::parse("dsa").is_err());
    }
}
