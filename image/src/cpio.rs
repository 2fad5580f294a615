//! A writer for the cpio "newc" format the kernel unpacks as its initramfs.
//!
//! Every header is `070701` and thirteen 8-digit hex fields, the name (NUL-terminated) is padded to
//! 4 bytes, and so is the data. Timestamps and owners are zero so that the same inputs give the
//! same archive, byte for byte.

use std::io::{self, Write};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Builds a newc archive in memory.
#[derive(Default)]
pub struct Archive {
    out: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    pub fn new() -> Self {
        Archive {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory; parents must have been added before.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file with its contents.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A character device node (the kernel creates it when it unpacks the archive).
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Closes the archive with the `TRAILER!!!` entry and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let name = path.trim_start_matches('/');
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        // Writing to a Vec cannot fail.
        let _ = write_header(&mut self.out, &fields);
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        pad4(&mut self.out);
        self.out.extend_from_slice(data);
        pad4(&mut self.out);
    }
}

fn write_header(out: &mut Vec<u8>, fields: &[u32; 13]) -> io::Result<()> {
    out.write_all(b"070701")?;
    for f in fields {
        write!(out, "{f:08X}")?;
    }
    Ok(())
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn headers_and_padding_follow_newc() {
        let mut a = Archive::new();
        a.file("/init", 0o755, b"abc");
        let bytes = a.finish();
        assert_eq!(&bytes[..6], b"070701");
        // mode field (second) of the first header
        assert_eq!(&bytes[14..22], b"000081ED");
        // filesize field
        assert_eq!(&bytes[54..62], b"00000003");
        // 110-byte header + "init\0" = 115, padded to 116; data 3 padded to 4
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    /// GNU cpio reads what we write (skipped where cpio is not installed).
    #[test]
    fn gnu_cpio_lists_the_archive() {
        let mut a = Archive::new();
        a.dir("/etc", 0o755);
        a.file("/etc/hostname", 0o644, b"postern\n");
        a.char_dev("/dev/console", 0o600, 5, 1);
        let bytes = a.finish();
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed; skipping");
            return;
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("etc/hostname"), "{listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with('c') && l.contains("dev/console")),
            "{listing}"
        );
    }
}
