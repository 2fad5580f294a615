//! Which kernel modules the image ships, in the order PID 1 loads them.
//!
//! The Debian package has no `modules.dep`; `depmod -b` makes one in the unpacked tree, and
//! `modprobe --show-depends` prints each wanted module's dependencies first as `insmod PATH` lines
//! (built-in ones as `builtin NAME`). The union, first occurrence kept, is the load order.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs depmod on the unpacked package root for `release`.
pub fn depmod(root: &Path, release: &str) -> Result<(), String> {
    let status = Command::new("depmod")
        .arg("-b")
        .arg(root)
        .arg(release)
        .status()
        .map_err(|e| format!("cannot run depmod (install kmod): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("depmod -b {} {release} failed", root.display()))
    }
}

/// Module files to load, dependencies first, for the wanted module names.
pub fn load_order(root: &Path, release: &str, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut order: Vec<PathBuf> = Vec::new();
    for name in wanted {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(root)
            .args(["-S", release, "--show-depends", name])
            .output()
            .map_err(|e| format!("cannot run modprobe (install kmod): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "modprobe --show-depends {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        for path in parse_show_depends(&String::from_utf8_lossy(&out.stdout)) {
            if !order.contains(&path) {
                order.push(path);
            }
        }
    }
    Ok(order)
}

/// The `insmod PATH` lines of `modprobe --show-depends`, in order.
pub fn parse_show_depends(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("insmod "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_insmod_lines_and_skips_builtins() {
        let text = "builtin virtio\ninsmod /m/virtio_ring.ko \ninsmod /m/virtio_net.ko opt=1\n";
        assert_eq!(
            parse_show_depends(text),
            vec![
                PathBuf::from("/m/virtio_ring.ko"),
                PathBuf::from("/m/virtio_net.ko")
            ]
        );
    }
}
