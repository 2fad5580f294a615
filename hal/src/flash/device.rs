//! The flash Postern runs on, opened by path: a regular file (host mode), a block device
//! (`/dev/vda` in the image) or an MTD character device (`/dev/mtd0`, raw NOR or block2mtd).
//!
//! A character device is taken for MTD and its geometry comes from the kernel; anything else is
//! file flash with [`DEFAULT_ERASE_SIZE`] blocks. The device is locked (`flock`) while it is open,
//! so that a second postern (a daemon, or an offline `postern prov --flash FILE`) cannot write to
//! it at the same time.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::file::FileMedium;
use super::mtd::MtdMedium;
use super::os::{Medium, OsFlash};
use super::{FileFlash, Flash, FlashError, FlashGeometry, MtdFlash};

/// The erase block of file and block-device flash (NOR parts have 4 to 256 KiB).
pub const DEFAULT_ERASE_SIZE: u32 = 64 << 10;

/// The flash device, whichever kind [`Device::open`] found at the path.
pub type Device = OsFlash<DeviceMedium>;

/// The kinds of device a path can hold.
#[derive(Debug)]
pub enum DeviceMedium {
    /// A regular file or a block device.
    File(FileMedium),
    /// An MTD character device.
    Mtd(MtdMedium),
}

impl Medium for DeviceMedium {
    fn erase(
        &mut self,
        file: &File,
        geometry: FlashGeometry,
        from: u32,
        to: u32,
    ) -> Result<(), FlashError> {
        match self {
            DeviceMedium::File(m) => m.erase(file, geometry, from, to),
            DeviceMedium::Mtd(m) => m.erase(file, geometry, from, to),
        }
    }

    fn sync(&mut self, file: &File) -> Result<(), FlashError> {
        match self {
            DeviceMedium::File(m) => m.sync(file),
            DeviceMedium::Mtd(m) => m.sync(file),
        }
    }
}

/// The exclusive lock on a flash device: while it is held, no other postern opens the device.
#[derive(Debug)]
pub struct FlashLock {
    _file: File,
}

impl Device {
    /// Opens and locks the flash at `path`. A missing file is created `size` bytes long, all
    /// erased; an existing file or device must be `size` bytes when a size is given (never
    /// guessed, never grown).
    pub fn open(path: &Path, size: Option<u64>) -> Result<(Device, FlashLock), DeviceError> {
        let flash_err = |e| DeviceError::Flash(path.to_path_buf(), e);
        let io_err = |e| DeviceError::Open(path.to_path_buf(), e);
        if !path.exists() {
            let size = size.ok_or_else(|| DeviceError::Missing(path.to_path_buf()))?;
            FileFlash::create(path, file_geometry(path, size)?).map_err(flash_err)?;
        }
        let lock = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(DeviceError::Busy(path.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let device = if lock
            .metadata()
            .map_err(io_err)?
            .file_type()
            .is_char_device()
        {
            let flash = MtdFlash::open(path).map_err(flash_err)?;
            check_size(path, size, flash.geometry().size.into())?;
            flash.map_medium(DeviceMedium::Mtd)
        } else {
            // Seeking to the end gives the size of block devices too (their metadata says 0).
            let actual = (&lock).seek(SeekFrom::End(0)).map_err(io_err)?;
            check_size(path, size, actual)?;
            let flash = FileFlash::open(path, file_geometry(path, actual)?).map_err(flash_err)?;
            flash.map_medium(DeviceMedium::File)
        };
        Ok((device, FlashLock { _file: lock }))
    }

    /// The MTD device, when the flash is one.
    pub fn mtd(&self) -> Option<&MtdMedium> {
        match self.medium() {
            DeviceMedium::Mtd(m) => Some(m),
            DeviceMedium::File(_) => None,
        }
    }
}

fn check_size(path: &Path, expected: Option<u64>, actual: u64) -> Result<(), DeviceError> {
    match expected {
        Some(expected) if expected != actual => Err(DeviceError::WrongSize {
            path: path.to_path_buf(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// The geometry of file flash of `size` bytes, if it can hold a spool.
fn file_geometry(path: &Path, size: u64) -> Result<FlashGeometry, DeviceError> {
    let bad = |why| DeviceError::Size(path.to_path_buf(), why);
    let size = u32::try_from(size).map_err(|_| bad(SizeProblem::TooLarge(size)))?;
    if size < 16 * DEFAULT_ERASE_SIZE {
        return Err(bad(SizeProblem::TooSmall(size)));
    }
    if size % DEFAULT_ERASE_SIZE != 0 {
        return Err(bad(SizeProblem::NotWholeBlocks(size)));
    }
    FlashGeometry::new(DEFAULT_ERASE_SIZE, size).map_err(|e| DeviceError::Flash(path.into(), e))
}

/// Why a size cannot be file flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeProblem {
    /// Past the 4 GiB a spool addresses.
    TooLarge(u64),
    /// Less than 16 erase blocks (1 MiB).
    TooSmall(u32),
    /// Not a whole number of erase blocks.
    NotWholeBlocks(u32),
}

/// Why the flash could not be opened.
#[derive(Debug)]
pub enum DeviceError {
    /// Nothing at the path, and no size to create a file with.
    Missing(PathBuf),
    /// The file or device could not be opened or examined.
    Open(PathBuf, io::Error),
    /// Another postern holds the lock.
    Busy(PathBuf),
    /// The file or device is not the size asked for.
    WrongSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// The size cannot be file flash.
    Size(PathBuf, SizeProblem),
    /// The flash driver refused the device (e.g. a character device that is not MTD).
    Flash(PathBuf, FlashError),
}

impl fmt::Display for SizeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeProblem::TooLarge(size) => {
                write!(f, "{size} bytes is more than the 4 GiB a spool addresses")
            }
            SizeProblem::TooSmall(size) => write!(
                f,
                "{size} bytes is too small: the spool needs at least 1 MiB"
            ),
            SizeProblem::NotWholeBlocks(size) => write!(
                f,
                "{size} bytes is not a whole number of {DEFAULT_ERASE_SIZE}-byte erase blocks"
            ),
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Missing(p) => write!(f, "cannot open flash {}: no such file", p.display()),
            DeviceError::Open(p, e) => write!(f, "cannot open flash {}: {e}", p.display()),
            DeviceError::Busy(p) => {
                write!(f, "flash {} is in use by another postern", p.display())
            }
            DeviceError::WrongSize {
                path,
                expected,
                actual,
            } => write!(
                f,
                "flash {} is {actual} bytes, not the {expected} bytes asked for",
                path.display()
            ),
            DeviceError::Size(p, why) => write!(f, "flash {}: {why}", p.display()),
            DeviceError::Flash(p, e) => write!(f, "cannot open flash {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for DeviceError {}

#[cfg(test)]
mod tests {
    use super::super::{NorFlash, ReadNorFlash};
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("hal-device-{name}-{}", std::process::id()))
    }

    #[test]
    fn a_missing_file_is_created_at_its_size_as_file_flash() {
        let path = temp("file");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            Device::open(&path, None),
            Err(DeviceError::Missing(_))
        ));
        let (mut flash, _lock) = Device::open(&path, Some(2 << 20)).unwrap();
        assert!(flash.mtd().is_none());
        assert_eq!(flash.geometry().erase_size, DEFAULT_ERASE_SIZE);
        assert_eq!(flash.geometry().size, 2 << 20);
        flash.erase(0, DEFAULT_ERASE_SIZE).unwrap();
        flash.write(10, b"spool").unwrap();
        flash.sync().unwrap();
        let mut back = [0u8; 5];
        flash.read(10, &mut back).unwrap();
        assert_eq!(&back, b"spool");
        drop((flash, _lock));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_lock_keeps_a_second_opener_off_until_it_is_dropped() {
        let path = temp("lock");
        let _ = std::fs::remove_file(&path);
        let (flash, lock) = Device::open(&path, Some(1 << 20)).unwrap();
        drop(flash);
        assert!(matches!(
            Device::open(&path, None),
            Err(DeviceError::Busy(_))
        ));
        drop(lock);
        assert!(Device::open(&path, None).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sizes_are_checked_never_guessed() {
        let path = temp("size");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, vec![0xFFu8; 1 << 20]).unwrap();
        let err = Device::open(&path, Some(2 << 20)).unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::WrongSize {
                    expected: 0x20_0000,
                    actual: 0x10_0000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        std::fs::remove_file(&path).unwrap();
        for (size, problem) in [
            (4096, SizeProblem::TooSmall(4096)),
            (
                (1 << 20) + 4096,
                SizeProblem::NotWholeBlocks((1 << 20) + 4096),
            ),
            (8 << 30, SizeProblem::TooLarge(8 << 30)),
        ] {
            match Device::open(&path, Some(size)) {
                Err(DeviceError::Size(_, p)) => assert_eq!(p, problem),
                other => panic!("{size}: expected a size problem, got {other:?}"),
            }
            assert!(!path.exists(), "no file is created for a size refused");
        }
    }

    #[test]
    fn a_character_device_that_is_not_mtd_is_refused_clearly() {
        let err = Device::open(Path::new("/dev/null"), None).unwrap_err();
        assert!(matches!(err, DeviceError::Flash(..)), "{err}");
        assert!(err.to_string().contains("MEMGETINFO"), "{err}");
    }
}
