//! Password hashes as Zimbra and OpenLDAP store them in `userPassword`: verify what the directory
//! holds, and hash new passwords the way Zimbra does (`{SSHA512}`).
//!
//! Supported forms:
//! - `{SSHA512}base64(sha512(password + salt) + salt)`: Zimbra's default since 8.x.
//! - `{CRYPT}$6$...`: SHA-512-crypt, as `slappasswd -h {CRYPT}` with glibc writes it.
//! - `$argon2id$...` (also with a `{ARGON2}` prefix, as OpenLDAP's pw-argon2 module writes it).
//! - `{SSHA}base64(sha1(password + salt) + salt)`: older Zimbra and OpenLDAP's default.
//! - `{PBKDF2-SHA512}rounds$salt$key` (also `-SHA256`, and `{PBKDF2}` for SHA-1), salt and key
//!   in OpenLDAP pw-pbkdf2's base64 (`.` for `+`, no padding).
//!
//! Anything else (plain text, MD5) is refused: a hash we cannot check never matches. Comparisons
//! of digests are in constant time; a PBKDF2 round count from the directory is capped, so a
//! hostile entry cannot make one AUTH cost minutes.
//! Comparisons of digests are in constant time.

use std::fmt;

use argon2::Argon2;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha_crypt::{PasswordVerifier, ShaCrypt};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Salt length for new `{SSHA512}` hashes, as Zimbra uses (8 bytes).
const SALT_LEN: usize = 8;
/// Length of a SHA-512 digest.
const DIGEST_LEN: usize = 64;
/// Length of a SHA-1 digest.
const SHA1_LEN: usize = 20;
/// Most PBKDF2 rounds accepted (OpenLDAP's default is 10 000; Zimbra's at most 100 000s).
const MAX_PBKDF2_ROUNDS: u32 = 1_000_000;

/// Why a password could not be checked against a stored hash (a wrong password is `Ok(false)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// The scheme prefix is not one we support.
    UnknownScheme,
    /// The stored value has the right prefix but cannot be decoded.
    Malformed,
    /// The system's random source failed while making a salt.
    NoRandom,
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashError::UnknownScheme => "unsupported password scheme",
            HashError::Malformed => "malformed password hash",
            HashError::NoRandom => "no random source for a password salt",
        })
    }
}

impl std::error::Error for HashError {}

/// Whether `plain` matches the stored hash `stored`.
pub fn verify(plain: &str, stored: &str) -> Result<bool, HashError> {
    let stored = stored.trim();
    if let Some(b64) = strip_prefix_ci(stored, "{SSHA512}") {
        return verify_ssha512(plain.as_bytes(), b64);
    }
    if let Some(b64) = strip_prefix_ci(stored, "{SSHA}") {
        return verify_ssha1(plain.as_bytes(), b64);
    }
    for (prefix, kind) in [
        ("{PBKDF2-SHA512}", Prf::Sha512),
        ("{PBKDF2-SHA256}", Prf::Sha256),
        ("{PBKDF2-SHA1}", Prf::Sha1),
        ("{PBKDF2}", Prf::Sha1),
    ] {
        if let Some(rest) = strip_prefix_ci(stored, prefix) {
            return verify_pbkdf2(plain.as_bytes(), rest, kind);
        }
    }
    if let Some(crypt) = strip_prefix_ci(stored, "{CRYPT}") {
        if !crypt.starts_with("$6$") {
            return Err(HashError::UnknownScheme);
        }
        return Ok(ShaCrypt::default()
            .verify_password(plain.as_bytes(), crypt)
            .is_ok());
    }
    let phc = strip_prefix_ci(stored, "{ARGON2}").unwrap_or(stored);
    if phc.starts_with("$argon2") {
        return match Argon2::default().verify_password(plain.as_bytes(), phc) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(HashError::Malformed),
        };
    }
    Err(HashError::UnknownScheme)
}

/// A new `{SSHA512}` hash of `plain` with a random salt.
pub fn hash(plain: &str) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|_| HashError::NoRandom)?;
    Ok(hash_with_salt(plain.as_bytes(), &salt))
}

fn hash_with_salt(plain: &[u8], salt: &[u8]) -> String {
    let mut raw = Sha512::new()
        .chain_update(plain)
        .chain_update(salt)
        .finalize()
        .to_vec();
    raw.extend_from_slice(salt);
    format!("{{SSHA512}}{}", STANDARD.encode(raw))
}

fn verify_ssha512(plain: &[u8], b64: &str) -> Result<bool, HashError> {
    let raw = STANDARD.decode(b64).map_err(|_| HashError::Malformed)?;
    if raw.len() <= DIGEST_LEN {
        return Err(HashError::Malformed);
    }
    let (digest, salt) = raw.split_at(DIGEST_LEN);
    let computed = Sha512::new()
        .chain_update(plain)
        .chain_update(salt)
        .finalize();
    Ok(constant_time_eq(digest, computed.as_slice()))
}

fn verify_ssha1(plain: &[u8], b64: &str) -> Result<bool, HashError> {
    let raw = STANDARD.decode(b64).map_err(|_| HashError::Malformed)?;
    if raw.len() <= SHA1_LEN {
        return Err(HashError::Malformed);
    }
    let (digest, salt) = raw.split_at(SHA1_LEN);
    let computed = Sha1::new()
        .chain_update(plain)
        .chain_update(salt)
        .finalize();
    Ok(constant_time_eq(digest, computed.as_slice()))
}

#[derive(Clone, Copy)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

/// OpenLDAP pw-pbkdf2's base64: `.` for `+`, padding left off.
fn ab64(s: &str) -> Result<Vec<u8>, HashError> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('=').replace('.', "+"))
        .map_err(|_| HashError::Malformed)
}

fn verify_pbkdf2(plain: &[u8], rest: &str, prf: Prf) -> Result<bool, HashError> {
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HashError::Malformed);
    };
    let rounds: u32 = rounds.parse().map_err(|_| HashError::Malformed)?;
    if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS {
        return Err(HashError::Malformed);
    }
    let (salt, key) = (ab64(salt)?, ab64(key)?);
    if key.is_empty() || key.len() > 128 {
        return Err(HashError::Malformed);
    }
    let mut out = vec![0u8; key.len()];
    match prf {
        Prf::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(plain, &salt, rounds, &mut out),
        Prf::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(plain, &salt, rounds, &mut out),
        Prf::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(plain, &salt, rounds, &mut out),
    }
    Ok(constant_time_eq(&key, &out))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssha512_round_trips_and_rejects_wrong_passwords() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("{SSHA512}"));
        assert_eq!(verify("correct horse", &h), Ok(true));
        assert_eq!(verify("correct horsf", &h), Ok(false));
        assert_eq!(verify("", &h), Ok(false));
        // Two hashes of the same password differ: the salt is random.
        assert_ne!(h, hash("correct horse").unwrap());
    }

    #[test]
    fn ssha512_matches_a_known_value() {
        // sha512("secret" + "saltsalt") followed by the salt, computed independently with
        // `printf 'secretsaltsalt' | openssl dgst -sha512 -binary`.
        let known = "{SSHA512}aCu7JRc+kLsuEmFs1zTY+AiP7DSGnjjG+dH28Dp+E5usqoAixeTPihKqZmkWal4mUfp63tqvCAkFV1LKTDFH6XNhbHRzYWx0";
        assert_eq!(hash_with_salt(b"secret", b"saltsalt"), known);
        let known = known.to_string();
        assert_eq!(verify("secret", &known), Ok(true));
        assert_eq!(verify("Secret", &known), Ok(false));
        // The scheme name is case-insensitive, as OpenLDAP treats it.
        let lower = known.replace("{SSHA512}", "{ssha512}");
        assert_eq!(verify("secret", &lower), Ok(true));
    }

    #[test]
    fn sha512_crypt_from_glibc_verifies() {
        // `mkpasswd -m sha-512 -S saltsalt password` (glibc crypt(3)).
        let stored = "{CRYPT}$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
        assert_eq!(verify("password", stored), Ok(true));
        assert_eq!(verify("passwort", stored), Ok(false));
    }

    #[test]
    fn ssha1_and_pbkdf2_from_other_tools_verify() {
        // Computed independently with Python's hashlib (sha1, pbkdf2_hmac).
        let ssha = "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0";
        assert_eq!(verify("secret", ssha), Ok(true));
        assert_eq!(verify("secreT", ssha), Ok(false));
        let sha512 = "{PBKDF2-SHA512}10000$c2FsdHNhbHQxMjM0NTY3OA$5tivGB9FFDinnO9ADzHNQnCJgjopn8LRHkP2kmunTgZAU9ehDR9/jOxGHYDHgHW45vmtm9Bnq8CxVnNrZ5EJww";
        assert_eq!(verify("secret", sha512), Ok(true));
        assert_eq!(verify("secret!", sha512), Ok(false));
        let sha256 = "{PBKDF2-SHA256}5000$c2FsdHNhbHQxMjM0NTY3OA$j.Zf7DAd/OXq.5zif/WrTtBZboXDhNS1esRxxwVCDsE";
        assert_eq!(verify("secret", sha256), Ok(true));
        assert_eq!(verify("Secret", sha256), Ok(false));
    }

    #[test]
    fn argon2_phc_strings_verify() {
        use argon2::password_hash::PasswordHasher;
        let phc = Argon2::default()
            .hash_password(b"hunter2")
            .unwrap()
            .to_string();
        assert_eq!(verify("hunter2", &phc), Ok(true));
        assert_eq!(verify("hunter3", &phc), Ok(false));
        assert_eq!(verify("hunter2", &format!("{{ARGON2}}{phc}")), Ok(true));
    }

    #[test]
    fn unknown_and_broken_hashes_never_match() {
        assert_eq!(verify("x", "x"), Err(HashError::UnknownScheme));
        assert_eq!(verify("x", "{SMD5}abcd"), Err(HashError::UnknownScheme));
        assert_eq!(verify("x", "{SSHA}abcd"), Err(HashError::Malformed));
        for bad in [
            "{PBKDF2-SHA512}0$c2FsdA$c2FsdA",
            "{PBKDF2-SHA512}4000000000$c2FsdA$c2FsdA",
            "{PBKDF2-SHA512}10$c2FsdA",
            "{PBKDF2-SHA512}10$c2FsdA$c2FsdA$x",
            "{PBKDF2-SHA512}10$!!$c2FsdA",
            "{PBKDF2-SHA512}10$c2FsdA$",
        ] {
            assert_eq!(verify("x", bad), Err(HashError::Malformed), "{bad}");
        }
        assert_eq!(verify("x", "{SSHA512}!!!"), Err(HashError::Malformed));
        assert_eq!(verify("x", "{SSHA512}YWJj"), Err(HashError::Malformed));
        assert_eq!(
            verify("x", "{CRYPT}$1$abc$def"),
            Err(HashError::UnknownScheme)
        );
        assert!(verify("x", "$argon2id$garbage").is_err());
        assert!(verify("x", "{CRYPT}$6$").is_ok_and(|ok| !ok));
    }
}
