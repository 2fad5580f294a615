//! The update bundle: one file, checked before anything is written.
//!
//! ```text
//! "POSTERN-BUNDLE1\n"   16 bytes
//! manifest length       u32 little-endian, at most MAX_MANIFEST
//! manifest              UTF-8 lines "KEY VALUE": format 1, arch, version, slot_bytes, slot_sha256
//! signature             64 bytes: ed25519 over everything before it (magic, length, manifest)
//! slot image            slot_bytes bytes, sha256 slot_sha256 (a unified kernel image)
//! ```
//!
//! The signature covers the manifest, the manifest covers the slot image by its hash: the large
//! part is streamed and hashed, never held in memory. `mkbundle` (the image crate) writes this.

use std::fmt;
use std::io::{self, Read};

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 16] = b"POSTERN-BUNDLE1\n";
pub const SIGNATURE_LEN: usize = 64;
/// A manifest is a few lines; a larger length field means a damaged or hostile file.
pub const MAX_MANIFEST: u32 = 4096;
const FORMAT: &str = "1";

/// A firmware version, MAJOR.MINOR.PATCH, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a bundle says about itself (trusted once [`verify`] returned it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub arch: String,
    pub version: Version,
    pub slot_bytes: u64,
    pub slot_sha256: [u8; 32],
}

/// Why a bundle is refused. Nothing has been written when one of these comes back.
#[derive(Debug)]
pub enum BundleError {
    Read(io::Error),
    NotABundle,
    /// The file ends before the part named.
    Truncated(&'static str),
    ManifestTooLong(u32),
    /// Line number (1-based) of a manifest line that does not parse, or 0 for a missing field.
    BadManifest(usize, &'static str),
    /// This firmware was built without an update key.
    NoKey,
    BadSignature,
    WrongArch {
        bundle: String,
        running: &'static str,
    },
    NotNewer {
        bundle: Version,
        running: Version,
    },
    /// The slot image is longer than the manifest says.
    TrailingData,
    HashMismatch,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::Read(e) => write!(f, "cannot read the bundle: {e}"),
            BundleError::NotABundle => write!(f, "not a Postern update bundle"),
            BundleError::Truncated(part) => write!(f, "bundle is truncated (in the {part})"),
            BundleError::ManifestTooLong(n) => {
                write!(f, "manifest length {n} is over {MAX_MANIFEST} bytes")
            }
            BundleError::BadManifest(0, field) => write!(f, "manifest has no {field}"),
            BundleError::BadManifest(line, what) => {
                write!(f, "manifest line {line}: {what}")
            }
            BundleError::NoKey => write!(
                f,
                "this firmware was built without an update key: it accepts no bundles"
            ),
            BundleError::BadSignature => {
                write!(
                    f,
                    "bad signature: the bundle is not signed by this firmware's update key"
                )
            }
            BundleError::WrongArch { bundle, running } => {
                write!(f, "bundle is for {bundle}, this box is {running}")
            }
            BundleError::NotNewer { bundle, running } => write!(
                f,
                "bundle version {bundle} is not newer than the running {running}"
            ),
            BundleError::TrailingData => write!(f, "bundle has data after the slot image"),
            BundleError::HashMismatch => {
                write!(f, "slot image does not match the manifest's sha256")
            }
        }
    }
}

impl std::error::Error for BundleError {}

/// A hex ed25519 public key.
pub fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let bytes = from_hex(hex.trim())?;
    bytes.try_into().ok()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], part: &'static str) -> Result<(), BundleError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated(part),
        _ => BundleError::Read(e),
    })
}

/// Parses a manifest's text.
pub fn parse_manifest(text: &str) -> Result<Manifest, BundleError> {
    let (mut format, mut arch, mut version, mut bytes, mut sha) = (None, None, None, None, None);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some((key, value)) = line.split_once(' ') else {
            return Err(BundleError::BadManifest(n, "not KEY VALUE"));
        };
        match key {
            "format" => format = Some(value),
            "arch" => arch = Some(value.to_string()),
            "version" => {
                version =
                    Some(Version::parse(value).ok_or(BundleError::BadManifest(n, "bad version"))?)
            }
            "slot_bytes" => {
                bytes = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| BundleError::BadManifest(n, "bad slot_bytes"))?,
                )
            }
            "slot_sha256" => {
                sha = Some(parse_key(value).ok_or(BundleError::BadManifest(n, "bad slot_sha256"))?)
            }
            // Later formats may add fields; this one ignores what it does not know.
            _ => {}
        }
    }
    if format.ok_or(BundleError::BadManifest(0, "format"))? != FORMAT {
        return Err(BundleError::BadManifest(1, "unknown format"));
    }
    Ok(Manifest {
        arch: arch.ok_or(BundleError::BadManifest(0, "arch"))?,
        version: version.ok_or(BundleError::BadManifest(0, "version"))?,
        slot_bytes: bytes.ok_or(BundleError::BadManifest(0, "slot_bytes"))?,
        slot_sha256: sha.ok_or(BundleError::BadManifest(0, "slot_sha256"))?,
    })
}

/// The manifest's text for `m` (what `mkbundle` signs).
pub fn manifest_text(m: &Manifest) -> String {
    format!(
        "format {FORMAT}\narch {}\nversion {}\nslot_bytes {}\nslot_sha256 {}\n",
        m.arch,
        m.version,
        m.slot_bytes,
        to_hex(&m.slot_sha256)
    )
}

/// Reads the header, manifest and signature from `r` and checks the signature, the architecture
/// and the version. On success `r` is positioned at the slot image.
pub fn open(
    r: &mut impl Read,
    key: Option<&[u8; 32]>,
    running_arch: &'static str,
    running: Version,
) -> Result<Manifest, BundleError> {
    let mut magic = [0u8; 16];
    read_exact(r, &mut magic, "header")?;
    if &magic != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let mut len = [0u8; 4];
    read_exact(r, &mut len, "header")?;
    let len_value = u32::from_le_bytes(len);
    if len_value > MAX_MANIFEST {
        return Err(BundleError::ManifestTooLong(len_value));
    }
    let mut manifest = vec![0u8; len_value as usize];
    read_exact(r, &mut manifest, "manifest")?;
    let mut signature = [0u8; SIGNATURE_LEN];
    read_exact(r, &mut signature, "signature")?;
    let key = key.ok_or(BundleError::NoKey)?;
    let signed = [&magic[..], &len[..], &manifest[..]].concat();
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&signed, &signature)
        .map_err(|_| BundleError::BadSignature)?;
    // Signed, so the text is the vendor's; it may still be from a newer format.
    let text =
        std::str::from_utf8(&manifest).map_err(|_| BundleError::BadManifest(1, "not UTF-8"))?;
    let m = parse_manifest(text)?;
    if m.arch != running_arch {
        return Err(BundleError::WrongArch {
            bundle: m.arch,
            running: running_arch,
        });
    }
    if m.version <= running {
        return Err(BundleError::NotNewer {
            bundle: m.version,
            running,
        });
    }
    Ok(m)
}

/// Streams the slot image from `r` into `sink` (may be `io::sink()`), checking its length and
/// hash against `m`. The sink has all the bytes only when this returns Ok.
pub fn copy_slot(
    r: &mut impl Read,
    m: &Manifest,
    sink: &mut impl io::Write,
) -> Result<(), BundleError> {
    let mut hasher = Sha256::new();
    let mut left = m.slot_bytes;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want]).map_err(BundleError::Read)?;
        if n == 0 {
            return Err(BundleError::Truncated("slot image"));
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n]).map_err(BundleError::Read)?;
        left -= n as u64;
    }
    if r.read(&mut [0u8; 1]).map_err(BundleError::Read)? != 0 {
        return Err(BundleError::TrailingData);
    }
    if hasher.finalize().as_slice() != m.slot_sha256 {
        return Err(BundleError::HashMismatch);
    }
    Ok(())
}

/// Writes a bundle for `slot` signed by `sign` (tests; `mkbundle` writes the same bytes).
pub fn seal(m: &Manifest, slot: &[u8], sign: impl Fn(&[u8]) -> [u8; 64]) -> Vec<u8> {
    let text = manifest_text(m);
    let mut out = Vec::with_capacity(text.len() + slot.len() + 100);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    let signature = sign(&out);
    out.extend_from_slice(&signature);
    out.extend_from_slice(slot);
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    /// A fixed test key pair (never the vendor's).
    pub fn test_key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    pub fn public(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }

    pub fn bundle_for(k: &Ed25519KeyPair, arch: &str, version: Version, slot: &[u8]) -> Vec<u8> {
        let m = Manifest {
            arch: arch.into(),
            version,
            slot_bytes: slot.len() as u64,
            slot_sha256: Sha256::digest(slot).into(),
        };
        seal(&m, slot, |msg| k.sign(msg).as_ref().try_into().unwrap())
    }

    const RUNNING: Version = Version(0, 1, 0);

    fn check(bytes: &[u8], key: &[u8; 32]) -> Result<Manifest, BundleError> {
        let mut r = bytes;
        let m = open(&mut r, Some(key), "aarch64", RUNNING)?;
        copy_slot(&mut r, &m, &mut io::sink())?;
        Ok(m)
    }

    #[test]
    fn a_good_bundle_opens_and_its_slot_checks_out() {
        let k = test_key(1);
        let b = bundle_for(&k, "aarch64", Version(0, 2, 0), b"the slot image");
        let m = check(&b, &public(&k)).unwrap();
        assert_eq!(m.version, Version(0, 2, 0));
        assert_eq!(m.slot_bytes, 14);
    }

    #[test]
    fn refusals_say_why() {
        let k = test_key(1);
        let good = bundle_for(&k, "aarch64", Version(0, 2, 0), b"the slot image");
        let other = public(&test_key(2));
        assert!(matches!(
            check(&good, &other),
            Err(BundleError::BadSignature)
        ));
        let mut tampered = good.clone();
        tampered[30] ^= 1;
        assert!(matches!(
            check(&tampered, &public(&k)),
            Err(BundleError::BadSignature)
        ));
        let wrong_arch = bundle_for(&k, "x86_64", Version(0, 2, 0), b"x");
        let e = check(&wrong_arch, &public(&k)).unwrap_err();
        assert_eq!(e.to_string(), "bundle is for x86_64, this box is aarch64");
        let old = bundle_for(&k, "aarch64", Version(0, 1, 0), b"x");
        assert!(matches!(
            check(&old, &public(&k)),
            Err(BundleError::NotNewer { .. })
        ));
        for cut in [3, 18, 40, good.len() - 64 - 3, good.len() - 1] {
            let e = check(&good[..cut], &public(&k)).unwrap_err();
            assert!(matches!(e, BundleError::Truncated(_)), "cut {cut}: {e}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            check(&longer, &public(&k)),
            Err(BundleError::TrailingData)
        ));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            check(&flipped, &public(&k)),
            Err(BundleError::HashMismatch)
        ));
        assert!(matches!(
            check(b"PK\x03\x04 a zip file, not a bundle", &public(&k)),
            Err(BundleError::NotABundle)
        ));
        let mut r = &good[..];
        assert!(matches!(
            open(&mut r, None, "aarch64", RUNNING),
            Err(BundleError::NoKey)
        ));
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(Version::parse("0.10.0") > Version::parse("0.9.9"));
        assert_eq!(Version::parse("1.2"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
        assert_eq!(Version::parse("1.2.x"), None);
        assert_eq!(Version(1, 2, 3).to_string(), "1.2.3");
    }

    #[test]
    fn manifests_round_trip_and_missing_fields_are_named() {
        let m = Manifest {
            arch: "x86_64".into(),
            version: Version(1, 0, 0),
            slot_bytes: 9,
            slot_sha256: [7; 32],
        };
        assert_eq!(parse_manifest(&manifest_text(&m)).unwrap(), m);
        let e = parse_manifest("format 1\narch x86_64\n").unwrap_err();
        assert_eq!(e.to_string(), "manifest has no version");
        assert_eq!(parse_key(&to_hex(&[9; 32])), Some([9; 32]));
        assert_eq!(parse_key("abc"), None);
    }
}
