//! Signed A/B firmware updates.
//!
//! The box boots from one of two slots on its EFI system partition (ESP), each a unified kernel
//! image written by `mkimage` (`/EFI/Linux/postern-VERSION-SLOT.efi`). An update bundle
//! ([`bundle`]) carries a new slot image, a manifest (format, architecture, version, size,
//! sha256) and an ed25519 signature over the manifest by the vendor's key, whose public half is
//! built into the firmware (`POSTERN_UPDATE_PUBKEY` at build time, from `image/keys/`).
//!
//! Installing ([`install`]) checks the signature, the architecture and that the version is newer
//! before writing anything; then writes the slot that is not running under a temporary name,
//! reads it back against the manifest's hash, and renames it into place with systemd-boot's
//! boot counter (`postern-VERSION-b+1.efi`: one try). systemd-boot counts the try down as it
//! boots it; the new firmware drops the counter ([`slots::mark_good`]) once its health check has
//! passed. If it never does, the entry has no tries left, systemd-boot sorts it last and the old
//! slot boots again. A power cut while writing leaves only the temporary file, which no boot
//! loader entry names: the old slot boots and the next install removes it.

pub mod bundle;
pub mod command;
pub mod fetch;
pub mod http;
pub mod install;
pub mod slots;

pub use bundle::{BundleError, Manifest, Version};
pub use install::{InstallError, Installed, install};
pub use slots::{SlotFile, SlotId};

/// The architecture this firmware runs on, as manifests name it.
pub const ARCH: &str = std::env::consts::ARCH;

/// The update key built into this firmware (hex ed25519 public key from the build's
/// `POSTERN_UPDATE_PUBKEY`), or `None` for a build without one: it then refuses every bundle.
pub fn built_in_key() -> Option<[u8; 32]> {
    bundle::parse_key(option_env!("POSTERN_UPDATE_PUBKEY")?)
}

/// This firmware's version.
pub fn running_version() -> Version {
    // The crate version is MAJOR.MINOR.PATCH by Cargo's rules.
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or(Version(0, 0, 0))
}
