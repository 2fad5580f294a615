//! `mkbundle`: signs a slot image into an update bundle, with the vendor key in `image/keys/`.
//!
//! ```text
//! mkbundle key --keys image/keys                  # prints the public key (made on first use)
//! mkbundle --image build/aarch64 --keys image/keys --out build/aarch64/postern-aarch64-0.1.0.bundle
//! ```
//!
//! The key pair is ed25519: `update.pk8` (PKCS#8, mode 0600) and `update.pub` (hex). A missing
//! pair is generated on first use as a development key; `image/keys/` is never committed. The
//! firmware gets the public key at build time (`POSTERN_UPDATE_PUBKEY`, set by the Makefile).
//!
//! The bundle format is the firmware's (`postern::update::bundle`): magic, manifest length,
//! manifest, ed25519 signature over all of that, then the slot image.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 16] = b"POSTERN-BUNDLE1\n";

#[derive(Parser, Debug)]
#[command(
    name = "mkbundle",
    about = "Sign a Postern slot image into an update bundle"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The key directory.
    #[arg(long, default_value = "image/keys", global = true)]
    keys: PathBuf,
    /// The mkimage output directory: slot.efi and manifest.txt (arch, version).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The bundle to write.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the public key in hex, making the key pair first if there is none.
    Key,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (&args.command, &args.image, &args.out) {
        (Some(Command::Key), _, _) => key_pair(&args.keys).map(|k| {
            println!("{}", hex(k.public_key().as_ref()));
        }),
        (None, Some(image), Some(out)) => bundle(&args.keys, image, out),
        (None, _, _) => Err("--image and --out are needed (or the `key` command)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkbundle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key pair in `dir`, generated (and said so on stderr) if missing.
fn key_pair(dir: &Path) -> Result<Ed25519KeyPair, String> {
    let private = dir.join("update.pk8");
    if !private.exists() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "cannot generate a key pair".to_string())?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)
            .map_err(|e| format!("cannot create {}: {e}", private.display()))?;
        f.write_all(doc.as_ref())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", private.display()))?;
        eprintln!(
            "mkbundle: made a development update key in {} (never commit it; ship a vendor key)",
            dir.display()
        );
    }
    let der = fs::read(&private).map_err(|e| format!("cannot read {}: {e}", private.display()))?;
    let pair = Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| format!("{} is not an ed25519 PKCS#8 key", private.display()))?;
    let public = dir.join("update.pub");
    let text = format!("{}\n", hex(pair.public_key().as_ref()));
    if fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        fs::write(&public, text).map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    }
    Ok(pair)
}

/// `KEY VALUE` from mkimage's manifest.txt.
fn field<'a>(manifest: &'a str, key: &str) -> Option<&'a str> {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

fn bundle(keys: &Path, image: &Path, out: &Path) -> Result<(), String> {
    let pair = key_pair(keys)?;
    let manifest_path = image.join("manifest.txt");
    let image_manifest = fs::read_to_string(&manifest_path).map_err(|e| {
        format!(
            "cannot read {} (make image first): {e}",
            manifest_path.display()
        )
    })?;
    let arch = field(&image_manifest, "arch").ok_or("manifest.txt has no arch")?;
    let version = field(&image_manifest, "version").ok_or("manifest.txt has no version")?;
    let slot_path = image.join("slot.efi");
    let slot =
        fs::read(&slot_path).map_err(|e| format!("cannot read {}: {e}", slot_path.display()))?;
    let manifest = format!(
        "format 1\narch {arch}\nversion {version}\nslot_bytes {}\nslot_sha256 {}\n",
        slot.len(),
        hex(&Sha256::digest(&slot))
    );
    let mut bytes = Vec::with_capacity(slot.len() + manifest.len() + 100);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    bytes.extend_from_slice(manifest.as_bytes());
    let signature = pair.sign(&bytes);
    bytes.extend_from_slice(signature.as_ref());
    bytes.extend_from_slice(&slot);
    fs::write(out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "{}: {arch} {version}, slot {} bytes, signed by {}",
        out.display(),
        slot.len(),
        hex(pair.public_key().as_ref())
    );
    Ok(())
}
