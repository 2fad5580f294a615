//! The kernel file QEMU boots: on x86_64 the uncompressed ELF `vmlinux` out of the bzImage.
//!
//! Under TCG the bzImage's own XZ decompressor takes 4–10 s; the ELF inside it carries a PVH note,
//! so QEMU's `-kernel vmlinux` starts it directly. The bzImage header (boot protocol ≥ 2.08) says
//! where the compressed payload sits: after the setup sectors, at `payload_offset`, `payload_length`
//! bytes long; for XZ the build appends the uncompressed size as 4 trailing bytes.
//!
//! The kernel's XZ stream uses the x86 BCJ filter, which the pure-Rust XZ decoders lack, so the
//! decompression runs `xz --single-stream` (xz-utils); the header parsing stays here.

use std::io::Write;
use std::process::{Command, Stdio};

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Why a bzImage could not be unpacked.
#[derive(Debug, PartialEq, Eq)]
pub enum BzImageError {
    NotABzImage,
    OldBootProtocol(u16),
    PayloadOutOfRange,
    UnsupportedCompression([u8; 4]),
    Xz(String),
    NotElf,
}

impl std::fmt::Display for BzImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BzImageError::NotABzImage => write!(f, "not a bzImage (no HdrS magic)"),
            BzImageError::OldBootProtocol(v) => {
                write!(f, "boot protocol {v:#x} has no payload fields (< 2.08)")
            }
            BzImageError::PayloadOutOfRange => {
                write!(f, "payload offset/length point outside the file")
            }
            BzImageError::UnsupportedCompression(m) => {
                write!(
                    f,
                    "payload magic {m:02x?} is not XZ (only XZ kernels are handled)"
                )
            }
            BzImageError::Xz(e) => write!(f, "XZ payload does not decompress: {e}"),
            BzImageError::NotElf => write!(f, "decompressed payload is not an ELF vmlinux"),
        }
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The compressed payload of a bzImage, as stored (with any trailing size bytes).
pub fn payload(bz: &[u8]) -> Result<&[u8], BzImageError> {
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err(BzImageError::NotABzImage);
    }
    let version = le_u16(bz, 0x206).ok_or(BzImageError::NotABzImage)?;
    if version < 0x0208 {
        return Err(BzImageError::OldBootProtocol(version));
    }
    let setup_sects = match bz.get(0x1f1).copied().ok_or(BzImageError::NotABzImage)? {
        0 => 4,
        n => n as usize,
    };
    let offset = le_u32(bz, 0x248).ok_or(BzImageError::NotABzImage)? as usize;
    let length = le_u32(bz, 0x24c).ok_or(BzImageError::NotABzImage)? as usize;
    let start = (setup_sects + 1) * 512 + offset;
    bz.get(start..start.saturating_add(length))
        .ok_or(BzImageError::PayloadOutOfRange)
}

/// Decompresses the ELF vmlinux out of an XZ bzImage.
pub fn vmlinux_from_bzimage(bz: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let payload = payload(bz)?;
    if !payload.starts_with(XZ_MAGIC) {
        let mut magic = [0u8; 4];
        for (m, b) in magic.iter_mut().zip(payload) {
            *m = *b;
        }
        return Err(BzImageError::UnsupportedCompression(magic));
    }
    let out = xz_decompress(payload).map_err(BzImageError::Xz)?;
    if !out.starts_with(ELF_MAGIC) {
        return Err(BzImageError::NotElf);
    }
    Ok(out)
}

/// One XZ stream through `xz`; anything after the stream (the size bytes) is ignored.
fn xz_decompress(stream: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run xz (install xz-utils): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("xz has no stdin")?;
    let input = stream.to_vec();
    // Feed from a thread: xz's output pipe would fill while we are still writing its input.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("xz: {e}"))?;
    let fed = feeder
        .join()
        .map_err(|_| "xz feeder thread died".to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    fed.map_err(|e| format!("writing to xz: {e}"))?;
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut bz = vec![0u8; 5 * 512];
        bz[0x1f1] = 4;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        bz[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        bz.extend_from_slice(&[0u8; 16]);
        bz.extend_from_slice(payload);
        bz
    }

    #[test]
    fn finds_and_unpacks_an_xz_elf_payload() {
        let elf = b"\x7fELF and the rest of a kernel".repeat(100);
        let mut child = Command::new("xz")
            .args([
                "--compress",
                "--stdout",
                "--check=crc32",
                "--x86",
                "--lzma2",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&elf).unwrap();
        let mut xz = child.wait_with_output().unwrap().stdout;
        xz.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        let bz = fake_bzimage(&xz);
        assert_eq!(vmlinux_from_bzimage(&bz).unwrap(), elf);
    }

    #[test]
    fn rejects_what_is_not_a_usable_bzimage() {
        assert_eq!(
            vmlinux_from_bzimage(b"short"),
            Err(BzImageError::NotABzImage)
        );
        let gz = fake_bzimage(&[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        assert_eq!(
            vmlinux_from_bzimage(&gz),
            Err(BzImageError::UnsupportedCompression([0x1f, 0x8b, 8, 0]))
        );
        let mut bad = fake_bzimage(b"x");
        bad[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            vmlinux_from_bzimage(&bad),
            Err(BzImageError::PayloadOutOfRange)
        );
    }
}
