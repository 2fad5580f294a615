//! Update bundles and the disk's boot slots for the QEMU update tests and the image figures: a
//! newer signed bundle of an image's slot, a small HTTP server to fetch it from, and the slot
//! files on a disk image's EFI system partition read with mtools.

use std::path::Path;
use std::process::Command;

use qemu::Arch;

use crate::appliance::image_dir_for;

/// The ESP starts 1 MiB into the disk (mkimage's layout); mtools addresses it as `disk@@1M`.
pub fn esp(disk: &Path) -> String {
    format!("{}@@1M", disk.display())
}

/// Runs one mtools command; its output.
pub fn mtools(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install mtools)"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The slot file names on the disk's ESP, sorted.
pub fn slots(disk: &Path) -> Vec<String> {
    let listing = mtools("mdir", &["-b", "-i", &esp(disk), "::/EFI/Linux"]);
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| n.starts_with("postern-"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// The version `make image` gave this architecture's image (its manifest.txt).
pub fn version(arch: Arch) -> String {
    let manifest = std::fs::read_to_string(image_dir_for(arch).join("manifest.txt")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version "))
        .expect("manifest.txt has a version (make image)")
        .to_string()
}

/// Replaces the first `from` in `data` by `to` (same length: the UKI's sections keep their place).
pub fn patch(data: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let at = data
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the slot image"));
    data[at..at + to.len()].copy_from_slice(to.as_bytes());
}

/// The bundle tool `make image` builds beside this test's own build.
pub fn mkbundle() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // .../TRIPLE/PROFILE/deps/TEST-HASH -> .../TRIPLE/release/mkbundle
    let triple_dir = exe.ancestors().nth(3).unwrap().to_path_buf();
    let tool = triple_dir.join("release/mkbundle");
    assert!(
        tool.exists(),
        "{} is missing (make image builds it)",
        tool.display()
    );
    tool
}

/// A signed bundle of this architecture's slot as version 9.9.9 (the same firmware, a newer
/// name), its console patched as the test disk's is.
pub fn newer_bundle(arch: Arch, dir: &Path) -> Vec<u8> {
    bundle_claiming(arch, arch.name(), dir)
}

/// The same, its manifest naming `claimed` as its architecture: signed by the right key, so
/// only the architecture check can refuse it.
pub fn bundle_claiming(arch: Arch, claimed: &str, dir: &Path) -> Vec<u8> {
    let v = version(arch);
    let dir = dir.join(format!("bundle-{claimed}"));
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    let mut slot = std::fs::read(image_dir_for(arch).join("slot.efi")).unwrap();
    patch(
        &mut slot,
        &format!("IMAGE_VERSION={v}"),
        "IMAGE_VERSION=9.9.9",
    );
    patch(
        &mut slot,
        "postern.console=wizard",
        "postern.console=prompt",
    );
    std::fs::write(image.join("slot.efi"), &slot).unwrap();
    std::fs::write(
        image.join("manifest.txt"),
        format!("arch {claimed}\nversion 9.9.9\n"),
    )
    .unwrap();
    let out = dir.join("new.bundle");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/keys");
    let made = Command::new(mkbundle())
        .arg("--keys")
        .arg(&keys)
        .arg("--image")
        .arg(&image)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read(out).unwrap()
}

/// Serves `files` (path → bytes) over HTTP on 127.0.0.1 (the guest's 10.0.2.2); the port.
pub fn serve(files: Vec<(&'static str, Vec<u8>)>) -> u16 {
    use std::io::{Read, Write};
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let mut head = [0u8; 2048];
            let n = s.read(&mut head).unwrap_or(0);
            let request = String::from_utf8_lossy(&head[..n]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = s.write_all(
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    port
}
