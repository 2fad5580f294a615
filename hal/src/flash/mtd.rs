//! Raw NOR flash through the Linux MTD character device (`/dev/mtdN`).
//!
//! The kernel reports the geometry (`MEMGETINFO`), erases with `MEMERASE`, and reads and programs
//! with `pread`/`pwrite`. Programs on mtdchar are synchronous; `sync` still asks the kernel to flush,
//! which matters for `block2mtd`, where the "flash" is a block device's page cache.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{ErrorType, Flash, FlashError, FlashGeometry, NorFlash, ReadNorFlash};

/// `struct mtd_info_user` from `<mtd/mtd-abi.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct MtdInfoUser {
    kind: u8,
    flags: u32,
    size: u32,
    erasesize: u32,
    writesize: u32,
    oobsize: u32,
    padding: u64,
}

/// `struct erase_info_user` from `<mtd/mtd-abi.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EraseInfoUser {
    start: u32,
    length: u32,
}

// The generic Linux `_IOC` encoding (x86_64 and aarch64): dir << 30 | size << 16 | type << 8 | nr.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'M' as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
/// `_IOR('M', 1, struct mtd_info_user)`.
const MEMGETINFO: u64 = ioc(IOC_READ, 1, std::mem::size_of::<MtdInfoUser>());
/// `_IOW('M', 2, struct erase_info_user)`.
const MEMERASE: u64 = ioc(IOC_WRITE, 2, std::mem::size_of::<EraseInfoUser>());

const MTD_ABSENT: u8 = 0;

/// A raw NOR flash device.
#[derive(Debug)]
pub struct MtdFlash {
    file: File,
    geometry: FlashGeometry,
    write_size: u32,
}

impl MtdFlash {
    /// Opens `/dev/mtdN` and asks the kernel for its geometry.
    pub fn open(path: impl AsRef<Path>) -> Result<MtdFlash, FlashError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| FlashError::io("open", 0, &e))?;
        let mut info = MtdInfoUser::default();
        // SAFETY: the fd is open for the call's duration; MEMGETINFO writes exactly one
        // `mtd_info_user`, whose layout `MtdInfoUser` reproduces (`repr(C)`, size encoded in the
        // request number), into memory we own and hold a unique reference to.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                MEMGETINFO as _,
                &mut info as *mut MtdInfoUser,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(FlashError::Unsupported(format!(
                "{}: MEMGETINFO failed ({e}); is it an MTD character device?",
                path.display()
            )));
        }
        if info.kind == MTD_ABSENT {
            return Err(FlashError::Unsupported(format!(
                "{}: no flash present",
                path.display()
            )));
        }
        MtdFlash::from_info(file, &info)
    }

    fn from_info(file: File, info: &MtdInfoUser) -> Result<MtdFlash, FlashError> {
        let geometry = FlashGeometry::new(info.erasesize, info.size)?;
        Ok(MtdFlash {
            file,
            geometry,
            write_size: info.writesize.max(1),
        })
    }

    /// The smallest unit the device programs (1 on NOR, a page on NAND).
    pub fn write_size(&self) -> u32 {
        self.write_size
    }
}

impl ErrorType for MtdFlash {
    type Error = FlashError;
}

impl ReadNorFlash for MtdFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.file
            .read_exact_at(bytes, offset.into())
            .map_err(|e| FlashError::io("read", offset, &e))
    }

    fn capacity(&self) -> usize {
        self.geometry.size as usize
    }
}

impl NorFlash for MtdFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.geometry.check_erase(from, to)?;
        if from == to {
            return Ok(());
        }
        let mut req = EraseInfoUser {
            start: from,
            length: to - from,
        };
        // SAFETY: the fd is open for the call's duration; MEMERASE reads one `erase_info_user`,
        // whose layout `EraseInfoUser` reproduces, from memory we own.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                MEMERASE as _,
                &mut req as *mut EraseInfoUser,
            )
        };
        if rc != 0 {
            return Err(FlashError::io(
                "erase",
                from,
                &std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.file
            .write_all_at(bytes, offset.into())
            .map_err(|e| FlashError::io("write", offset, &e))
    }
}

impl Flash for MtdFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        match self.file.sync_data() {
            Ok(()) => Ok(()),
            // mtdchar has no fsync on most kernels: its programs are already synchronous.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            Err(e) => Err(FlashError::io("sync", 0, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_headers() {
        // Values from <mtd/mtd-abi.h> as compiled on x86_64 and aarch64.
        assert_eq!(std::mem::size_of::<MtdInfoUser>(), 32);
        assert_eq!(MEMGETINFO, 0x8020_4d01);
        assert_eq!(MEMERASE, 0x4008_4d02);
    }

    #[test]
    fn geometry_comes_from_the_kernel_info() {
        let file = File::open("/dev/null").unwrap();
        let info = MtdInfoUser {
            kind: 3,
            size: 64 * 65536,
            erasesize: 65536,
            writesize: 1,
            ..Default::default()
        };
        let flash = MtdFlash::from_info(file, &info).unwrap();
        assert_eq!(flash.geometry().blocks(), 64);
        let file = File::open("/dev/null").unwrap();
        let bad = MtdInfoUser {
            erasesize: 0,
            ..info
        };
        assert!(MtdFlash::from_info(file, &bad).is_err());
    }

    #[test]
    fn a_file_that_is_not_mtd_is_refused_clearly() {
        let path = std::env::temp_dir().join(format!("hal-notmtd-{}", std::process::id()));
        std::fs::write(&path, [0u8; 16]).unwrap();
        let err = MtdFlash::open(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, FlashError::Unsupported(_)), "{err}");
    }
}
