//! Raw NOR flash through the Linux MTD character device (`/dev/mtdN`).
//!
//! The kernel reports the geometry (`MEMGETINFO`), erases with `MEMERASE`, and reads and programs
//! with `pread`/`pwrite`. Programs on raw NOR are synchronous, but `block2mtd` (an MTD emulated over
//! a block device) only writes into the block device's page cache, and mtdchar has no `fsync`: its
//! data would reach the disk whenever writeback gets to it, and a power cut before that loses what
//! was acknowledged. So for a block2mtd device `sync` fsyncs the backing block device (which
//! shares that page cache and also flushes the disk's write cache). The backing device is found by
//! the MTD's name in sysfs, which block2mtd sets to `block2mtd: DEVICE`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::os::{Medium, OsFlash, open_rw};
use super::{FlashError, FlashGeometry};

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
pub type MtdFlash = OsFlash<MtdMedium>;

/// An MTD character device: the kernel erases, and block2mtd's backing device is synced.
#[derive(Debug)]
pub struct MtdMedium {
    write_size: u32,
    /// block2mtd's block device and its path, opened read-only for `fsync` (see the module
    /// comment).
    backing: Option<(File, PathBuf)>,
}

impl MtdMedium {
    /// The block device `sync` flushes, when this MTD is block2mtd's.
    pub fn backing_device(&self) -> Option<&Path> {
        self.backing.as_ref().map(|(_, p)| p.as_path())
    }

    /// The smallest unit the device programs (1 on NOR, a page on NAND).
    pub fn write_size(&self) -> u32 {
        self.write_size
    }
}

/// The name block2mtd gives the MTD devices it creates (unless a label is given), before the
/// block device's path.
const BLOCK2MTD_PREFIX: &str = "block2mtd: ";

/// The block device under a block2mtd MTD, from the MTD's name.
fn block2mtd_backing(mtd_name: &str) -> Option<&Path> {
    let dev = mtd_name.trim_end().strip_prefix(BLOCK2MTD_PREFIX)?;
    dev.starts_with('/').then_some(Path::new(dev))
}

impl MtdFlash {
    /// Opens `/dev/mtdN` and asks the kernel for its geometry.
    pub fn open(path: impl AsRef<Path>) -> Result<MtdFlash, FlashError> {
        let path = path.as_ref();
        let file = open_rw(path)?;
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
        let backing = Self::open_backing(&file, path)?;
        MtdFlash::from_info(file, path, &info, backing)
    }

    /// Opens the block device under a block2mtd MTD; `None` for any other MTD.
    fn open_backing(file: &File, path: &Path) -> Result<Option<(File, PathBuf)>, FlashError> {
        use std::os::unix::fs::MetadataExt;
        let rdev = file
            .metadata()
            .map_err(|e| FlashError::io("stat", 0, &e))?
            .rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        // A plain file (tests) or a device without a sysfs name is not block2mtd.
        let Ok(name) = std::fs::read_to_string(format!("/sys/dev/char/{major}:{minor}/name"))
        else {
            return Ok(None);
        };
        let Some(dev) = block2mtd_backing(&name) else {
            return Ok(None);
        };
        match File::open(dev) {
            Ok(f) => Ok(Some((f, dev.to_path_buf()))),
            Err(e) => Err(FlashError::Unsupported(format!(
                "{}: it is block2mtd over {}, which cannot be opened to sync it ({e})",
                path.display(),
                dev.display()
            ))),
        }
    }

    fn from_info(
        file: File,
        path: &Path,
        info: &MtdInfoUser,
        backing: Option<(File, PathBuf)>,
    ) -> Result<MtdFlash, FlashError> {
        let geometry = FlashGeometry::new(info.erasesize, info.size)?;
        let medium = MtdMedium {
            write_size: info.writesize.max(1),
            backing,
        };
        Ok(OsFlash::new(file, path.to_path_buf(), geometry, medium))
    }

    /// The block device `sync` flushes, when this MTD is block2mtd's.
    pub fn backing_device(&self) -> Option<&Path> {
        self.medium().backing_device()
    }
}

impl Medium for MtdMedium {
    fn erase(
        &mut self,
        file: &File,
        _geometry: FlashGeometry,
        from: u32,
        to: u32,
    ) -> Result<(), FlashError> {
        let mut req = EraseInfoUser {
            start: from,
            length: to - from,
        };
        // SAFETY: the fd is open for the call's duration; MEMERASE reads one `erase_info_user`,
        // whose layout `EraseInfoUser` reproduces, from memory we own.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
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

    fn sync(&mut self, file: &File) -> Result<(), FlashError> {
        if let Some((backing, _)) = &self.backing {
            // fsync on a block device writes its dirty page cache back and flushes the disk.
            return backing
                .sync_all()
                .map_err(|e| FlashError::io("sync", 0, &e));
        }
        match file.sync_data() {
            Ok(()) => Ok(()),
            // mtdchar has no fsync on most kernels: its programs are already synchronous.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            Err(e) => Err(FlashError::io("sync", 0, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Flash;
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
        let flash = MtdFlash::from_info(file, Path::new("/dev/null"), &info, None).unwrap();
        assert_eq!(flash.geometry().blocks(), 64);
        let file = File::open("/dev/null").unwrap();
        let bad = MtdInfoUser {
            erasesize: 0,
            ..info
        };
        assert!(MtdFlash::from_info(file, Path::new("/dev/null"), &bad, None).is_err());
    }

    #[test]
    fn block2mtd_names_lead_to_the_block_device() {
        assert_eq!(
            block2mtd_backing("block2mtd: /dev/vda\n"),
            Some(Path::new("/dev/vda"))
        );
        assert_eq!(block2mtd_backing("spi-nor\n"), None);
        assert_eq!(block2mtd_backing("block2mtd: vda"), None);
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
