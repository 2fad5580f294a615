//! Fetching and unpacking the pinned kernel package with Debian's own tools.
//!
//! `apt-get download NAME=VERSION` (never a wildcard: that would pull every ABI) into the cache,
//! the sha256 checked against `kernel.lock` every time the file is used, then `dpkg-deb -x` once
//! into a directory next to it.

use crate::lock::KernelPin;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The host's Debian architecture (`dpkg --print-architecture`).
pub fn native_deb_arch() -> Result<String, String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map_err(|e| format!("cannot run dpkg: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes sure the pinned `.deb` is in `cache` with the locked sha256; returns its path.
pub fn fetch(pin: &KernelPin, cache: &Path) -> Result<PathBuf, String> {
    fs::create_dir_all(cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let deb = cache.join(pin.deb_file_name());
    if !deb.exists() {
        let spec = pin.apt_spec(&native_deb_arch()?);
        println!("  apt-get download {spec}");
        let status = Command::new("apt-get")
            .args(["download", &spec])
            .current_dir(cache)
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !status.success() {
            return Err(format!(
                "apt-get download {spec} failed ({status}); run `apt-get update` if the package lists are missing{}",
                if pin.deb_arch != "amd64" {
                    format!(
                        ", and `dpkg --add-architecture {}` for a foreign architecture",
                        pin.deb_arch
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    let actual = sha256_file(&deb).map_err(|e| format!("cannot read {}: {e}", deb.display()))?;
    if actual != pin.sha256 {
        return Err(format!(
            "{} has sha256 {actual}, kernel.lock says {}: refusing to build (delete the file to download it again)",
            deb.display(),
            pin.sha256
        ));
    }
    Ok(deb)
}

/// Unpacks the `.deb` into `dir` once; a marker file records a complete extraction.
pub fn extract(deb: &Path, dir: &Path) -> Result<(), String> {
    let marker = dir.join(".extracted");
    if marker.exists() {
        return Ok(());
    }
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed ({status})", deb.display()));
    }
    fs::write(&marker, b"").map_err(|e| format!("cannot write {}: {e}", marker.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_file() {
        let dir = std::env::temp_dir().join(format!("mkimage-sha-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
